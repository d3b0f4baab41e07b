"""Random cutting planes: the critical dimension d* of a class manifold (or a k-class boundary) of any model.

Fort, Cubuk, Ganguli, Schoenholz (2022). For a start point x0 (not in the target region) and a random
d-dimensional affine subspace through it, x(θ) = x0 + θ M with M a d × D matrix, the subspace coordinates θ are
optimised from 0 to reach the target. By Gordon's escape theorem a random subspace of codimension D − d meets a
set S of Gaussian width w(S) with high probability once d > D − w(S)²: the dimension d*₅₀ at which half the
random subspaces reach the target estimates the set's codimension, and D − d* its effective dimension.

    res = critical_dimension(log_prob_fn, x0s, target=3, dims=(1, 2, 4, 8, 16), repeats=8, key=jax.random.key(0),
                             params=params, bounds=(0.0, 1.0))
    res.d_star, res.d_star_error, res.effective_dimension, res.converged

Everything for one sweep runs as one compiled function: a `vmap` over every (d, repeat, start point) with bases
of one fixed shape (max(dims) rows; rows ≥ d are zero, so their coordinates get zero gradients and never move),
Adam in a `lax.scan` (chunks of steps inside a `lax.while_loop` that ends once every subspace has stopped; a
stopped subspace is frozen by masking), sharded over devices through `common.sweep.vmapped`.

With `bounds=(lo, hi)` the search stays on the data: every point is clipped into the box, so however far θ goes
the inputs remain valid images (a clipped coordinate gets no gradient). A saturated corner of the box can itself
belong to a class; `saturated_fraction` reports how many coordinates sat on the box at the successful end points.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from common import sweep
from manifolds import checks
from manifolds.checks import EstimatorInputError, Target, as_target  # noqa: F401 - the estimator's API
from manifolds.sigmoid_fit import bootstrap_crossing, crossing, crossings, fit_sigmoids, grid_crossing  # noqa: F401

BASES = ("gaussian", "orthonormal", "axis")
_CHUNK = 25  # optimiser steps per scan inside the early-stopping while_loop
_LOOK_BACK = 5  # the released stopping rule's window of losses


@dataclasses.dataclass(frozen=True)
class Budget:
    """The optimiser budget for one subspace: Adam with rate `lr`, at most `steps` steps.

    adam: "bias_corrected" (m / (1 − β₁ᵗ), v / (1 − β₂ᵗ): the standard update) or "released" (m / (1 − β₁),
      v / (1 − β₂) at every step, as the released notebook writes it: its first steps are about 3x shorter).
    stop: "score" (stop once the target is reached with score ≥ `stop_score`) or "released" (after at least 6
      steps, stop once the loss is within 1e-2 of its minimum log k or the standard deviation of the last 5 losses
      is below 1e-3: a plateau).
    radius: the reach, the largest distance ‖x − x0‖ the search may go (a longer step θ·M is scaled back onto
      the ball of this radius around x0; inf: unlimited). `longer` keeps it: more steps at the same reach.
    """

    lr: float = 0.1
    steps: int = 300
    stop_score: float = 0.99
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    adam: str = "bias_corrected"
    stop: str = "score"
    radius: float = math.inf

    def longer(self, factor: int = 4) -> Budget:
        """The same update at the same rate with `factor` times the steps (the convergence check)."""
        return dataclasses.replace(self, steps=int(self.steps) * int(factor))


DEFAULT = Budget()
RELEASED = Budget(lr=5e-2, steps=300, eps=1e-7, adam="released", stop="released")


# ----------------------------------------------------------------------------------------------------------
# bases and one subspace


def random_basis(key: jax.Array, d: jax.Array, dmax: int, dim: int, kind: str = "gaussian", nonzeros: int = 1):
    """A (dmax, dim) basis whose first `d` rows span a random d-dimensional subspace; the other rows are zero.

    kind "gaussian": i.i.d. normal rows scaled to unit norm (the released code; not orthogonal);
    "orthonormal": the same rows Gram-Schmidt orthonormalised (QR: row i depends only on rows ≤ i, so masking
    after orthonormalising gives an orthonormal basis of the first d rows); "axis": each row has `nonzeros`
    random coordinates with normal values, unit norm (nonzeros=1: random coordinate axes).
    """
    g = jax.random.normal(key, (dmax, dim), jnp.float32)
    if kind == "orthonormal":
        q, r = jnp.linalg.qr(g.T)
        g = (q * jnp.sign(jnp.diagonal(r))).T
    elif kind == "axis":
        noise = jax.random.uniform(jax.random.fold_in(key, 1), (dmax, dim))
        kth = jnp.sort(noise, axis=1)[:, dim - nonzeros][:, None]
        g = jnp.where(noise >= kth, g, 0.0)
    elif kind != "gaussian":
        raise EstimatorInputError(f"basis: must be one of {BASES}, got {kind!r}")
    g = g / jnp.linalg.norm(g, axis=1, keepdims=True)
    rows = jnp.arange(dmax)[:, None] < d
    return jnp.where(rows, g, 0.0)


def _scores(logp: jax.Array, mask: jax.Array, k: jax.Array, use_argmax: jax.Array, level: jax.Array):
    """(loss, score, success) of one log-probability vector for the target encoded by `mask` (k-hot)."""
    p = jnp.exp(logp)
    loss = -jnp.sum(mask * logp) / k
    score = k * jnp.min(jnp.where(mask > 0, p, jnp.inf))
    is_argmax = jnp.sum(mask * jax.nn.one_hot(jnp.argmax(logp), logp.shape[0])) > 0
    success = jnp.where(use_argmax > 0, is_argmax, score >= level)
    return loss, score, success


def _adam(c: dict, g: jax.Array, spec: dict) -> dict:
    """One Adam update of θ: bias-corrected, or the released notebook's constant (1 − β) correction."""
    t1 = c["t"] + 1.0
    m = spec["b1"] * c["m"] + (1 - spec["b1"]) * g
    v = spec["b2"] * c["v"] + (1 - spec["b2"]) * g * g
    released = spec["adam_released"] > 0
    mhat = m / jnp.where(released, 1 - spec["b1"], 1 - spec["b1"] ** t1)
    vhat = v / jnp.where(released, 1 - spec["b2"], 1 - spec["b2"] ** t1)
    theta = c["theta"] - spec["lr"] * mhat / (jnp.sqrt(vhat) + spec["eps"])
    return {"theta": theta, "m": m, "v": v, "t": t1}


