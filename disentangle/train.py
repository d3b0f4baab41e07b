"""Training as pure functions of one run, so seeds x constraint variants are one sweep of `common.train_loop`.

A run's state is {'params', 'opt' (Adam with its learning rate in the state, `common.nn.per_run_lr`), 'key' (raw key
data)}. The traced hyperparameters of a run (`HPARAMS`): `lr`, `beta_nonneg`, `beta_activity`, `beta_weight`,
`beta_l1`, `relu` (the ReLU gate of models.constrained), `rho` and `corner` (the factor distribution, synthetic
tasks), `beta_kl` and `mu_bias` (VAE). Every constraint variant has the same shapes, so a whole ablation is one
compiled program: `init_state(cfg, key, hp)` and `chunk(cfg, state, hp, shared, start_step)` are the
driver's `init` and `chunk` with static arguments first. Step t's batch comes from fold_in(data key, t), so results
do not depend on how steps are chunked (or on a resume).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

from common import checkpoint, nn
from disentangle import losses, models, tasks

# fold_in constants: one per purpose of a run's key
_INIT, _TASK, _DATA = 0, 1, 2
# fold_in constants of the evaluation key (jax.random.key(seed) -> _EVAL -> which factors)
_EVAL, EVAL_TRAIN_DIST, EVAL_INDEPENDENT = 7, 0, 1
HPARAMS = (
    "lr",
    "beta_nonneg",
    "beta_activity",
    "beta_weight",
    "beta_l1",
    "relu",
    "rho",
    "corner",
    "beta_kl",
    "mu_bias",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static part of a run: the model, the task, the batch size and the steps per compiled chunk."""

    model: models.ModelConfig
    num_factors: int
    batch_size: int
    chunk_steps: int
    cubic: bool = False  # supervised task with x <- 4 x^3


def _optimizer() -> optax.GradientTransformation:
    return nn.per_run_lr(optax.adam)


def init_state(cfg: TrainConfig, key: jax.Array, hp: Mapping[str, jax.Array]) -> dict:
    """Fresh state of one run: parameters, Adam state with the run's learning rate, key data."""
    params = models.init_params(jax.random.fold_in(key, _INIT), cfg.model, hp["mu_bias"])
    opt = nn.set_lr(_optimizer().init(params), hp["lr"])
    return {"params": params, "opt": opt, "key": jax.random.key_data(key)}


def run_task(key_data: jax.Array, cfg: TrainConfig) -> dict:
    """The run's fixed data map, rebuilt from its key (not stored in the state or checkpoints)."""
    key = jax.random.wrap_key_data(key_data)
    return tasks.make_task(jax.random.fold_in(key, _TASK), cfg.model, cfg.num_factors, cfg.cubic)


def synthetic_loss(params, task, e, cfg: TrainConfig, hp) -> tuple[jax.Array, dict]:
    """Eq. 2 on a batch of factors e: squared error of the task plus the biological terms."""
    x, y = tasks.task_data(task, e, cfg.model.kind, cfg.cubic)
    out = models.apply(params, x, cfg.model, hp)
    return losses.constrained_loss(losses.squared_error(out["out"], y), out["constrained"], models.weights(params), hp)


