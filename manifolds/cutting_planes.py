"""Random cutting planes: the critical dimension d* of a class manifold (or a k-class boundary) of any model.

Fort, Cubuk, Ganguli, Schoenholz (2022). For a start point x0 (not in the target region) and a random
d-dimensional affine subspace through it, x(θ) = x0 + θ M with M a d × D matrix, the subspace coordinates θ are
optimised from 0 to reach the target. By Gordon's escape theorem a random subspace of codimension D − d meets a
set S of Gaussian width w(S) with high probability once d > D − w(S)²: the dimension d*₅₀ at which half the
random subspaces reach the target estimates the set's codimension, and D − d* its effective dimension.

    res = critical_dimension(log_prob_fn, x0s, target=3, dims=(1, 2, 4, 8, 16), repeats=8, key=jax.random.key(0))
    res.d_star, res.d_star_error, res.effective_dimension, res.converged

Everything for one sweep runs as one compiled function: a `vmap` over every (d, repeat, start point) with bases
of one fixed shape (max(dims) rows; rows ≥ d are zero, so their coordinates get zero gradients and never move),
Adam in a `lax.scan` (chunks of steps inside a `lax.while_loop` that ends once every subspace has stopped; a
stopped subspace is frozen by masking), sharded over devices through `common.sweep.vmapped`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from common import sweep

BASES = ("gaussian", "orthonormal", "axis")
_CHUNK = 25  # optimiser steps per scan inside the early-stopping while_loop


class EstimatorInputError(ValueError):
    """Bad input to the estimator (shapes, non-finite log-probabilities, impossible dims or targets)."""


@dataclasses.dataclass(frozen=True)
class Target:
    """What the subspace coordinates are optimised to reach.

    classes: one class (its class manifold) or k ≥ 2 classes (their k-class boundary: cross-entropy to the
      uniform 1/k distribution over them).
    threshold: None for a single class means "the class is the argmax" (the class region: invariant to rescaling
      the logits); a number p means "p_class ≥ p" (a high-confidence class manifold). For a boundary the score is
      k · min over the k classes of their probability (1 exactly at the uniform 1/k point) and a subspace succeeds
      when it reaches `threshold` (default 0.5).
    """

    classes: tuple[int, ...]
    threshold: float | None = None

    @property
    def k(self) -> int:
        return len(self.classes)

    @property
    def level(self) -> float:
        """The score level a subspace must reach (0.5 for the argmax criterion, the reference of the prob. fit)."""
        if self.threshold is None:
            return 0.5
        return float(self.threshold)


def as_target(target: Any) -> Target:
    """A Target from a class index, a sequence of classes (a boundary) or a Target."""
    if isinstance(target, Target):
        t = target
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        t = Target((int(target),))
    elif isinstance(target, (tuple, list, np.ndarray)):
        t = Target(tuple(int(c) for c in target))
    else:
        raise EstimatorInputError(f"target must be a class, a sequence of classes or a Target, got {target!r}")
    if t.k == 0:
        raise EstimatorInputError("target: the set of target classes is empty")
    if len(set(t.classes)) != t.k:
        raise EstimatorInputError(f"target: repeated classes in {t.classes}")
    if t.threshold is not None and not (0.0 < float(t.threshold) < 1.0):
        raise EstimatorInputError(f"target: threshold must be in (0, 1), got {t.threshold!r}")
    return t


@dataclasses.dataclass(frozen=True)
class Budget:
    """The optimiser budget for one subspace: Adam with rate `lr`, at most `steps` steps, stopping early once the
    target is reached with score ≥ `stop_score`. The defaults are the released notebook's settings."""

    lr: float = 5e-2
    steps: int = 300
    stop_score: float = 0.99
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8


RELEASED = Budget()
LARGER = Budget(lr=0.2, steps=1200)  # the convergence rerun: 4x the steps, 4x the rate


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
        raise EstimatorInputError(f"basis must be one of {BASES}, got {kind!r}")
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


