"""Pretraining as a pure function of (key, hyperparameters), so a sweep over M, seeds, rates and weight decay is one
jit(vmap).

The state of one run is a dict of arrays: the transformer's parameters, the optax state (AdamW with the peak
learning rate and the weight decay injected into the state, times the triangle schedule), the run's key as raw key
data, and `curves` [num_evals, 2]: the model's loss / D on a fixed T_True and a fixed T_Pretrain evaluation set
every `eval_every` steps (NaN until reached), so the curves are part of the checkpoint and survive a resume.
Traced hyperparameters: `num_tasks` (M, float32, inf for fresh tasks), `lr` (the peak learning rate) and
`weight_decay`. Everything else (shapes, step counts, noise level) is static and lives in `TrainConfig`.

`init_state` + `make_chunk` (a lax.scan over `chunk_steps` steps starting at a traced step, evaluating every
`eval_every` steps) are what common.train_loop drives (as `init_one`, `chunk_one`); `make_train` chains them into one
`train(key, hparams)` for tests and benchmarks. The task pool is regenerated from the run's key inside every
compiled call instead of being stored, so neither the state nor the checkpoints grow with M.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from common import checkpoint
from icl import tasks, transformer

_INIT, _POOL, _DATA = 0, 1, 2
CURVE_TRUE_SEED = 2_000_003  # the in-training evaluation sets (held out from the final evaluation's prompts)
CURVE_PRETRAIN_SEED = 2_000_033


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The static part of a training run."""

    model: transformer.ModelConfig
    batch_size: int
    num_steps: int
    noise_std: float  # sigma, the label noise standard deviation
    max_tasks: int  # the pool size stored for the sweep's largest finite M
    warmup_fraction: float = 0.5
    eval_every: int = 0  # steps between in-training evaluations; 0: only at the end
    eval_prompts: int = 256  # prompts per in-training evaluation set
    nested_pools: bool = True  # pool of size M = first M tasks of one pool; False: an independent pool per M

    @property
    def eval_interval(self) -> int:
        return self.eval_every or self.num_steps

    @property
    def num_evals(self) -> int:
        return self.num_steps // self.eval_interval


def triangle_schedule(num_steps: int, warmup_fraction: float = 0.5) -> optax.Schedule:
    """Multiplier rising linearly from 0 to 1 over the warm-up, then falling linearly to 0 at `num_steps`."""
    warm = max(1, int(round(warmup_fraction * num_steps)))
    return optax.join_schedules(
        [optax.linear_schedule(0.0, 1.0, warm), optax.linear_schedule(1.0, 0.0, max(1, num_steps - warm))],
        [warm],
    )


def decay_mask(params: dict) -> dict:
    """nanoGPT's weight-decay mask, as in the released code: the kernels of the transformer blocks only.

    Not decayed: biases, LayerNorm scales, the positional embedding, the read-in and the read-out.
    """

    def leaf(path, _):
        names = [getattr(k, "key", None) for k in path]
        return bool(names and names[0] == "blocks" and names[-1] == "kernel")

    return jax.tree_util.tree_map_with_path(leaf, params)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """AdamW (decay mask `decay_mask`) whose peak rate and weight decay live in the optimizer state (traceable
    under vmap), scaled by the triangle schedule. With weight_decay = 0 it is Adam."""
    return optax.chain(
        # mask is static: inject_hyperparams would otherwise call it as a schedule of the step count.
        optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
            learning_rate=1.0, weight_decay=0.0, mask=decay_mask
        ),
        optax.scale_by_schedule(triangle_schedule(cfg.num_steps, cfg.warmup_fraction)),
    )


def run_pool(key_data: jax.Array, cfg: TrainConfig, num_tasks: jax.Array | float = 0.0) -> jax.Array:
    """The run's task pool at the largest M, [max_tasks, D], rebuilt from the run's key data.

    Nested pools (the default): the same pool for every M of a seed, so the pool of size M is its first M rows.
    Independent pools: the pool is drawn from a key folded with M, so different M share no tasks.
    """
    key = jax.random.fold_in(jax.random.wrap_key_data(key_data), _POOL)
    if not cfg.nested_pools:
        m = jnp.asarray(num_tasks, jnp.float32)
        key = jax.random.fold_in(key, jnp.where(jnp.isinf(m), 0.0, m).astype(jnp.uint32))
    return tasks.task_pool(key, cfg.max_tasks, cfg.model.dim)


def init_state(key: jax.Array, hparams: Mapping[str, jax.Array], cfg: TrainConfig) -> dict:
    """Fresh state of one run: parameters, optimizer state with the run's rate and decay, key data, empty curves."""
    params = transformer.init_params(jax.random.fold_in(key, _INIT), cfg.model)
    opt_state = make_optimizer(cfg).init(params)
    hp = opt_state[0].hyperparams
    hp["learning_rate"] = jnp.asarray(hparams["lr"], jnp.float32)
    hp["weight_decay"] = jnp.asarray(hparams.get("weight_decay", 0.0), jnp.float32)
    curves = jnp.full((cfg.num_evals, 2), jnp.nan, jnp.float32)
    return {"params": params, "opt": opt_state, "key": jax.random.key_data(key), "curves": curves}