def _vae_terms(out: dict, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(Bernoulli negative log-likelihood, KL(q || N(0, I))), both summed over dimensions, averaged over the batch."""
    nll = jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(out["out"], images), axis=-1))
    mu, logvar = out["mu"], out["logvar"]
    kl = jnp.mean(0.5 * jnp.sum(mu**2 + jnp.exp(logvar) - logvar - 1.0, axis=-1))
    return nll, kl


def vae_loss(params, images, key, cfg: TrainConfig, hp) -> tuple[jax.Array, dict]:
    """beta-VAE: Bernoulli NLL + beta_kl KL(q || N(0, I)) + the biological terms on the posterior mean."""
    out = models.apply(params, images, cfg.model, hp, key=key)
    nll, kl = _vae_terms(out, images)
    total, terms = losses.constrained_loss(nll + hp["beta_kl"] * kl, out["constrained"], models.weights(params), hp)
    return total, {**terms, "kl": kl, "nll": nll}


def _step_loss(cfg: TrainConfig, params, hp, task, images, k: jax.Array):
    if cfg.model.kind == "vae":
        k_idx, k_eps = jax.random.split(k)
        idx = jax.random.randint(k_idx, (cfg.batch_size,), 0, images.shape[0])
        return vae_loss(params, images[idx], k_eps, cfg, hp)
    e = tasks.sample_factors(k, cfg.batch_size, cfg.num_factors, hp["rho"], hp["corner"])
    return synthetic_loss(params, task, e, cfg, hp)


def chunk(cfg: TrainConfig, state: dict, hp, shared, start_step) -> tuple[dict, dict]:
    """`cfg.chunk_steps` Adam steps inside a guarded scan; the driver's chunk function for one run.

    Synthetic kinds draw fresh factors every step; the VAE samples minibatches from the images in `shared` (every
    run's). metrics: `loss` (mean over the chunk), `functional` (last step) and checkpoint.NONFINITE.
    """
    tx = _optimizer()
    data_key = jax.random.fold_in(jax.random.wrap_key_data(state["key"]), _DATA)
    task = None if cfg.model.kind == "vae" else run_task(state["key"], cfg)

    def step(carry, t):
        params, opt = carry
        fn = lambda p: _step_loss(cfg, p, hp, task, shared, jax.random.fold_in(data_key, t))  # noqa: E731
        (loss, terms), grads = jax.value_and_grad(fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), {"loss": loss, "functional": terms["functional"]}

    (params, opt), outs, bad = checkpoint.guarded_scan(
        step, (state["params"], state["opt"]), start_step, cfg.chunk_steps
    )
    new = {"params": params, "opt": opt, "key": state["key"]}
    return new, {"loss": jnp.mean(outs["loss"]), "functional": outs["functional"][-1], checkpoint.NONFINITE: bad}


def _codes(cfg: TrainConfig, state, hp, task, e):
    x, y = tasks.task_data(task, e, cfg.model.kind, cfg.cubic)
    out = models.apply(state["params"], x, cfg.model, hp)
    err = jnp.mean(jnp.sum((out["out"] - y) ** 2, axis=-1))
    var = jnp.mean(jnp.sum((y - y.mean(0)) ** 2, axis=-1))
    return out["code"], err / var


def evaluate(cfg: TrainConfig, num_samples: int, seed: int, state, hp, shared) -> dict:
    """Codes of one trained run on fresh factors, from its training distribution and from independent factors.

    Returns {'code', 'factors' (the run's own rho / corner), 'code_independent', 'factors_independent' (independent
    U[0, 1] factors: the same encoder scored where the metric is not confounded by the correlation), 'recon'} where
    `recon` is the fraction of target variance left unexplained on the training distribution,
    E||y - y_hat||^2 / E||y - E y||^2. The evaluation factors come from the config's `seed` (the same for every run);
    the data map is the run's own.
    """
    del shared
    key = jax.random.fold_in(jax.random.key(seed), _EVAL)
    task = run_task(state["key"], cfg)
    e = tasks.sample_factors(
        jax.random.fold_in(key, EVAL_TRAIN_DIST), num_samples, cfg.num_factors, hp["rho"], hp["corner"]
    )
    e_ind = tasks.sample_factors(jax.random.fold_in(key, EVAL_INDEPENDENT), num_samples, cfg.num_factors)
    code, recon = _codes(cfg, state, hp, task, e)
    code_ind, _ = _codes(cfg, state, hp, task, e_ind)
    return {"code": code, "factors": e, "code_independent": code_ind, "factors_independent": e_ind, "recon": recon}


def evaluate_vae(cfg: TrainConfig, state, hp, images) -> dict:
    """{'code' [N, code_dim] (posterior means of every image), 'nll', 'kl'} of one trained VAE."""
    out = models.apply(state["params"], images, cfg.model, hp)
    nll, kl = _vae_terms(out, images)
    return {"code": out["mu"], "nll": nll, "kl": kl}
