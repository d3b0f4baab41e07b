"""Pretraining as a pure function of (key, hyperparameters), so a sweep over M, seeds and rates is one jit(vmap).

The state of one run is a dict of arrays: the transformer's parameters, the optax state (Adam with the peak
learning rate injected into the state, times the triangle schedule) and the run's key as raw key data. Traced
hyperparameters: `num_tasks` (M, float32, inf for fresh tasks) and `lr` (the peak learning rate). Everything else
(shapes, step counts, noise level) is static and lives in `TrainConfig`.

`init_state` + `train_chunk` (a lax.scan over `chunk_steps` steps starting at a traced step) are what
common.checkpoint.run_chunked drives; `make_train` chains them into one `train(key, hparams)` for tests and
benchmarks. The task pool is regenerated from the run's key inside every compiled call instead of being stored, so
neither the state nor the checkpoints grow with M.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from common import checkpoint
from icl import tasks, transformer

_INIT, _POOL, _DATA, _EVAL_PRETRAIN = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The static part of a training run."""

    model: transformer.ModelConfig
    batch_size: int
    num_steps: int
    noise_std: float  # sigma, the label noise standard deviation
    max_tasks: int  # the pool size stored for the sweep's largest finite M
    warmup_fraction: float = 0.5


def triangle_schedule(num_steps: int, warmup_fraction: float = 0.5) -> optax.Schedule:
    """Multiplier rising linearly from 0 to 1 over the warm-up, then falling linearly to 0 at `num_steps`."""
    warm = max(1, int(round(warmup_fraction * num_steps)))
    return optax.join_schedules(
        [optax.linear_schedule(0.0, 1.0, warm), optax.linear_schedule(1.0, 0.0, max(1, num_steps - warm))],
        [warm],
    )


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Adam whose peak rate lives in the optimizer state (traceable under vmap), scaled by the triangle schedule."""
    return optax.chain(
        optax.inject_hyperparams(optax.adam)(learning_rate=1.0),
        optax.scale_by_schedule(triangle_schedule(cfg.num_steps, cfg.warmup_fraction)),
    )


def run_pool(key_data: jax.Array, cfg: TrainConfig) -> jax.Array:
    """The run's task pool at the largest M, [max_tasks, D], rebuilt from the run's key data."""
    key = jax.random.wrap_key_data(key_data)
    return tasks.task_pool(jax.random.fold_in(key, _POOL), cfg.max_tasks, cfg.model.dim)


def init_state(key: jax.Array, hparams: Mapping[str, jax.Array], cfg: TrainConfig) -> dict:
    """Fresh state of one run: parameters, optimizer state with the run's peak rate, and the key data."""
    params = transformer.init_params(jax.random.fold_in(key, _INIT), cfg.model)
    opt_state = make_optimizer(cfg).init(params)
    opt_state[0].hyperparams["learning_rate"] = jnp.asarray(hparams["lr"], jnp.float32)
    return {"params": params, "opt": opt_state, "key": jax.random.key_data(key)}


def loss_fn(gd, params: dict, batch: tasks.Batch) -> jax.Array:
    """Training loss: mean over prompts and positions of (prediction - y_k)^2 (noisy targets, as in the paper)."""
    preds = transformer.apply(gd, params, batch.xs, batch.ys)
    return jnp.mean((preds - batch.ys) ** 2)


def make_chunk(cfg: TrainConfig, chunk_steps: int) -> Callable:
    """`chunk(state, hparams, start_step) -> (state, metrics)`: `chunk_steps` Adam steps in one lax.scan.

    Step t draws its batch from fold_in(data key, t), so the result does not depend on how steps are chunked.
    metrics: `loss` (mean training loss over the chunk) and `last_loss`.
    """
    gd = transformer.graphdef(cfg.model)
    tx = make_optimizer(cfg)

    def chunk(state: dict, hparams: Mapping[str, jax.Array], start_step: jax.Array):
        key = jax.random.wrap_key_data(state["key"])
        data_key = jax.random.fold_in(key, _DATA)
        pool = run_pool(state["key"], cfg)

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

        # Stops updating at the first non-finite loss and reports that step (common.checkpoint.guarded_scan).
        (params, opt_state), losses, bad = checkpoint.guarded_scan(
            step, (state["params"], state["opt"]), start_step, chunk_steps
        )
        new_state = {"params": params, "opt": opt_state, "key": state["key"]}
        return new_state, {"loss": jnp.mean(losses), "last_loss": losses[-1], checkpoint.NONFINITE: bad}

    return chunk


def make_train(cfg: TrainConfig) -> Callable:
    """The whole run as one pure function `train(key, hparams) -> (state, metrics)` (one scan over all steps)."""
    chunk = make_chunk(cfg, cfg.num_steps)

    def train(key: jax.Array, hparams: Mapping[str, jax.Array]):
        return chunk(init_state(key, hparams, cfg), hparams, jnp.int32(0))

    return train


def make_eval(cfg: TrainConfig, true_batch: tasks.Batch, num_pretrain: int, eval_key: jax.Array) -> Callable:
    """`evaluate(state, hparams) -> dict` of the model's predictions on both evaluation sets, per run.

    T_True is the fixed batch `true_batch` (the same for every run); T_Pretrain has `num_pretrain` prompts whose tasks
    are drawn from the run's own pool below its M with the fixed `eval_key` (fresh tasks when M is inf). Returns
    `pred_true` [N, K], `pred_pretrain` [N', K] and the T_Pretrain batch (`xs`, `ws`, `ys`) for the baselines.
    """
    gd = transformer.graphdef(cfg.model)

    def evaluate(state: dict, hparams: Mapping[str, jax.Array]) -> dict:
        pool = run_pool(state["key"], cfg)
        pre = tasks.sample_batch(
            eval_key, pool, hparams["num_tasks"], num_pretrain, cfg.model.num_points, cfg.noise_std
        )
        return {
            "pred_true": transformer.apply(gd, state["params"], true_batch.xs, true_batch.ys),
            "pred_pretrain": transformer.apply(gd, state["params"], pre.xs, pre.ys),
            "xs": pre.xs,
            "ws": pre.ws,
            "ys": pre.ys,
        }

    return evaluate
