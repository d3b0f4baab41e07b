"""The final evaluation of a whole sweep as one compiled, masked pass (Raventós et al. 2023, Sec. 3 metrics).

`make_evaluate(...)` returns `evaluate(state, hparams)` for one run; vmapped through common.sweep it evaluates every
run of a sweep in one program: the dMMSE prior of each run is the run's pool masked below its own traced M (no
recompilation per M, no Python loop over runs), and at M = inf dMMSE is replaced by its M -> inf limit, Ridge (the
posterior mean under the N(0, I) prior). Prompts are generated and consumed in chunks of `prompt_chunk` (lax.map),
so 2^20 evaluation prompts fit in memory on an accelerator.

Per run and per context position it returns the noiseless loss / D of the model, Ridge and dMMSE on T_True (a fixed
set shared by every run) and T_Pretrain (the run's own pool and M), and both distances Delta(model, Ridge) and
Delta(model, dMMSE) on both sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from icl import estimators, tasks, train, transformer

EVAL_TRUE_SEED = 1_000_003  # fixed evaluation keys, independent of the config seed and of the curve sets
EVAL_PRETRAIN_SEED = 1_000_033

KEYS = (
    "loss_true",
    "loss_pretrain",
    "ridge_true",
    "ridge_pretrain",
    "dmmse_true",
    "dmmse_pretrain",
    "dist_ridge",  # Delta(model, Ridge) on T_True
    "dist_dmmse",  # Delta(model, dMMSE) on T_True
    "dist_ridge_pretrain",
    "dist_dmmse_pretrain",
)


def make_evaluate(cfg: train.TrainConfig, num_prompts: int, prompt_chunk: int, dmmse_chunk: int) -> Callable:
    """`evaluate(state, hparams) -> {key: [K]}` (keys `KEYS`, noiseless units, mean over `num_prompts` prompts)."""
    if num_prompts % prompt_chunk:
        raise ValueError(f"num_prompts {num_prompts} is not a multiple of prompt_chunk {prompt_chunk}")
    gd = transformer.graphdef(cfg.model)
    s2, d, k = cfg.noise_std**2, cfg.model.dim, cfg.model.num_points
    n_chunks = num_prompts // prompt_chunk
    empty = jnp.zeros((1, d), jnp.float32)

    def evaluate(state: dict, hparams: Mapping[str, jax.Array]) -> dict:
        m = hparams["num_tasks"]
        pool = train.run_pool(state["key"], cfg, m)
        infinite = jnp.isinf(m)

        def one_set(batch: tasks.Batch, dist: str) -> dict:
            target = tasks.noiseless_targets(batch)
            model = transformer.apply(gd, state["params"], batch.xs, batch.ys)
            ridge = estimators.ridge_predictions(batch.xs, batch.ys, s2)
            dmmse = estimators.dmmse_predictions(batch.xs, batch.ys, pool, s2, chunk_size=dmmse_chunk, num_tasks=m)
            dmmse = jnp.where(infinite, ridge, dmmse)
            suffix = "" if dist == "true" else "_pretrain"
            return {
                f"loss_{dist}": jnp.sum((model - target) ** 2, 0),
                f"ridge_{dist}": jnp.sum((ridge - target) ** 2, 0),
                f"dmmse_{dist}": jnp.sum((dmmse - target) ** 2, 0),
                f"dist_ridge{suffix}": jnp.sum((model - ridge) ** 2, 0),
                f"dist_dmmse{suffix}": jnp.sum((model - dmmse) ** 2, 0),
            }

        def chunk(c):
            true = tasks.sample_batch(
                jax.random.fold_in(jax.random.key(EVAL_TRUE_SEED), c), empty, jnp.inf, prompt_chunk, k, cfg.noise_std
            )
            pre = tasks.sample_batch(
                jax.random.fold_in(jax.random.key(EVAL_PRETRAIN_SEED), c), pool, m, prompt_chunk, k, cfg.noise_std
            )
            return {**one_set(true, "true"), **one_set(pre, "pretrain")}

        sums = jax.lax.map(chunk, jnp.arange(n_chunks, dtype=jnp.int32))
        return {key: jnp.sum(v, 0) / (num_prompts * d) for key, v in sums.items()}

    return evaluate


def evaluate_one(cfg: train.TrainConfig, num_prompts: int, prompt_chunk: int, dmmse_chunk: int, state, hparams, shared):
    """`make_evaluate(...)(state, hparams)` in the form `common.train_loop.Result.evaluate` takes."""
    del shared
    return make_evaluate(cfg, num_prompts, prompt_chunk, dmmse_chunk)(state, hparams)
