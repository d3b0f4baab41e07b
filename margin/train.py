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
decrease is counted on device. A chunk is `common.checkpoint.guarded_scan` over steps; runs (seeds) are vmapped by
the caller through `common.sweep`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from common import checkpoint, metrics, sweep
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


@dataclasses.dataclass(frozen=True, eq=False)
class Spec:
    """A training problem: model f(params, x), its rates Λ, loss, step rule, learning rate, logging interval.

    `chunk_metrics(params, data) -> dict` (optional) is evaluated on device at the end of every chunk (e.g. the
    distance to the program's solution, neural-collapse metrics); `data` is the dict passed to the chunk.
    """

    f: Callable
    rates: Any
    loss: str = "exp"
    step: str = "loss"
    lr: float = 0.1
    log_every: int = 10
    max_lr: float = 100.0  # cap of the "sharpness" rule's step (the curvature vanishes with a single support vector)
    chunk_metrics: Callable | None = None


def _tree_norm(tree: Any) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


_LOGGED = ("log_loss", "min_margin", "gamma", "smoothed_gamma")


def init_state(spec: Spec, params: Any, data: dict, num_steps: int, chunk_steps: int) -> dict:
    """The state of one run: parameters, the previous step's margins (monotonicity counts) and the whole history.

    The history (every `log_every`-th step's metrics, and the chunk-end metrics) lives in the state so that a run
    resumed from a checkpoint still returns all of it.
    """
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
    if spec.chunk_metrics is not None:
        shapes = jax.eval_shape(spec.chunk_metrics, params, data)
        state["end"] = jax.tree.map(lambda s: jnp.full((num_steps // chunk_steps, *s.shape), jnp.nan, s.dtype), shapes)
    return state


def make_step(spec: Spec) -> Callable:
    """One gradient step on log L for the data dict {'x', 'y'}; returns (state, per-step metrics)."""
    top = qh.rate_max(spec.rates)

    def step(state, data):
        params = state["params"]

        def objective(p):
            out = spec.f(p, data["x"])
            return log_loss(out, data["y"], spec.loss), out

        grad_fn = jax.value_and_grad(objective, has_aux=True)
        (ll, out), g = grad_fn(params)
        m = qh.margins(out, data["y"])
        scale = qh.seminorm(params, spec.rates) ** (1.0 / top)
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


def make_chunk(spec: Spec, chunk_steps: int) -> Callable:
    """chunk(state, data, start_step) -> (state, metrics): `chunk_steps` guarded steps, history rows every `log_every`.

    The logged row of step t holds the metrics computed at the parameters before update t (t = k·log_every - 1).
    """
    if chunk_steps % spec.log_every:
        raise ValueError(f"log_every={spec.log_every} must divide chunk_steps={chunk_steps}")
    step = make_step(spec)
    rows = chunk_steps // spec.log_every

    def chunk(state, data, start_step):
        # γ is ±inf while ‖θ‖_Λ = 0 (e.g. a zero output bias at init): only the loss and margins must be finite
        state, outs, bad = checkpoint.guarded_scan(
            lambda s, _: step(s, data), state, start_step, chunk_steps, watch=lambda o: (o["log_loss"], o["min_margin"])
        )
        logged = jnp.stack([outs[k].reshape(rows, spec.log_every)[:, -1] for k in _LOGGED], axis=1)
        state = dict(state)
        state["log"] = jax.lax.dynamic_update_slice(state["log"], logged, (start_step // spec.log_every, 0))
        out = {checkpoint.NONFINITE: bad, "log_loss": logged[-1, 0], "gamma": logged[-1, 2]}
        if spec.chunk_metrics is not None:
            end = spec.chunk_metrics(state["params"], data)
            idx = start_step // chunk_steps
            state["end"] = jax.tree.map(
                lambda h, e: jax.lax.dynamic_update_slice(h, e[None], (idx,) + (0,) * e.ndim), state["end"], end
            )
        return state, out

    return chunk


def train(
    spec: Spec,
    params0: Any,
    data: dict,
    *,
    num_steps: int,
    chunk_steps: int,
    num_runs: int | None = None,
    ckpt_dir: str | None = None,
    writer: metrics.MetricWriter | None = None,
    desc: str = "train",
) -> tuple[dict, dict[str, np.ndarray]]:
    """Trains every run of `params0` (leading runs axis) on the shared `data`, one vmapped chunk per call.

    `num_runs` is the number of real runs (a vmapped init's outputs carry the sweep's padding; default: the leading
    axis of `params0`). The returned state keeps the padding (device arrays); the history is trimmed to num_runs.
    Checkpoints under `ckpt_dir` through common.checkpoint.run_chunked (a killed run resumes there). Returns the
    final state and the history: `step` [T] (the update index of each logged row), per-run [R, T] arrays log_loss,
    min_margin, gamma, smoothed_gamma, `chunk_step` [C] with the chunk-end metrics `end` [R, C, ...], and
    `counts` [R, 3] (post-separation steps; of which γ, smoothed γ did not decrease).
    """
    if num_steps % chunk_steps:
        raise ValueError(f"chunk_steps={chunk_steps} must divide num_steps={num_steps}")
    state0 = sweep.vmapped(lambda p, d: init_state(spec, p, d, num_steps, chunk_steps), in_axes=(0, None))(
        params0, data
    )
    if num_runs is None:
        num_runs = int(jax.tree.leaves(params0)[0].shape[0])
    chunk = sweep.vmapped(make_chunk(spec, chunk_steps), in_axes=(0, None, None))

    def chunk_fn(state, start_step):
        return chunk(state, data, np.int32(start_step))

    def on_chunk(step, m):
        small = sweep.to_numpy(m, num_runs)
        if writer is not None:
            for r in range(num_runs):
                writer.write(
                    step, run=f"{desc}/{r}", log_loss=float(small["log_loss"][r]), gamma=float(small["gamma"][r])
                )

    # run_chunked stops at the first non-finite loss or margin the chunk reports under checkpoint.NONFINITE.
    state = checkpoint.run_chunked(
        chunk_fn,
        state0,
        num_steps=num_steps,
        chunk_steps=chunk_steps,
        checkpoint_dir=ckpt_dir,
        on_chunk=on_chunk,
        metric_writer=writer,
        metric_run_prefix=f"{desc}/",
        desc=desc,
    )
    hist = sweep.to_numpy({k: state[k] for k in ("log", "counts", "end") if k in state}, num_runs)
    out: dict[str, Any] = {k: hist["log"][:, :, i] for i, k in enumerate(_LOGGED)}
    out["step"] = spec.log_every * (1 + np.arange(hist["log"].shape[1])) - 1
    out["chunk_step"] = chunk_steps * (1 + np.arange(num_steps // chunk_steps))
    if "end" in hist:
        out["end"] = hist["end"]
    out["counts"] = hist["counts"]
    return state, out


def checkpoint_dir(workdir: str | None, name: str) -> str | None:
    """workdir/checkpoints/<name>, or None without a workdir."""
    return os.path.join(workdir, "checkpoints", name) if workdir else None