def _should_stop(c: dict, loss, score, success, spec: dict) -> jax.Array:
    """The stopping rule after scoring step t = c["t"] (see `Budget.stop`)."""
    hist = jnp.roll(c["hist"], -1).at[-1].set(loss)
    plateau = jnp.std(hist) <= 1e-3
    near_min = jnp.abs(loss - spec["log_k"]) <= 1e-2
    released = (c["t"] + 1 > _LOOK_BACK) & ((c["t"] + 1 >= spec["steps"]) | near_min | plateau)
    ours = (success & (score >= spec["stop_score"])) | (c["t"] >= spec["steps"])
    return jnp.where(spec["stop_released"] > 0, released, ours), hist


def optimize_subspace(
    log_prob: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x0: jax.Array,
    basis: jax.Array,
    spec: dict[str, jax.Array],
) -> dict[str, jax.Array]:
    """Optimises θ (from 0) on x0 + θ·basis with Adam toward the target; one subspace, pure and vmappable.

    `log_prob(params, x[B, D]) -> [B, C]` (log-softmax is applied again, so logits work too); `spec` holds the
    target (`mask` k-hot [C], `k`, `log_k`, `use_argmax`, `level`), the budget (`lr`, `steps`, `stop_score`,
    `b1`, `b2`, `eps`, `adam_released`, `stop_released`, `radius`) and the input box (`lo`, `hi`, `clip`).
    Returns the best score reached, whether the target was reached at any step, the number of steps taken, the
    final θ and `nonfinite` (the loss, score or gradient became NaN/inf: the subspace stops there).
    """

    def point(theta):
        step, r = theta @ basis, spec["radius"]  # r = 0: unlimited (no inf inside the gradient)
        n, r_safe = jnp.sqrt(jnp.sum(step * step) + 1e-20), jnp.where(r > 0, r, 1.0)  # finite gradient at 0
        x = x0 + step * jnp.where((r > 0) & (n > r), r_safe / jnp.maximum(n, r_safe), 1.0)
        return jnp.where(spec["clip"] > 0, jnp.clip(x, spec["lo"], spec["hi"]), x)

    def loss_fn(theta):
        logp = jax.nn.log_softmax(log_prob(params, point(theta)[None])[0])
        loss, score, success = _scores(logp, spec["mask"], spec["k"], spec["use_argmax"], spec["level"])
        return loss, (score, success)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(c, _):
        (loss, (score, success)), g = grad_fn(c["theta"])
        finite = jnp.isfinite(loss) & jnp.isfinite(score) & jnp.all(jnp.isfinite(g))
        live = ~c["done"] & finite
        stop_now, hist = _should_stop(c, loss, score, success, spec)
        stop = c["done"] | ~finite | stop_now
        new = {**_adam(c, g, spec), "hist": hist}
        frozen = {k: jnp.where(stop, c[k], new[k]) for k in new}
        return {
            **frozen,
            "best": jnp.maximum(c["best"], jnp.where(live, score, 0.0)),
            "reached": c["reached"] | (success & live),
            "done": stop,
            "nonfinite": c["nonfinite"] | (~c["done"] & ~finite),
        }, None

    zeros = jnp.zeros((basis.shape[0],), jnp.float32)
    scalar = jnp.zeros((), jnp.float32)
    flag = jnp.zeros((), bool)
    c0 = {"theta": zeros, "m": zeros, "v": zeros, "t": scalar, "hist": jnp.arange(_LOOK_BACK, dtype=jnp.float32)}
    c0 |= {"best": scalar, "reached": flag, "done": flag, "nonfinite": flag}
    # A step scores θ_t before updating it; with the "score" rule the step at t = steps only scores θ_steps.
    c = jax.lax.while_loop(lambda c: ~c["done"], lambda c: jax.lax.scan(step, c, None, length=_CHUNK)[0], c0)
    x_end = point(c["theta"])
    at_box = (jnp.abs(x_end - spec["lo"]) < 1e-6) | (jnp.abs(x_end - spec["hi"]) < 1e-6)
    saturated = jnp.where(spec["clip"] > 0, jnp.mean(at_box & (jnp.abs(x_end - x0) > 1e-6)), 0.0)
    out = {"best_score": c["best"], "success": c["reached"], "steps": c["t"], "theta": c["theta"]}
    return {**out, "nonfinite": c["nonfinite"], "saturated": saturated}