def optimize_subspace(
    log_prob: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x0: jax.Array,
    basis: jax.Array,
    spec: dict[str, jax.Array],
) -> dict[str, jax.Array]:
    """Optimises θ (from 0) on x0 + θ·basis with Adam toward the target; one subspace, pure and vmappable.

    `log_prob(params, x[B, D]) -> [B, C]` (log-softmax is applied again, so logits work too); `spec` holds the
    target (`mask` k-hot [C], `k`, `use_argmax`, `level`), the budget (`lr`, `steps`, `stop_score`, `b1`, `b2`,
    `eps`) and the input bounds (`lo`, `hi`, `clip`). Returns the best score reached, whether the target was
    reached at any step, the number of steps taken before stopping, the final θ and `nonfinite` (the loss, score
    or gradient became NaN/inf: the subspace stops there, keeping what it reached before).
    """
    dmax = basis.shape[0]

    def point(theta):
        x = x0 + theta @ basis
        return jnp.where(spec["clip"] > 0, jnp.clip(x, spec["lo"], spec["hi"]), x)

    def evaluate(theta):
        logp = jax.nn.log_softmax(log_prob(params, point(theta)[None])[0])
        return _scores(logp, spec["mask"], spec["k"], spec["use_argmax"], spec["level"])

    def loss_fn(theta):
        loss, score, success = evaluate(theta)
        return loss, (score, success)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(c, _):
        (loss, (score, success)), g = grad_fn(c["theta"])
        finite = jnp.isfinite(loss) & jnp.isfinite(score) & jnp.all(jnp.isfinite(g))
        live = ~c["done"] & finite
        best = jnp.maximum(c["best"], jnp.where(live, score, 0.0))
        reached = c["reached"] | (success & live)
        nonfinite = c["nonfinite"] | (~c["done"] & ~finite)
        stop = c["done"] | ~finite | (success & (score >= spec["stop_score"])) | (c["t"] >= spec["steps"])
        t1 = c["t"] + 1.0
        m = spec["b1"] * c["m"] + (1 - spec["b1"]) * g
        v = spec["b2"] * c["v"] + (1 - spec["b2"]) * g * g
        mhat = m / (1 - spec["b1"] ** t1)
        vhat = v / (1 - spec["b2"] ** t1)
        theta = c["theta"] - spec["lr"] * mhat / (jnp.sqrt(vhat) + spec["eps"])
        new = {"theta": theta, "m": m, "v": v, "t": t1}
        frozen = {k: jnp.where(stop, c[k], new[k]) for k in new}
        return {**frozen, "best": best, "reached": reached, "done": stop, "nonfinite": nonfinite}, None

    def chunk(c):
        return jax.lax.scan(step, c, None, length=_CHUNK)[0]

    zeros = jnp.zeros((dmax,), jnp.float32)
    c0 = {
        "theta": zeros,
        "m": zeros,
        "v": zeros,
        "t": jnp.zeros((), jnp.float32),
        "best": jnp.zeros((), jnp.float32),
        "reached": jnp.zeros((), bool),
        "done": jnp.zeros((), bool),
        "nonfinite": jnp.zeros((), bool),
    }
    # A step scores θ_t before updating it; the step at t = steps only scores θ_steps and stops.
    c = jax.lax.while_loop(lambda c: ~c["done"], chunk, c0)
    out = {"best_score": c["best"], "success": c["reached"], "steps": c["t"], "theta": c["theta"]}
    return {**out, "nonfinite": c["nonfinite"]}


@functools.lru_cache(maxsize=64)
def _lane_fn(log_prob: Callable, dmax: int, basis: str, nonzeros: int) -> Callable:
    """The per-subspace function (key, d, x0 | params, spec) that the sweep vmaps; cached so it compiles once."""

    def lane(key, d, x0, params, spec):
        b = random_basis(key, d, dmax, x0.shape[0], basis, nonzeros)
        out = optimize_subspace(log_prob, params, x0, b, spec)
        return {k: out[k] for k in ("best_score", "success", "steps", "nonfinite")}

    return lane


def _with_params(log_prob_fn: Callable) -> Callable:
    @functools.wraps(log_prob_fn)
    def f(params, x):
        del params
        return log_prob_fn(x)

    return f


