"""Training the classifiers whose class manifolds are measured: pure, vmappable, chunked for checkpoints.

A run is `init_state(task, key, hp)` then `run_chunk(task, chunk_steps)(state, hp, data, start)` repeated; its
traced hyperparameters (so a group of runs is one `jit(vmap)` through `common.sweep`) are
  - `lr`: Adam learning rate;
  - `train_size`: minibatches are drawn from the first `train_size` training examples only;
  - `random_labels`: 1.0 trains on a fixed random relabelling of the training set (labels drawn uniformly);
  - `width`: an MLP's hidden units beyond `width` (of the task's `widths[0]`) start with zero weights in and out,
    so they get zero gradients and stay zero: MLPs of several widths train as one vmapped group, and their d*
    sweeps share one compilation (the function computed is exactly the width-`width` MLP, initialised with
    fan-in `width` in the output layer).
Minibatches come from `fold_in(key, step)`, so a run resumes bit for bit at any chunk boundary. With
`task.snapshots`, the parameters at the end of every chunk are kept in the state (`snaps`) for d* over training.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import checkpoint
from manifolds import models

HPARAMS = ("lr", "train_size", "random_labels", "width")


@dataclasses.dataclass(frozen=True)
class Task:
    """Static shape of a group of runs: architecture, widths, image shape, classes, batch size, chunking."""

    arch: str  # "mlp" or "cnn"
    widths: tuple[int, ...]
    image_shape: tuple[int, int, int]
    num_classes: int
    batch_size: int
    num_chunks: int = 1  # chunks per run (snapshot slots)
    snapshots: bool = False

    @property
    def dim(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def apply(self):
        return models.mlp_apply if self.arch == "mlp" else models.cnn_apply(self.image_shape)

    def init(self, key: jax.Array) -> models.Params:
        if self.arch == "mlp":
            return models.init_mlp(key, (self.dim, *self.widths, self.num_classes))
        return models.init_cnn(key, self.image_shape[-1], self.widths, self.num_classes)


def init_state(task: Task, key: jax.Array, hp: dict[str, jax.Array]) -> dict[str, Any]:
    """{"params", "opt", "key"} (+ "snaps": num_chunks copies of the parameters, filled as chunks finish)."""
    k_init, k_loop = jax.random.split(key)
    params = task.init(k_init)
    if task.arch == "mlp" and len(task.widths) == 1:
        params = mask_width(params, hp["width"])
    state = {"params": params, "opt": optax.adam(1.0).init(params), "key": jax.random.key_data(k_loop)}
    if task.snapshots:
        state["snaps"] = jax.tree.map(lambda p: jnp.zeros((task.num_chunks, *p.shape), p.dtype), params)
    return state


def mask_width(params: models.Params, width: jax.Array) -> models.Params:
    """A one-hidden-layer MLP reduced to its first `width` hidden units (the others zero in and out), with the
    output layer rescaled to the fan-in `width` (PyTorch-default init of the narrower net)."""
    wmax = params[0]["w"].shape[1]
    width = jnp.minimum(width, wmax)
    keep = (jnp.arange(wmax) < width).astype(params[0]["w"].dtype)
    scale = jnp.sqrt(wmax / width)
    return [
        {"w": params[0]["w"] * keep, "b": params[0]["b"] * keep},
        {"w": params[1]["w"] * keep[:, None] * scale, "b": params[1]["b"] * scale},
    ]


def run_chunk(task: Task, chunk_steps: int):
    """chunk(state, hp, data, start) -> (state, {"loss", "train_acc", first_nonfinite}) over `chunk_steps` steps.

    `data` = (x [N, D], y [N], y_random [N]); the loop is `checkpoint.guarded_scan`, so a non-finite loss stops
    the run at that step.
    """
    opt = optax.adam(1.0)  # the traced rate scales the updates

    def chunk(state, hp, data, start):
        x, y, y_rand = data
        key = jax.random.wrap_key_data(state["key"])
        n = jnp.minimum(hp["train_size"], x.shape[0]).astype(jnp.int32)

        def step(carry, t):
            params, opt_state = carry
            idx = jax.random.randint(jax.random.fold_in(key, t), (task.batch_size,), 0, n)
            yb = jnp.where(hp["random_labels"] > 0.5, y_rand[idx], y[idx])

            def loss_fn(p):
                logits = task.apply(p, x[idx])
                loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
                return loss, jnp.mean(jnp.argmax(logits, -1) == yb)

            (loss, acc), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = opt.update(g, opt_state, params)
            updates = jax.tree.map(lambda u: hp["lr"] * u, updates)  # adam(1.0) gives -direction
            return (optax.apply_updates(params, updates), opt_state), {"loss": loss, "acc": acc}

        (params, opt_state), outs, bad = checkpoint.guarded_scan(
            step, (state["params"], state["opt"]), start, chunk_steps
        )
        new = {**state, "params": params, "opt": opt_state}
        if task.snapshots:
            slot = jnp.clip(start // chunk_steps, 0, task.num_chunks - 1)
            new["snaps"] = jax.tree.map(lambda s, p: s.at[slot].set(p), state["snaps"], params)
        return new, {"loss": outs["loss"].mean(), "train_acc": outs["acc"].mean(), checkpoint.NONFINITE: bad}

    return chunk


def accuracy(task: Task, params: models.Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of `x` classified as `y`."""
    return jnp.mean(jnp.argmax(task.apply(params, x), axis=-1) == y)


def corrupted_accuracy(task: Task, params, x: jax.Array, y: jax.Array, sigma: float, key: jax.Array) -> jax.Array:
    """Accuracy on `x` plus Gaussian noise of standard deviation `sigma` (one fixed draw from `key`)."""
    return accuracy(task, params, x + sigma * jax.random.normal(key, x.shape), y)