def _lane(log_prob, takes_params, dmax, basis, nonzeros, key, d, x0, params, spec):
    """One subspace of a sweep (the function `sweep.vmapped` maps; the first five arguments are static)."""
    b = random_basis(key, d, dmax, x0.shape[0], basis, nonzeros)
    fn = log_prob if takes_params else (lambda _, x: log_prob(x))
    out = optimize_subspace(fn, params, x0, b, spec)
    return {k: out[k] for k in ("best_score", "success", "steps", "nonfinite", "saturated")}


def _spec(target: Target, num_classes: int, budget: Budget, bounds) -> dict[str, np.ndarray]:
    mask = np.zeros((num_classes,), np.float32)
    mask[list(target.classes)] = 1.0
    lo, hi = (0.0, 0.0) if bounds is None else bounds
    f = np.float32
    return {
        "mask": mask,
        "k": f(target.k),
        "log_k": f(math.log(target.k)),
        "use_argmax": f(target.k == 1 and target.threshold is None),
        "level": f(target.level),
        "lr": f(budget.lr),
        "steps": f(budget.steps),
        "stop_score": f(budget.stop_score),
        "b1": f(budget.b1),
        "b2": f(budget.b2),
        "eps": f(budget.eps),
        "radius": f(budget.radius if math.isfinite(budget.radius) else 0.0),
        "adam_released": f(budget.adam == "released"),
        "stop_released": f(budget.stop == "released"),
        "lo": f(lo),
        "hi": f(hi),
        "clip": f(bounds is not None),
    }