def loss_fn(gd, params: dict, batch: tasks.Batch) -> jax.Array:
    """Training loss: mean over prompts and positions of (prediction - y_k)^2 (noisy targets, as in the paper)."""
    preds = transformer.apply(gd, params, batch.xs, batch.ys)
    return jnp.mean((preds - batch.ys) ** 2)


def curve_batches(cfg: TrainConfig, key_data: jax.Array, num_tasks: jax.Array) -> tuple[tasks.Batch, tasks.Batch]:
    """The fixed in-training evaluation sets of one run: T_True (shared by every run) and its own T_Pretrain."""
    pool = run_pool(key_data, cfg, num_tasks)
    empty = jnp.zeros((1, cfg.model.dim), jnp.float32)
    n, k, s = cfg.eval_prompts, cfg.model.num_points, cfg.noise_std
    true = tasks.sample_batch(jax.random.key(CURVE_TRUE_SEED), empty, jnp.inf, n, k, s)
    pre = tasks.sample_batch(jax.random.key(CURVE_PRETRAIN_SEED), pool, num_tasks, n, k, s)
    return true, pre


def make_chunk(cfg: TrainConfig, chunk_steps: int) -> Callable:
    """`chunk(state, hparams, start_step) -> (state, metrics)`: `chunk_steps` AdamW steps in one lax.scan.

    Step t draws its batch from fold_in(data key, t), so the result does not depend on how steps are chunked.
    After every `cfg.eval_interval` steps the model's noiseless loss / D on the two fixed evaluation sets is written
    into `state['curves']`. metrics: `loss` (mean training loss over the chunk) and `last_loss`.
    """
    if chunk_steps % cfg.eval_interval:
        raise ValueError(f"chunk_steps {chunk_steps} is not a multiple of the evaluation interval {cfg.eval_interval}")
    gd = transformer.graphdef(cfg.model)
    tx = make_optimizer(cfg)
    every, segments = cfg.eval_interval, chunk_steps // cfg.eval_interval
    d = cfg.model.dim

    def chunk(state: dict, hparams: Mapping[str, jax.Array], start_step: jax.Array):
        key = jax.random.wrap_key_data(state["key"])
        data_key = jax.random.fold_in(key, _DATA)
        pool = run_pool(state["key"], cfg, hparams["num_tasks"])
        true, pre = curve_batches(cfg, state["key"], hparams["num_tasks"])
        targets = (tasks.noiseless_targets(true), tasks.noiseless_targets(pre))

        def step(carry, t):
            params, opt_state = carry
            batch = tasks.sample_batch(
                jax.random.fold_in(data_key, t),
                pool,
                hparams["num_tasks"],
                cfg.batch_size,
                cfg.model.num_points,
                cfg.noise_std,
            )
            loss, grads = jax.value_and_grad(lambda p: loss_fn(gd, p, batch))(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        def segment(carry, s):
            params, opt_state, curves, bad = carry
            seg_start = jnp.asarray(start_step, jnp.int32) + s * every
            # Stops updating at the first non-finite loss and reports that step (common.checkpoint.guarded_scan).
            (params, opt_state), losses, seg_bad = checkpoint.guarded_scan(step, (params, opt_state), seg_start, every)
            errs = [
                jnp.mean((transformer.apply(gd, params, b.xs, b.ys) - tgt) ** 2) / d
                for b, tgt in zip((true, pre), targets, strict=True)
            ]
            row = (seg_start + every) // every - 1
            curves = jax.lax.dynamic_update_slice(curves, jnp.stack(errs)[None], (row, 0))
            bad = jnp.where(bad >= 0, bad, seg_bad)
            return (params, opt_state, curves, bad), losses

        carry0 = (state["params"], state["opt"], state["curves"], jnp.array(-1, jnp.int32))
        (params, opt_state, curves, bad), losses = jax.lax.scan(segment, carry0, jnp.arange(segments, dtype=jnp.int32))
        new_state = {"params": params, "opt": opt_state, "key": state["key"], "curves": curves}
        return new_state, {"loss": jnp.mean(losses), "last_loss": losses[-1, -1], checkpoint.NONFINITE: bad}

    return chunk


def init_one(cfg: TrainConfig, chunk_steps: int, key: jax.Array, hparams: Mapping[str, jax.Array]) -> dict:
    """`init_state` in the form common.train_loop takes (static arguments first)."""
    del chunk_steps
    return init_state(key, hparams, cfg)


def chunk_one(cfg: TrainConfig, chunk_steps: int, state: dict, hparams: Mapping[str, jax.Array], shared, start):
    """One chunk of `chunk_steps` steps in the form common.train_loop takes (no shared inputs: data is sampled)."""
    del shared
    return make_chunk(cfg, chunk_steps)(state, hparams, start)


def make_train(cfg: TrainConfig) -> Callable:
    """The whole run as one pure function `train(key, hparams) -> (state, metrics)` (one scan over all steps)."""
    chunk = make_chunk(cfg, cfg.num_steps)

    def train(key: jax.Array, hparams: Mapping[str, jax.Array]):
        return chunk(init_state(key, hparams, cfg), hparams, jnp.int32(0))

    return train
