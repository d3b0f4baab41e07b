"""Training to the limit: full-batch gradient descent on log L (exponential / logistic / cross-entropy loss).

Plain gradient descent at a constant rate converges in direction only logarithmically; the max-margin literature
(Lyu & Li) uses loss-normalised steps, i.e. gradient descent on log L, which is gradient flow under the time change
dt' = dt / L. Two step rules, both time changes of the same gradient flow:
  - "loss":  θ <- θ - η ∇ log L                      (∇L / L)
  - "unit":  θ <- θ - η ∇ log L / ‖∇ log L‖           (each step moves θ by η: no overflow whatever the order;
                                                      under "loss" an order-2 model grows exponentially in steps)
  - "sharpness": θ <- θ - min(η / |λ_max(∇² log L)|, max_lr) ∇ log L, the top Hessian eigenvalue tracked by one
    warm-started power iteration per step: a fixed fraction of the stability limit. The curvature of log L grows
    with the scale along directions of parameters of rate < λ_max (the softmax over examples sharpens while their
    gradients do not shrink), so a constant rate eventually oscillates there; this rule does not.
Logged per step: log L, min margin, γ = min margin / ‖θ‖_Λ^{1/λ_max} and the smoothed margin -log L / ‖θ‖_Λ^{1/λ_max}
(the quantity the theorem says gradient flow increases); the number of post-separation steps at which each did not
decrease is counted on device. A chunk is `common.checkpoint.guarded_scan` over steps; the runs (seeds) are trained
by `common.train_loop` (vmapped, checkpointed, resumable), with the problem described by a hashable `Spec`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from common import checkpoint, metrics, train_loop
from margin import quasi_homogeneous as qh

LOSSES = ("exp", "logistic", "cross_entropy")
STEPS = ("loss", "unit", "sharpness")


def _log_softplus(s: jax.Array) -> jax.Array:
    """log(log(1 + e^s)), exact to float32 for every s (≈ s for s << 0), with finite gradients on both branches."""
    small = s < -20.0
    safe = jnp.where(small, 0.0, s)
    return jnp.where(small, s, jnp.log(jax.nn.softplus(safe)))


def log_loss(outputs: jax.Array, y: jax.Array, loss: str) -> jax.Array:
    """log of the summed loss, computed in log space so it stays finite however large the margins grow.

    exp: log Σ_i e^{-m_i}; logistic: log Σ_i log(1 + e^{-m_i}) (binary, y in {-1, 1}); cross_entropy: log Σ_i CE_i
    with CE_i = log(1 + Σ_{k≠y} e^{-(f_y - f_k)}) (outputs [n, K], integer labels); exp with [n, K] outputs is
    log Σ_i Σ_{k≠y} e^{-(f_y - f_k)}.
    """
    if outputs.ndim == 1:
        m = y * outputs
        if loss == "exp":
            return jax.nn.logsumexp(-m)
        if loss == "logistic":
            return jax.nn.logsumexp(_log_softplus(-m))
        raise ValueError(f"binary outputs take loss 'exp' or 'logistic', got {loss!r}")
    true = jnp.take_along_axis(outputs, y[:, None], axis=1)
    diff = outputs - true  # -(f_y - f_k); 0 at k = y
    mask = jax.nn.one_hot(y, outputs.shape[1], dtype=bool)
    diff = jnp.where(mask, -jnp.inf, diff)
    s = jax.nn.logsumexp(diff, axis=1)
    if loss == "exp":
        return jax.nn.logsumexp(s)
    if loss == "cross_entropy":
        return jax.nn.logsumexp(_log_softplus(s))
    raise ValueError(f"multiclass outputs take loss 'exp' or 'cross_entropy', got {loss!r}")


@dataclasses.dataclass(frozen=True)
class Frozen:
    """A pytree of scalars (a rate vector Λ) in hashable form: its treedef and leaves."""

    treedef: Any
    leaves: tuple

    @classmethod
    def of(cls, tree: Any) -> Frozen:
        leaves, treedef = jax.tree.flatten(tree)
        return cls(treedef, tuple(float(np.asarray(x)) for x in leaves))

    def tree(self) -> Any:
        return jax.tree.unflatten(self.treedef, list(self.leaves))


@dataclasses.dataclass(frozen=True)
class Spec:
    """A training problem, hashable (it keys the compile cache): model f(params, x), init(key) -> params, rates Λ
    (`Frozen`), loss, step rule, learning rate, logging interval, and an optional `probe(params, data) -> dict`
    evaluated on device at the end of every chunk (the distance to the program's solution, neural-collapse metrics).

    f, init and probe must be hashable by value (module-level functions or frozen dataclasses), never fresh lambdas.
    """

    f: Callable
    init: Callable
    rates: Frozen
    loss: str = "exp"
    step: str = "loss"
    lr: float = 0.1
    log_every: int = 10
    max_lr: float = 100.0  # cap of the "sharpness" rule's step (the curvature vanishes with a single support vector)
    probe: Hashable | None = None


def make_spec(f: Callable, init: Callable, rates: Any, **kw) -> Spec:
    """A Spec with the rate pytree `rates` frozen."""
    return Spec(f=f, init=init, rates=Frozen.of(rates), **kw)


def _tree_norm(tree: Any) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


_LOGGED = ("log_loss", "min_margin", "gamma", "smoothed_gamma")


def init_run(spec: Spec, num_steps: int, chunk_steps: int, key: jax.Array, hp: dict) -> dict:
    """The state of one run: parameters, the previous step's margins (monotonicity counts) and the whole history.

    The history (every `log_every`-th step's metrics) lives in the state so that a resumed run still returns all of it.
    """
    del chunk_steps, hp
    params = spec.init(key)
    f32 = jnp.float32
    state = {
        "params": params,
        "prev_gamma": jnp.asarray(-jnp.inf, f32),
        "prev_smoothed": jnp.asarray(-jnp.inf, f32),
        "prev_separated": jnp.asarray(False),
        "counts": jnp.zeros((3,), jnp.int32),  # post-separation steps, γ non-decreasing, smoothed γ non-decreasing
        "log": jnp.full((num_steps // spec.log_every, len(_LOGGED)), jnp.nan, f32),
    }
    if spec.step == "sharpness":
        state["probe"] = jax.tree.map(
            lambda p: jnp.ones_like(p) / jnp.sqrt(p.size * len(jax.tree.leaves(params))), params
        )
    return state


def make_step(spec: Spec) -> Callable:
    """One gradient step on log L for the data dict {'x', 'y'}; returns (state, per-step metrics)."""
    rates = spec.rates.tree()
    top = qh.rate_max(rates)

    def step(state, data):
        params = state["params"]

        def objective(p):
            out = spec.f(p, data["x"])
            return log_loss(out, data["y"], spec.loss), out

        grad_fn = jax.value_and_grad(objective, has_aux=True)
        (ll, out), g = grad_fn(params)
        m = qh.margins(out, data["y"])
        scale = qh.seminorm(params, rates) ** (1.0 / top)
        gamma = jnp.min(m) / scale
        smoothed = -ll / scale
        separated = jnp.min(m) > 0
        both = separated & state["prev_separated"]
        tol_g = 1e-6 * jnp.abs(gamma)
        tol_s = 1e-6 * jnp.abs(smoothed)
        inc = jnp.stack(
            [
                both,
                both & (gamma >= state["prev_gamma"] - tol_g),
                both & (smoothed >= state["prev_smoothed"] - tol_s),
            ]
        ).astype(jnp.int32)
        if spec.step == "loss":
            factor = spec.lr
        elif spec.step == "unit":
            factor = spec.lr / jnp.maximum(_tree_norm(g), 1e-30)
        elif spec.step == "sharpness":
            # one warm-started power iteration per step: v <- H v / ‖H v‖, |λ_max(H)| ≈ ‖H v‖ (H = ∇² log L)
            v = state["probe"]
            hv = jax.jvp(lambda p: grad_fn(p)[1], (params,), (v,))[1]
            sharp = _tree_norm(hv)
            factor = jnp.minimum(spec.lr / jnp.maximum(sharp, 1e-12), spec.max_lr)
        else:
            raise ValueError(f"step must be one of {STEPS}, got {spec.step!r}")
        new = dict(state)
        if spec.step == "sharpness":
            new["probe"] = jax.tree.map(lambda h: h / jnp.maximum(sharp, 1e-30), hv)
        new.update(
            params=jax.tree.map(lambda p, d: p - factor * d, params, g),
            prev_gamma=gamma,
            prev_smoothed=smoothed,
            prev_separated=separated,
            counts=state["counts"] + inc,
        )
        return new, {"log_loss": ll, "min_margin": jnp.min(m), "gamma": gamma, "smoothed_gamma": smoothed}

    return step


def chunk_run(spec: Spec, num_steps: int, chunk_steps: int, state: dict, hp: dict, data: dict, start_step):
    """`chunk_steps` guarded steps of one run on the shared `data` {'x', 'y'}; history rows every `log_every` steps.

    The logged row of step t holds the metrics computed at the parameters before update t (t = k·log_every - 1).
    Returns the state and the chunk's metrics: the last logged row and the probe's values at the chunk's end.
    """
    del num_steps, hp
    step = make_step(spec)
    rows = chunk_steps // spec.log_every
    # γ is ±inf while ‖θ‖_Λ = 0 (e.g. a zero output bias at init): only the loss and margins must be finite
    state, outs, bad = checkpoint.guarded_scan(
        lambda s, _: step(s, data), state, start_step, chunk_steps, watch=lambda o: (o["log_loss"], o["min_margin"])
    )
    logged = jnp.stack([outs[k].reshape(rows, spec.log_every)[:, -1] for k in _LOGGED], axis=1)
    state = dict(state)
    state["log"] = jax.lax.dynamic_update_slice(state["log"], logged, (start_step // spec.log_every, 0))
    out = {checkpoint.NONFINITE: bad, **{k: logged[-1, i] for i, k in enumerate(_LOGGED)}}
    if spec.probe is not None:
        out.update(spec.probe(state["params"], data))
    return state, out


def train(
    spec: Spec,
    data: dict,
    *,
    name: str,
    keys: jax.Array,
    num_steps: int,
    chunk_steps: int,
    workdir: str | None = None,
    writer: metrics.MetricWriter | None = None,
) -> tuple[train_loop.Result, dict[str, Any]]:
    """Trains one run per key on the shared `data` through `common.train_loop` (checkpoints under
    <workdir>/checkpoints/<name>, metric rows run="<name>/<r>"). Returns the driver's result and the history:
    `step` [T] (the update index of each logged row), per-run [R, T] arrays log_loss, min_margin, gamma,
    smoothed_gamma, `chunk_step` [C] with the probe's values `end` [R, C, ...], and `counts` [R, 3]
    (post-separation steps; of which γ, smoothed γ did not decrease).
    """
    if not jnp.issubdtype(jnp.asarray(data["y"]).dtype, jnp.integer):
        qh.check_binary_labels(data["y"])
    if num_steps % chunk_steps or chunk_steps % spec.log_every:
        raise ValueError(f"log_every={spec.log_every} | chunk_steps={chunk_steps} | num_steps={num_steps} must hold")
    res = train_loop.train(
        name=name,
        init=init_run,
        chunk=chunk_run,
        static=(spec, num_steps, chunk_steps),
        keys=keys,
        hparams={},
        shared=data,
        num_steps=num_steps,
        chunk_steps=chunk_steps,
        workdir=workdir,
        writer=writer,
        labels=[{"seed": r} for r in range(int(keys.shape[0]))],
    )
    log = res.state["log"]
    out: dict[str, Any] = {k: log[:, :, i] for i, k in enumerate(_LOGGED)}
    out["step"] = spec.log_every * (1 + np.arange(log.shape[1])) - 1
    out["chunk_step"] = res.history["step"]
    skip = {"step", *_LOGGED}
    out["end"] = {k: np.swapaxes(v, 0, 1) for k, v in res.history.items() if k not in skip}
    out["counts"] = res.state["counts"]
    return res, out