def _bucket(n: int) -> int:
    return max(16, 1 << (int(n) - 1).bit_length())


def subspace_keys(key: jax.Array, dims: Sequence[int], repeats: Sequence[int], num_starts: int) -> jax.Array:
    """Keys [len(dims), len(repeats), num_starts]: fold_in(key, d), then the repeat, then the start index, so a
    subspace is the same whichever other dims or repeats are swept alongside it."""

    def one(d, r, s):
        return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, d), r), s)

    d = jnp.asarray(dims, jnp.int32)[:, None, None]
    r = jnp.asarray(repeats, jnp.int32)[None, :, None]
    s = jnp.arange(num_starts, dtype=jnp.int32)[None, None, :]
    d, r, s = jnp.broadcast_arrays(d, r, s)
    return jax.vmap(one)(d.ravel(), r.ravel(), s.ravel()).reshape(d.shape)


# ----------------------------------------------------------------------------------------------------------
# checked inputs and the sweep


@dataclasses.dataclass(frozen=True)
class _Problem:
    """Checked estimator inputs: what every sweep of one estimate shares."""

    log_prob_fn: Callable
    params: Any
    x0s: np.ndarray  # [S, D]
    target: Target
    dims: list[int]
    num_classes: int
    key: jax.Array
    basis: str
    nonzeros: int
    bounds: tuple[float, float] | None
    max_per_call: int
    fresh_starts: bool


def _check_budget(budget: Any, name: str) -> Budget:
    if not isinstance(budget, Budget):
        raise EstimatorInputError(f"{name}: must be a Budget, got {budget!r}")
    if not (budget.lr > 0 and int(budget.steps) >= 1 and budget.radius > 0):
        raise EstimatorInputError(f"{name}: needs lr > 0, steps >= 1 and radius > 0, got {budget}")
    if budget.adam not in ("bias_corrected", "released") or budget.stop not in ("score", "released"):
        raise EstimatorInputError(f"{name}: adam must be bias_corrected/released and stop score/released")
    return budget


def prepare(log_prob_fn, x0s, target, dims, key, *, params=None, basis="gaussian", nonzeros=1, bounds=None,
            max_per_call=None, fresh_starts=False, repeats=None) -> _Problem:  # fmt: skip
    """Checks every input of an estimate once (see `checks`); raises EstimatorInputError naming the argument."""
    key = checks.check_key(key)
    bounds = checks.check_bounds(bounds)
    x0s = checks.check_x0s(x0s, bounds)
    t = as_target(target)
    dims = checks.check_dims(dims, x0s.shape[1])
    if basis not in BASES:
        raise EstimatorInputError(f"basis: must be one of {BASES}, got {basis!r}")
    if basis == "axis" and not 1 <= int(nonzeros) <= x0s.shape[1]:
        raise EstimatorInputError(f"nonzeros: must be in [1, D={x0s.shape[1]}], got {nonzeros}")
    if fresh_starts and repeats is not None and len(x0s) != len(dims) * repeats:
        raise EstimatorInputError(
            f"x0s: fresh_starts needs one start point per (d, repeat): {len(dims)} x {repeats}, got {len(x0s)}"
        )
    if max_per_call is not None and (not checks._is_int(max_per_call) or max_per_call < 1):
        raise EstimatorInputError(f"max_per_call: must be a positive integer or None, got {max_per_call!r}")
    logp = checks.call_model(log_prob_fn, params, x0s)
    checks.check_target_classes(t, logp.shape[1])
    _refuse_starts_in_target(logp, t)
    per = int(max_per_call) if max_per_call else checks.max_per_call_from_memory(max(dims), x0s.shape[1])
    return _Problem(log_prob_fn, params, x0s, t, dims, logp.shape[1], key, basis, int(nonzeros), bounds, per,
                    bool(fresh_starts))  # fmt: skip


