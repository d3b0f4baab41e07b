"""Training as pure functions of (key, hyperparameters), so seeds x constraint variants are one jit(vmap).

A run's state is {'params', 'opt' (Adam with its learning rate in the state), 'key' (raw key data)}. The traced
hyperparameters of a run are `lr`, `beta_nonneg`, `beta_activity`, `beta_weight`, `relu` (the ReLU gate of
models.constrained), `rho` (factor correlation, synthetic tasks) and `beta_kl` (VAE): every constraint variant has
the same shapes, so a whole ablation is one compiled program. `make_chunk` advances `chunk_steps` steps inside
common.checkpoint.guarded_scan; common.checkpoint.run_chunked drives it. Step t's batch comes from
fold_in(data key, t), so results do not depend on how steps are chunked (or on a resume).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from common import checkpoint
from disentangle import losses, models, tasks

_INIT, _TASK, _DATA = 0, 1, 2
HPARAMS = ("lr", "beta_nonneg", "beta_activity", "beta_weight", "relu", "rho", "beta_kl")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static part of a run: the model, the task, batch size and step count."""

    model: models.ModelConfig
    num_factors: int
    batch_size: int
    num_steps: int
    cubic: bool = False  # supervised task with x <- 4 x^3


def optimizer() -> optax.GradientTransformation:
    """Adam whose learning rate lives in the optimizer state (traceable under vmap)."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


def init_state(key: jax.Array, hp: Mapping[str, jax.Array], cfg: TrainConfig) -> dict:
    """Fresh state of one run: parameters, Adam state with the run's learning rate, key data."""
    params = models.init_params(jax.random.fold_in(key, _INIT), cfg.model)
    opt = optimizer().init(params)
    opt.hyperparams["learning_rate"] = jnp.asarray(hp["lr"], jnp.float32)
    return {"params": params, "opt": opt, "key": jax.random.key_data(key)}


def run_task(key_data: jax.Array, cfg: TrainConfig) -> dict:
    """The run's fixed data map, rebuilt from its key (not stored in the state or checkpoints)."""
    key = jax.random.wrap_key_data(key_data)
    return tasks.make_task(jax.random.fold_in(key, _TASK), cfg.model, cfg.num_factors, cfg.cubic)


def synthetic_loss(params, task, e, cfg: TrainConfig, hp) -> tuple[jax.Array, dict]:
    """Eq. 2 on a batch of factors e: squared error of the task plus the three biological terms."""
    x, y = tasks.task_data(task, e, cfg.model.kind, cfg.cubic)
    out = models.apply(params, x, cfg.model, hp)
    return losses.constrained_loss(losses.squared_error(out["out"], y), out["constrained"], models.weights(params), hp)


def vae_loss(params, images, key, cfg: TrainConfig, hp) -> tuple[jax.Array, dict]:
    """beta-VAE: Bernoulli negative log-likelihood + beta_kl KL(q || N(0, I)) + the biological terms on the mean."""
    out = models.apply(params, images, cfg.model, hp, key=key)
    nll = jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(out["out"], images), axis=-1))
    mu, logvar = out["mu"], out["logvar"]
    kl = jnp.mean(0.5 * jnp.sum(mu**2 + jnp.exp(logvar) - logvar - 1.0, axis=-1))
    total, terms = losses.constrained_loss(nll + hp["beta_kl"] * kl, out["constrained"], models.weights(params), hp)
    return total, {**terms, "kl": kl, "nll": nll}


@functools.cache
def make_chunk(cfg: TrainConfig, chunk_steps: int) -> Callable:
    """`chunk(state, hp, start_step, images=None) -> (state, metrics)`: `chunk_steps` Adam steps (guarded scan).

    Synthetic kinds draw fresh factors every step; the VAE samples minibatches from `images` (shared by every run).
    metrics: `loss` (mean over the chunk), `functional` (last step) and checkpoint.NONFINITE. Cached per
    (cfg, chunk_steps), so sweeps of the same shapes reuse one compiled program.
    """
    tx = optimizer()

    def chunk(state, hp, start_step, images=None):
        key = jax.random.wrap_key_data(state["key"])
        data_key = jax.random.fold_in(key, _DATA)
        task = None if cfg.model.kind == "vae" else run_task(state["key"], cfg)

        def step(carry, t):
            params, opt = carry
            k = jax.random.fold_in(data_key, t)
            if cfg.model.kind == "vae":
                k_idx, k_eps = jax.random.split(k)
                idx = jax.random.randint(k_idx, (cfg.batch_size,), 0, images.shape[0])
                fn = lambda p: vae_loss(p, images[idx], k_eps, cfg, hp)
            else:
                e = tasks.sample_factors(k, cfg.batch_size, cfg.num_factors, hp["rho"])
                fn = lambda p: synthetic_loss(p, task, e, cfg, hp)
            (loss, terms), grads = jax.value_and_grad(fn, has_aux=True)(params)
            updates, opt = tx.update(grads, opt, params)
            return (optax.apply_updates(params, updates), opt), {"loss": loss, "functional": terms["functional"]}

        (params, opt), outs, bad = checkpoint.guarded_scan(
            step, (state["params"], state["opt"]), start_step, chunk_steps
        )
        new = {"params": params, "opt": opt, "key": state["key"]}
        return new, {"loss": jnp.mean(outs["loss"]), "functional": outs["functional"][-1], checkpoint.NONFINITE: bad}

    return chunk


def make_eval(cfg: TrainConfig, num_samples: int, eval_key: jax.Array) -> Callable:
    """`evaluate(state, hp) -> {'code' [N, code_dim], 'factors' [N, F], 'recon'}` on fresh factors (synthetic).

    `recon` is the fraction of target variance left unexplained, E||y - y_hat||^2 / E||y - E y||^2. The evaluation
    factors come from the fixed `eval_key` with the run's rho; the data map is the run's own.
    """

    def evaluate(state, hp):
        task = run_task(state["key"], cfg)
        e = tasks.sample_factors(eval_key, num_samples, cfg.num_factors, hp["rho"])
        x, y = tasks.task_data(task, e, cfg.model.kind, cfg.cubic)
        out = models.apply(state["params"], x, cfg.model, hp)
        err = jnp.mean(jnp.sum((out["out"] - y) ** 2, axis=-1))
        var = jnp.mean(jnp.sum((y - y.mean(0)) ** 2, axis=-1))
        return {"code": out["code"], "factors": e, "recon": err / var}

    return evaluate


def make_vae_eval(cfg: TrainConfig) -> Callable:
    """`evaluate(state, hp, images) -> {'code' [N, code_dim] (posterior means), 'nll', 'kl'}` on every image."""

    def evaluate(state, hp, images):
        out = models.apply(state["params"], images, cfg.model, hp)
        nll = jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(out["out"], images), axis=-1))
        mu, logvar = out["mu"], out["logvar"]
        kl = jnp.mean(0.5 * jnp.sum(mu**2 + jnp.exp(logvar) - logvar - 1.0, axis=-1))
        return {"code": mu, "nll": nll, "kl": kl}

    return evaluate