_NO_PARAMS_CACHE: dict[Any, Callable] = {}


def _as_two_arg(log_prob_fn: Callable, params: Any) -> tuple[Callable, Any]:
    if params is not None:
        return log_prob_fn, params
    if log_prob_fn not in _NO_PARAMS_CACHE:
        _NO_PARAMS_CACHE[log_prob_fn] = _with_params(log_prob_fn)
    return _NO_PARAMS_CACHE[log_prob_fn], jnp.zeros(())


def _spec(target: Target, num_classes: int, budget: Budget, bounds) -> dict[str, np.ndarray]:
    mask = np.zeros((num_classes,), np.float32)
    mask[list(target.classes)] = 1.0
    lo, hi = (0.0, 0.0) if bounds is None else bounds
    f = np.float32
    return {
        "mask": mask,
        "k": f(target.k),
        "use_argmax": f(target.k == 1 and target.threshold is None),
        "level": f(target.level),
        "lr": f(budget.lr),
        "steps": f(budget.steps),
        "stop_score": f(budget.stop_score),
        "b1": f(budget.b1),
        "b2": f(budget.b2),
        "eps": f(budget.eps),
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


def check_inputs(log_prob_fn: Callable, x0s: Any, target: Any, dims: Sequence[int], params: Any = None):
    """Validates the estimator's inputs; returns (x0s float32 [S, D], Target, sorted dims, C, log-probs at x0s).

    Raises EstimatorInputError (one line) for: x0s not [S, D] or non-finite, log_prob_fn not returning finite
    [S, C], an empty or out-of-range target, a d outside [1, D], and start points already reaching the target.
    """
    x0s = np.asarray(x0s, np.float32)
    if x0s.ndim != 2 or x0s.shape[0] == 0 or x0s.shape[1] == 0:
        raise EstimatorInputError(f"x0s must be start points [S, D] with S, D >= 1, got shape {x0s.shape}")
    if not np.all(np.isfinite(x0s)):
        raise EstimatorInputError("x0s holds non-finite values")
    s, dim = x0s.shape
    t = as_target(target)
    dims = [int(d) for d in dims]
    if not dims:
        raise EstimatorInputError("dims is empty")
    if any(d < 1 or d > dim for d in dims):
        raise EstimatorInputError(f"dims must lie in [1, D={dim}] (the input dimension), got {tuple(dims)}")
    dims = sorted(set(dims))
    fn, p = _as_two_arg(log_prob_fn, params)
    try:
        out = np.asarray(fn(p, jnp.asarray(x0s)))
    except Exception as e:  # noqa: BLE001 - any failure here is the user function's
        raise EstimatorInputError(f"log_prob_fn failed on inputs of shape {x0s.shape}: {type(e).__name__}: {e}") from e
    if out.ndim != 2 or out.shape[0] != s or out.shape[1] < 2:
        raise EstimatorInputError(
            f"log_prob_fn must map inputs [B, D] to log-probabilities [B, C] with C >= 2; for inputs {x0s.shape} "
            f"it returned shape {out.shape}"
        )
    if not np.all(np.isfinite(out)):
        bad = int(np.sum(~np.all(np.isfinite(out), axis=1)))
        raise EstimatorInputError(f"log_prob_fn returned non-finite values at {bad} of {s} start points")
    c = out.shape[1]
    if any(k < 0 or k >= c for k in t.classes):
        raise EstimatorInputError(f"target classes {t.classes} outside [0, {c}) (log_prob_fn has {c} classes)")
    logp = np.asarray(jax.nn.log_softmax(jnp.asarray(out), axis=1))
    spec = _spec(t, c, RELEASED, None)
    _, _, ok = jax.vmap(lambda lp: _scores(lp, *(jnp.asarray(spec[k]) for k in ("mask", "k", "use_argmax", "level"))))(
        jnp.asarray(logp)
    )
    already = np.flatnonzero(np.asarray(ok))
    if already.size:
        raise EstimatorInputError(
            f"{already.size} of {s} start points already reach the target {t.classes} (indices "
            f"{already[:8].tolist()}{'...' if already.size > 8 else ''}); start from points outside the target region"
        )
    return x0s, t, dims, c, logp


def sweep_subspaces(
    log_prob_fn: Callable,
    x0s: Any,
    target: Any,
    dims: Sequence[int],
    repeats: int | Sequence[int],
    key: jax.Array,
    *,
    params: Any = None,
    budget: Budget = RELEASED,
    basis: str = "gaussian",
    nonzeros: int = 1,
    bounds: tuple[float, float] | None = None,
    max_per_call: int | None = None,
    dmax: int | None = None,
) -> dict[str, np.ndarray]:
    """Optimises every (d, repeat, start point) subspace; returns arrays [len(dims), repeats, S].

    `best_score` (maximal target probability reached; k·min p over a boundary's classes), `success` (target
    reached at some step), `steps` (Adam steps before stopping), `nonfinite` (stopped at a NaN/inf). All
    subspaces are one `jit(vmap)` call (or calls
    of `max_per_call` subspaces, to bound memory) sharded over devices; bases have max(dims) rows (or `dmax`).
    With `params`, `log_prob_fn(params, x)` (params traced: new weights of the same shapes do not recompile);
    otherwise `log_prob_fn(x)`.
    """
    x0s, t, dims, c, _ = check_inputs(log_prob_fn, x0s, target, dims, params)
    reps = list(range(repeats)) if isinstance(repeats, (int, np.integer)) else [int(r) for r in repeats]
    if not reps:
        raise EstimatorInputError("repeats must be >= 1")
    if basis not in BASES:
        raise EstimatorInputError(f"basis must be one of {BASES}, got {basis!r}")
    dim = x0s.shape[1]
    if basis == "axis" and not 1 <= nonzeros <= dim:
        raise EstimatorInputError(f"nonzeros must be in [1, D={dim}], got {nonzeros}")
    if bounds is not None and not (np.isfinite(bounds[0]) and np.isfinite(bounds[1]) and bounds[0] < bounds[1]):
        raise EstimatorInputError(f"bounds must be finite (lo, hi) with lo < hi, got {bounds!r}")
    if not (budget.lr > 0 and budget.steps >= 1):
        raise EstimatorInputError(f"budget needs lr > 0 and steps >= 1, got {budget}")
    dmax = int(dmax or max(dims))
    fn, p = _as_two_arg(log_prob_fn, params)
    lane = sweep.vmapped(_lane_fn(fn, dmax, basis, int(nonzeros)), in_axes=(0, 0, 0, None, None))
    s = x0s.shape[0]
    keys = subspace_keys(key, dims, reps, s).ravel()
    d_col = np.repeat(np.asarray(dims, np.int32), len(reps) * s)
    x_col = np.tile(x0s, (len(dims) * len(reps), 1))
    spec = _spec(t, c, budget, bounds)
    n = d_col.shape[0]
    # Calls of a power-of-two number of subspaces (padded by repeating the last one): sweeps of other sizes
    # (other repeats, the convergence subset, other classes) reuse the same few compilations.
    per = min(_bucket(n), _bucket(int(max_per_call or 4096)))
    parts = []
    for i in range(0, n, per):
        j = min(i + per, n)
        take = np.concatenate([np.arange(i, j), np.full(per - (j - i), j - 1)])
        out = lane(keys[take], d_col[take], x_col[take], p, spec)
        parts.append({k: np.asarray(v)[: j - i] for k, v in sweep.to_numpy(out).items()})
    shape = (len(dims), len(reps), s)
    return {k: np.concatenate([q[k] for q in parts]).reshape(shape) for k in parts[0]}


# ----------------------------------------------------------------------------------------------------------
# the sigmoid fit and d*


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _mid_crossing(x: np.ndarray, y: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """Per row of y [B, n]: log-linear interpolation of the first crossing of `mid` [B] (x[0] if y[:, 0] >= mid)."""
    above = y >= mid[:, None]
    j = np.where(above.any(axis=1), above.argmax(axis=1), y.shape[1] - 1)
    jm = np.maximum(j - 1, 0)
    rows = np.arange(y.shape[0])
    y0, y1 = y[rows, jm], y[rows, j]
    f = np.clip((mid - y0) / np.maximum(y1 - y0, 1e-9), 0.0, 1.0)
    return np.where(j == 0, x[0], x[jm] + f * (x[j] - x[jm]))


def fit_sigmoids(
    dims: Sequence[float], values: np.ndarray, *, free_levels: bool = True, init: np.ndarray | None = None
) -> np.ndarray:
    """Least-squares fits of y(d) = lo + (hi − lo)·σ((log d − μ)/w) to each row of `values` [B, len(dims)].

    lo = 0 and hi = 1 unless `free_levels`. Batched projected Levenberg-Marquardt (60 iterations, bounds
    0.02 <= w <= 10·span, 0 <= lo <= hi <= 1), started from `init` [B, 4] or from the log-linear interpolation of
    each row's crossing of its mid level. Returns [B, 4] = (μ, w, lo, hi).
    """
    x = np.log(np.asarray(dims, np.float64))
    y = np.atleast_2d(np.asarray(values, np.float64))
    b = y.shape[0]
    span = max(x[-1] - x[0], 1.0)
    if init is None:
        mid = 0.5 * (y.min(axis=1) + y.max(axis=1)) if free_levels else np.full(b, 0.5)
        q = np.stack([_mid_crossing(x, y, mid), np.full(b, 0.3 * span), y.min(axis=1), y.max(axis=1)], axis=1)
    else:
        q = np.array(np.broadcast_to(init, (b, 4)), np.float64)
    if not free_levels:
        q[:, 2], q[:, 3] = 0.0, 1.0
    lb = np.array([x[0] - 3 * span, 0.02, 0.0, 0.0])
    ub = np.array([x[-1] + 3 * span, 10 * span, 1.0, 1.0])
    n_free = 4 if free_levels else 2

    def project(q):
        q = np.clip(q, lb, ub)
        q[:, 3] = np.maximum(q[:, 3], q[:, 2] + 1e-6)
        return q

    def resid_jac(q):
        mu, w, lo, hi = (q[:, i : i + 1] for i in range(4))
        z = (x[None] - mu) / w
        s = _sigmoid(z)
        ds = s * (1 - s)
        r = lo + (hi - lo) * s - y
        jac = np.stack([-(hi - lo) * ds / w, -(hi - lo) * ds * z / w, 1 - s, s], axis=2)[:, :, :n_free]
        return r, jac

    q = project(q)
    lam = np.full(b, 1e-2)
    r, jac = resid_jac(q)
    loss = np.sum(r * r, axis=1)
    eye = np.eye(n_free)
    for _ in range(60):
        jtj = np.einsum("bni,bnj->bij", jac, jac)
        g = np.einsum("bni,bn->bi", jac, r)
        a = (
            jtj
            + lam[:, None, None] * eye * np.maximum(np.diagonal(jtj, axis1=1, axis2=2)[:, None, :], 1e-9)
            + 1e-10 * eye
        )
        step = -np.linalg.solve(a, g[..., None])[..., 0]
        cand = q.copy()
        cand[:, :n_free] += step
        cand = project(cand)
        r_new, jac_new = resid_jac(cand)
        loss_new = np.sum(r_new * r_new, axis=1)
        better = loss_new < loss
        q = np.where(better[:, None], cand, q)
        r = np.where(better[:, None], r_new, r)
        jac = np.where(better[:, None, None], jac_new, jac)
        loss = np.where(better, loss_new, loss)
        lam = np.where(better, lam * 0.3, lam * 10.0)
    return q


def fit_sigmoid(dims: Sequence[float], values: Sequence[float], *, free_levels: bool = True) -> dict[str, float]:
    """`fit_sigmoids` for one curve, as {"mu", "w", "lo", "hi"}."""
    q = fit_sigmoids(dims, np.asarray(values, np.float64)[None], free_levels=free_levels)[0]
    return {"mu": float(q[0]), "w": float(q[1]), "lo": float(q[2]), "hi": float(q[3])}


def crossings(
    dims: Sequence[float], values: np.ndarray, level: float = 0.5, *, free_levels: bool = True, init=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of `values` [B, len(dims)]: the d at which the sigmoid fitted in log d crosses `level`.

    Returns (d [B], bracket [B] in {"below", "inside", "above"}, fits [B, 4]). "below": the row already reaches
    `level` at the smallest d (d is reported as dims[0], an upper bound); "above": it never does (d = inf).
    Where the fitted curve misses the level the crossing falls back on log-linear interpolation of the data;
    crossings are clipped to [dims[0], dims[-1]].
    """
    dims_a = np.asarray(dims, np.float64)
    x = np.log(dims_a)
    y = np.atleast_2d(np.asarray(values, np.float64))
    fits = fit_sigmoids(dims_a, y, free_levels=free_levels, init=init)
    frac = (level - fits[:, 2]) / np.maximum(fits[:, 3] - fits[:, 2], 1e-12)
    ok = (frac > 0) & (frac < 1)
    fr = np.clip(frac, 1e-12, 1 - 1e-12)
    x_fit = fits[:, 0] + fits[:, 1] * np.log(fr / (1 - fr))
    x_lin = _mid_crossing(x, y, np.full(y.shape[0], level))
    d = np.exp(np.clip(np.where(ok, x_fit, x_lin), x[0], x[-1]))
    below = y[:, 0] >= level
    above = y.max(axis=1) < level
    d = np.where(below, dims_a[0], np.where(above, np.inf, d))
    bracket = np.where(below, "below", np.where(above, "above", "inside"))
    return d, bracket, fits


def crossing(dims: Sequence[float], values: Sequence[float], level: float = 0.5, *, free_levels: bool = True):
    """`crossings` for one curve: (d, bracket, fit dict or None when the data do not bracket `level`)."""
    d, br, fits = crossings(dims, np.asarray(values, np.float64)[None], level, free_levels=free_levels)
    fit = None if br[0] != "inside" else dict(zip(("mu", "w", "lo", "hi"), map(float, fits[0]), strict=True))
    return float(d[0]), str(br[0]), fit


def bootstrap_crossing(
    dims: Sequence[int],
    samples: np.ndarray,
    level: float = 0.5,
    *,
    free_levels: bool = True,
    num_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """d*: the crossing of the sigmoid fitted to the per-d means of `samples` [len(dims), n], with a bootstrap error.

    The n samples at each d are resampled with replacement `num_boot` times and refitted (from the fit to the full
    data); the error is the standard deviation of the finite bootstrap d*, with the 16th/84th percentiles.
    """
    samples = np.asarray(samples, np.float64).reshape(len(dims), -1)
    mean = samples.mean(axis=1)
    d, bracket, fit = crossing(dims, mean, level, free_levels=free_levels)
    out = {"d_star": d, "error": math.nan, "low": math.nan, "high": math.nan, "bracket": bracket, "fit": fit}
    if num_boot <= 0:
        return out
    rng = np.random.default_rng(seed)
    n = samples.shape[1]
    idx = rng.integers(0, n, size=(num_boot, len(dims), n))
    boot_y = np.take_along_axis(samples[None].repeat(num_boot, 0), idx, 2).mean(axis=2)
    init = None if fit is None else np.array([fit["mu"], fit["w"], fit["lo"], fit["hi"]])
    boots = crossings(dims, boot_y, level, free_levels=free_levels, init=init)[0]
    fin = boots[np.isfinite(boots)]
    if fin.size > 1:
        out.update(error=float(fin.std()), low=float(np.percentile(fin, 16)), high=float(np.percentile(fin, 84)))
    return out


def grid_crossing(dims: Sequence[int], rates: Sequence[float], level: float = 0.5) -> float:
    """The smallest swept d whose rate reaches `level` (inf if none): the fit-free estimate."""
    hit = [d for d, r in zip(dims, rates, strict=True) if r >= level]
    return float(hit[0]) if hit else math.inf


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
    raw: dict[str, np.ndarray]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dims": self.dims,
            "D": self.dim,
            "target": list(self.target.classes),
            "threshold": self.target.threshold,
            "success_rate": self.success_rate.tolist(),
            "max_prob": self.max_prob.tolist(),
            "max_prob_sd": self.max_prob_sd.tolist(),
            "mean_steps": self.mean_steps.tolist(),
            "d_star": self.d_star,
            "d_star_error": self.d_star_error,
            "d_star_bracket": self.d_star_bracket,
            "d_star_success": self.d_star_success["d_star"],
            "d_star_success_error": self.d_star_success["error"],
            "d_star_grid": self.d_star_grid,
            "effective_dimension": self.effective_dimension,
            "fit": self.fit,
            "converged": self.converged,
            "convergence": self.convergence,
            "nonfinite_subspaces": self.nonfinite_subspaces,
        }


def _estimate(dims, raw, t: Target, fit_to: str, num_boot: int, seed: int):
    score = raw["best_score"].reshape(len(dims), -1)
    succ = raw["success"].reshape(len(dims), -1).astype(np.float64)
    prob = bootstrap_crossing(dims, score, t.level, free_levels=True, num_boot=num_boot, seed=seed)
    rate = bootstrap_crossing(dims, succ, 0.5, free_levels=False, num_boot=num_boot, seed=seed + 1)
    main = prob if fit_to == "probability" else rate
    return main, prob, rate, succ.mean(axis=1), score


def critical_dimension(
    log_prob_fn: Callable,
    x0s: Any,
    target: Any,
    dims: Sequence[int],
    repeats: int,
    key: jax.Array,
    *,
    params: Any = None,
    budget: Budget = RELEASED,
    check_budget: Budget | None = LARGER,
    check_repeats: int | None = None,
    tolerance: float = 0.15,
    rate_tolerance: float = 0.15,
    basis: str = "gaussian",
    nonzeros: int = 1,
    bounds: tuple[float, float] | None = None,
    fit_to: str = "probability",
    num_boot: int = 200,
    max_per_call: int | None = None,
) -> CriticalDimension:
    """The critical dimension d*₅₀ of the target region of a model, by random cutting planes.

    Args:
      log_prob_fn: inputs [B, D] -> log-probabilities (or logits) [B, C]; with `params`, called as
        `log_prob_fn(params, x)` (a model's apply; weights traced, so models of one shape share a compilation).
        `ensemble_log_prob` averages several members' log-probabilities.
      x0s: start points [S, D] (none may already reach the target).
      target: a class, a sequence of k classes (their boundary) or a `Target` (confidence threshold).
      dims: subspace dimensions d to sweep, each in [1, D].
      repeats: random subspaces per (d, start point).
      key: PRNG key; subspace (d, r, s) uses fold_in(key, d, r, s).
      budget: the optimiser budget (default: the released Adam lr 5e-2, <= 300 steps, early stop).
      check_budget: a larger budget with which the first `check_repeats` repeats (default ceil(repeats / 4)) are
        rerun on the same subspaces; d* on that subset with both budgets gives `convergence` and `converged`
        (|d*_larger − d*_budget| <= tolerance · d*_budget and no success rate changed by more than
        `rate_tolerance`). None skips the check.
      basis / nonzeros: "gaussian" (unit-norm normal rows, released), "orthonormal" or "axis" (`nonzeros` random
        coordinates per row).
      bounds: optional (lo, hi) box for the inputs (e.g. pixels in [0, 1]); points are clipped into it.
      fit_to: "probability" (the released estimate: the sigmoid in log d fitted to the mean maximal target
        probability, crossing the target's level, 0.5) or "success" (fitted to the success rate, crossing 0.5).
      num_boot: bootstrap resamples for the error bar.
      max_per_call: at most this many subspaces per compiled call (memory); default all at once.

    Returns:
      CriticalDimension with per-d success rates and maximal target probabilities, the fit, d_star (and its
      bootstrap error), both fits' d*, the fit-free d_star_grid (smallest swept d with success rate >= 0.5), the
      effective dimension D − d*, `converged` and `convergence` (how far d* moved with the larger budget).
    """
    if fit_to not in ("probability", "success"):
        raise EstimatorInputError(f"fit_to must be 'probability' or 'success', got {fit_to!r}")
    if not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise EstimatorInputError(f"repeats must be a positive integer, got {repeats!r}")
    x0s, t, dims, _, _ = check_inputs(log_prob_fn, x0s, target, dims, params)
    kw = dict(params=params, basis=basis, nonzeros=nonzeros, bounds=bounds, max_per_call=max_per_call)
    raw = sweep_subspaces(log_prob_fn, x0s, t, dims, repeats, key, budget=budget, **kw)
    main, prob, rate, succ_rate, score = _estimate(dims, raw, t, fit_to, num_boot, 0)
    d_star = main["d_star"]
    dim = int(x0s.shape[1])
    converged, conv = None, None
    if check_budget is not None:
        n_check = int(check_repeats or max(1, -(-repeats // 4)))
        n_check = min(n_check, repeats)
        big = sweep_subspaces(log_prob_fn, x0s, t, dims, n_check, key, budget=check_budget, **kw)
        small = {k: v[:, :n_check] for k, v in raw.items()}
        m_small = _estimate(dims, small, t, fit_to, 0, 0)[0]["d_star"]
        m_big = _estimate(dims, big, t, fit_to, 0, 0)[0]["d_star"]
        r_small = small["success"].reshape(len(dims), -1).mean(axis=1)
        r_big = big["success"].reshape(len(dims), -1).mean(axis=1)
        rate_change = float(np.max(np.abs(r_big - r_small)))
        if math.isfinite(m_small) and math.isfinite(m_big):
            moved = m_big - m_small
            converged = bool(abs(moved) <= tolerance * m_small and rate_change <= rate_tolerance)
        else:
            moved = math.nan if m_small == m_big else (m_big - m_small)
            converged = bool(m_small == m_big and rate_change <= rate_tolerance)
        conv = {
            "budget": dataclasses.asdict(budget),
            "check_budget": dataclasses.asdict(check_budget),
            "check_repeats": n_check,
            "d_star_subset": m_small,
            "d_star_subset_larger_budget": m_big,
            "moved": moved,
            "relative_move": moved / m_small if math.isfinite(m_small) and m_small > 0 else math.nan,
            "tolerance": tolerance,
            "success_rate_subset": r_small.tolist(),
            "success_rate_subset_larger_budget": r_big.tolist(),
            "max_success_rate_change": rate_change,
            "rate_tolerance": rate_tolerance,
        }
    return CriticalDimension(
        dims=list(dims),
        dim=dim,
        target=t,
        success_rate=succ_rate,
        max_prob=score.mean(axis=1),
        max_prob_sd=score.std(axis=1),
        mean_steps=raw["steps"].reshape(len(dims), -1).mean(axis=1),
        d_star=d_star,
        d_star_error=main["error"],
        d_star_bracket=main["bracket"],
        d_star_probability=prob,
        d_star_success=rate,
        d_star_grid=grid_crossing(dims, succ_rate),
        effective_dimension=dim - d_star,
        fit=main["fit"],
        converged=converged,
        convergence=conv,
        nonfinite_subspaces=int(raw["nonfinite"].sum()),
        raw=raw,
    )


def ensemble_log_prob(apply: Callable[[Any, jax.Array], jax.Array]) -> Callable[[Any, jax.Array], jax.Array]:
    """log_prob(stacked_params, x) of the ensemble whose members are `apply(params_i, x)` (logits or
    log-probabilities) with parameters stacked on a leading axis: the members' log-probabilities averaged, then
    renormalised (log-softmax of the mean: a product of experts, the paper's ensemble mode)."""

    def f(stacked, x):
        logp = jax.vmap(lambda p: jax.nn.log_softmax(apply(p, x), axis=-1))(stacked)
        return jax.nn.log_softmax(logp.mean(axis=0), axis=-1)

    f.__name__ = f"ensemble_{getattr(apply, '__name__', 'apply')}"
    return f


@functools.lru_cache(maxsize=32)
def ensemble_of(apply: Callable) -> Callable:
    """`ensemble_log_prob(apply)`, one function object per `apply` (so repeated ensembles share compilations)."""
    return ensemble_log_prob(apply)