def _refuse_starts_in_target(logp: np.ndarray, t: Target) -> None:
    logp = np.asarray(jax.nn.log_softmax(jnp.asarray(logp), axis=1))
    spec = _spec(t, logp.shape[1], DEFAULT, None)
    args = [jnp.asarray(spec[k]) for k in ("mask", "k", "use_argmax", "level")]
    ok = np.asarray(jax.vmap(lambda lp: _scores(lp, *args)[2])(jnp.asarray(logp)))
    already = np.flatnonzero(ok)
    if already.size:
        raise EstimatorInputError(
            f"x0s: {already.size} of {len(logp)} start points already reach the target {t.classes} (indices "
            f"{already[:8].tolist()}{'...' if already.size > 8 else ''}); start from points outside the target region"
        )


def _sweep(pr: _Problem, repeats: Sequence[int], budget: Budget) -> dict[str, np.ndarray]:
    """Every (d, repeat, start) subspace of `pr` with `budget`: arrays [len(dims), len(repeats), S] (S = 1 with
    fresh starts, where (d_i, repeat r) starts from x0s[i * repeats_total + r])."""
    dmax = max(pr.dims)
    takes_params = pr.params is not None
    static = (pr.log_prob_fn, takes_params, dmax, pr.basis, pr.nonzeros)
    lane = sweep.vmapped(_lane, in_axes=(0, 0, 0, None, None), static=static)
    reps = np.asarray(repeats, np.int64)
    if pr.fresh_starts:
        n_rep = len(pr.x0s) // len(pr.dims)
        idx = (np.arange(len(pr.dims))[:, None] * n_rep + reps[None, :]).ravel()
        x_col, s = pr.x0s[idx], 1
    else:
        s = len(pr.x0s)
        x_col = np.tile(pr.x0s, (len(pr.dims) * len(reps), 1))
    keys = subspace_keys(pr.key, pr.dims, reps, s).ravel()
    d_col = np.repeat(np.asarray(pr.dims, np.int32), len(reps) * s)
    spec = _spec(pr.target, pr.num_classes, budget, pr.bounds)
    params = pr.params if takes_params else jnp.zeros(())
    n = d_col.shape[0]
    # Calls of a power-of-two number of subspaces (padded by repeating the last one): sweeps of other sizes
    # (other repeats, the convergence subset, other classes) reuse the same few compilations.
    per = min(_bucket(n), _bucket(pr.max_per_call))
    parts = []
    for i in range(0, n, per):
        j = min(i + per, n)
        take = np.concatenate([np.arange(i, j), np.full(per - (j - i), j - 1)])
        out = lane(keys[take], d_col[take], x_col[take], params, spec)
        parts.append(sweep.to_numpy(out, j - i))
    return {k: np.concatenate([q[k] for q in parts]).reshape(len(pr.dims), len(reps), s) for k in parts[0]}


def sweep_subspaces(
    log_prob_fn: Callable,
    x0s: Any,
    target: Any,
    dims: Sequence[int],
    repeats: int,
    key: jax.Array,
    *,
    params: Any = None,
    budget: Budget = DEFAULT,
    basis: str = "gaussian",
    nonzeros: int = 1,
    bounds: tuple[float, float] | None = None,
    max_per_call: int | None = None,
    fresh_starts: bool = False,
) -> dict[str, np.ndarray]:
    """Optimises every (d, repeat, start point) subspace; returns arrays [len(dims), repeats, S].

    `best_score` (maximal target probability reached; k·min p over a boundary's classes), `success` (target
    reached at some step), `steps` (Adam steps before stopping), `nonfinite` (stopped at a NaN/inf),
    `saturated` (fraction of coordinates on the box at the end point; 0 without bounds). All subspaces are one
    `jit(vmap)` call (or calls of `max_per_call` subspaces, by default as many as a quarter of the free memory
    holds) sharded over devices. With `params`, `log_prob_fn(params, x)` (params traced: new weights of the same
    shapes do not recompile); otherwise `log_prob_fn(x)`. `fresh_starts`: x0s holds one start point per
    (d, repeat), len(dims) × repeats of them, in that order (the released protocol); the result has S = 1.
    """
    if not checks._is_int(repeats) or repeats < 1:
        raise EstimatorInputError(f"repeats: must be a positive integer, got {repeats!r}")
    budget = _check_budget(budget, "budget")
    pr = prepare(log_prob_fn, x0s, target, dims, key, params=params, basis=basis, nonzeros=nonzeros, bounds=bounds,
                 max_per_call=max_per_call, fresh_starts=fresh_starts, repeats=int(repeats))  # fmt: skip
    return _sweep(pr, range(int(repeats)), budget)


# ----------------------------------------------------------------------------------------------------------
# the estimator


@dataclasses.dataclass
class CriticalDimension:
    """The result of `critical_dimension` (see its docstring); `to_dict()` gives the JSON-ready summary."""

    dims: list[int]
    dim: int
    target: Target
    success_rate: np.ndarray  # [len(dims)]
    max_prob: np.ndarray  # [len(dims)] mean over subspaces of the best score
    max_prob_sd: np.ndarray
    mean_steps: np.ndarray
    d_star: float
    d_star_error: float
    d_star_bracket: str
    d_star_probability: dict
    d_star_success: dict
    d_star_grid: float
    effective_dimension: float
    fit: dict | None
    converged: bool | None
    convergence: dict | None
    nonfinite_subspaces: int
    saturated_fraction: float
    raw: dict[str, np.ndarray]

    def at_threshold(self, threshold: float, num_boot: int = 200, seed: int = 0) -> dict[str, Any]:
        """d* of the high-certainty manifold {p_class ≥ threshold} read from the same subspaces: the crossing of
        the fraction of subspaces whose best score reached `threshold` (valid up to the stopping score)."""
        hit = (self.raw["best_score"].reshape(len(self.dims), -1) >= threshold).astype(np.float64)
        return bootstrap_crossing(self.dims, hit, 0.5, free_levels=False, num_boot=num_boot, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("dims", "d_star", "d_star_error", "d_star_bracket", "d_star_grid")}
        out |= {k: getattr(self, k) for k in ("effective_dimension", "fit", "converged", "convergence")}
        out |= {k: getattr(self, k).tolist() for k in ("success_rate", "max_prob", "max_prob_sd", "mean_steps")}
        return out | {
            "D": self.dim,
            "target": list(self.target.classes),
            "threshold": self.target.threshold,
            "d_star_success": self.d_star_success["d_star"],
            "d_star_success_error": self.d_star_success["error"],
            "nonfinite_subspaces": self.nonfinite_subspaces,
            "saturated_fraction": self.saturated_fraction,
        }


def _estimate(dims, raw, t: Target, fit_to: str, num_boot: int, seed: int):
    score = raw["best_score"].reshape(len(dims), -1)
    succ = raw["success"].reshape(len(dims), -1).astype(np.float64)
    prob = bootstrap_crossing(dims, score, t.level, free_levels=True, num_boot=num_boot, seed=seed)
    rate = bootstrap_crossing(dims, succ, 0.5, free_levels=False, num_boot=num_boot, seed=seed + 1)
    main = prob if fit_to == "probability" else rate
    return main, prob, rate, succ.mean(axis=1), score


def _convergence(pr: _Problem, raw, main, budget, check, n_check, fit_to, tolerance) -> tuple[bool, dict]:
    """Reruns the first `n_check` repeats with `check` (more steps); converged when d* on that subset moves by
    at most the estimate's bootstrap error (or `tolerance` · d* when given or when no error is available). A d*
    that is not finite at both budgets (never reached) counts as converged only if no success rate moved by more
    than 0.1."""
    big = _sweep(pr, range(n_check), check)
    small = {k: v[:, :n_check] for k, v in raw.items()}
    m_small = _estimate(pr.dims, small, pr.target, fit_to, 0, 0)[0]["d_star"]
    m_big = _estimate(pr.dims, big, pr.target, fit_to, 0, 0)[0]["d_star"]
    err = main["error"]
    rel = 0.15 if tolerance is None else tolerance  # relative, when no bootstrap error is available
    allowed = err if tolerance is None and math.isfinite(err) else rel * abs(m_small)
    moved = m_big - m_small
    converged = bool(abs(moved) <= allowed)
    rate = {n: r["success"].reshape(len(pr.dims), -1).mean(axis=1) for n, r in (("s", small), ("b", big))}
    if not (math.isfinite(m_small) and math.isfinite(m_big)):  # never reached at one budget or both
        moved = math.nan if m_small == m_big else m_big - m_small
        converged = bool(m_small == m_big and np.max(np.abs(rate["b"] - rate["s"])) <= 0.1)
    return converged, {
        "budget": dataclasses.asdict(budget),
        "check_budget": dataclasses.asdict(check),
        "check_repeats": n_check,
        "d_star_subset": m_small,
        "d_star_subset_check": m_big,
        "moved": moved,
        "allowed": allowed,
        "success_rate_subset": rate["s"].tolist(),
        "success_rate_subset_check": rate["b"].tolist(),
    }


def _result(pr: _Problem, raw, estimate: tuple, converged, conv) -> CriticalDimension:
    main, prob, rate, succ_rate, score = estimate
    ok = raw["success"].astype(bool)
    dim = int(pr.x0s.shape[1])
    return CriticalDimension(
        dims=list(pr.dims),
        dim=dim,
        target=pr.target,
        success_rate=succ_rate,
        max_prob=score.mean(axis=1),
        max_prob_sd=score.std(axis=1),
        mean_steps=raw["steps"].reshape(len(pr.dims), -1).mean(axis=1),
        d_star=main["d_star"],
        d_star_error=main["error"],
        d_star_bracket=main["bracket"],
        d_star_probability=prob,
        d_star_success=rate,
        d_star_grid=grid_crossing(pr.dims, succ_rate),
        effective_dimension=dim - main["d_star"],
        fit=main["fit"],
        converged=converged,
        convergence=conv,
        nonfinite_subspaces=int(raw["nonfinite"].sum()),
        saturated_fraction=float(raw["saturated"][ok].mean()) if ok.any() else 0.0,
        raw=raw,
    )


def critical_dimension(
    log_prob_fn: Callable,
    x0s: Any,
    target: Any,
    dims: Sequence[int],
    repeats: int,
    key: jax.Array,
    *,
    params: Any = None,
    budget: Budget = DEFAULT,
    check_budget: Budget | str | None = "longer",
    check_repeats: int | None = None,
    tolerance: float | None = None,
    basis: str = "gaussian",
    nonzeros: int = 1,
    bounds: tuple[float, float] | None = None,
    fit_to: str = "probability",
    num_boot: int = 200,
    max_per_call: int | None = None,
    fresh_starts: bool = False,
) -> CriticalDimension:
    """The critical dimension d*₅₀ of the target region of a model, by random cutting planes.

    Args:
      log_prob_fn: a JAX function, inputs [B, D] -> log-probabilities or logits [B, C] (not probabilities); with
        `params`, called as `log_prob_fn(params, x)` (a model's apply; weights traced, so models of one shape
        share a compilation). `Ensemble(apply)` combines members stacked on a leading axis.
      x0s: start points [S, D] (none may already reach the target; inside `bounds` when given).
      target: a class, a sequence of k classes (their boundary) or a `Target` (confidence threshold).
      dims: subspace dimensions d to sweep, integers in [1, D].
      repeats: random subspaces per (d, start point).
      key: a JAX PRNG key (`jax.random.key(0)`); subspace (d, r, s) uses fold_in(key, d, r, s).
      budget: the optimiser budget (default: Adam lr 0.1, <= 300 steps, stop at score 0.99; `RELEASED` is the
        released notebook's optimiser).
      check_budget: "longer" (default: the same rate with 4x the steps, `budget.longer(4)`), a Budget, or None
        (no check). The first `check_repeats` repeats (default ceil(repeats / 4)) are rerun on the same subspaces;
        `converged` is |d*_check − d*_budget| on that subset <= the estimate's bootstrap error (or `tolerance` ·
        d* when `tolerance` is given).
      basis / nonzeros: "gaussian" (unit-norm normal rows, released), "orthonormal" or "axis" (`nonzeros` random
        coordinates per row).
      bounds: (lo, hi) box of valid inputs (pixels in [0, 1]): the search stays on the data (points clipped into
        the box); start points outside it are refused. None: unconstrained (the released protocol).
      fit_to: "probability" (the released estimate: the sigmoid in log d fitted to the mean maximal target
        probability, crossing the target's level, 0.5) or "success" (fitted to the success rate, crossing 0.5).
      num_boot: bootstrap resamples (over the subspaces at each d) for the error bar.
      max_per_call: at most this many subspaces per compiled call; default from the free memory.
      fresh_starts: one start point per (d, repeat) (x0s has len(dims) × repeats rows, d-major), so the
        bootstrap also resamples start points (the released protocol).

    Returns:
      CriticalDimension with per-d success rates and maximal target probabilities, the fit, d_star (and its
      bootstrap error), both fits' d*, the fit-free d_star_grid (smallest swept d with success rate >= 0.5), the
      effective dimension D − d*, `converged` and `convergence`, `saturated_fraction` (mean fraction of the
      coordinates on the box at the successful end points).
    """
    if fit_to not in ("probability", "success"):
        raise EstimatorInputError(f"fit_to: must be 'probability' or 'success', got {fit_to!r}")
    if not checks._is_int(repeats) or repeats < 1:
        raise EstimatorInputError(f"repeats: must be a positive integer, got {repeats!r}")
    budget = _check_budget(budget, "budget")
    check = budget.longer(4) if check_budget == "longer" else check_budget
    if check is not None:
        check = _check_budget(check, "check_budget")
    pr = prepare(log_prob_fn, x0s, target, dims, key, params=params, basis=basis, nonzeros=nonzeros, bounds=bounds,
                 max_per_call=max_per_call, fresh_starts=fresh_starts, repeats=int(repeats))  # fmt: skip
    raw = _sweep(pr, range(int(repeats)), budget)
    estimate = _estimate(pr.dims, raw, pr.target, fit_to, num_boot, 0)
    main, converged, conv = estimate[0], None, None
    if check is not None:
        n_check = min(int(check_repeats or max(1, -(-repeats // 4))), int(repeats))
        converged, conv = _convergence(pr, raw, main, budget, check, n_check, fit_to, tolerance)
    return _result(pr, raw, estimate, converged, conv)


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """`log_prob(stacked_params, x)` of an ensemble whose members are `apply(params_i, x)` (logits or
    log-probabilities) with parameters stacked on a leading axis.

    mode "product": the members' log-probabilities averaged, then renormalised (a product of experts: the
      region where the members agree, roughly the intersection of their class manifolds);
    mode "mixture": the log of the members' averaged probabilities (the ensemble's predictive distribution, what
      the released notebook scores).
    A frozen dataclass, so equal ensembles are one static argument of the compiled sweep (one compilation).
    """

    apply: Callable
    mode: str = "product"

    def __post_init__(self):
        if self.mode not in ("product", "mixture"):
            raise EstimatorInputError(f"mode: must be 'product' or 'mixture', got {self.mode!r}")

    def __call__(self, stacked: Any, x: jax.Array) -> jax.Array:
        logp = jax.vmap(lambda p: jax.nn.log_softmax(self.apply(p, x), axis=-1))(stacked)
        if self.mode == "product":
            return jax.nn.log_softmax(logp.mean(axis=0), axis=-1)
        return jax.nn.logsumexp(logp, axis=0) - math.log(logp.shape[0])
