"""The training groups: each is one sweep of runs (variants x seeds) through `common.train_loop.train`.

- `synthetic(config, task, ...)`: the constraint ablation of one task, and for the headline task also the
  correlated-factor rows (full support at each rho) and the entangling rows (a corner cut off the support);
- `vae(config, ...)`: the VAE variants on an image set with known factors;
- `cells(config, ...)`: the cell-type codes.

Run keys: `fold_in(fold_in(key(config.seed), <group constant>), seed index)`, so the i-th seed of every variant of a
group shares its initialisation and data stream (variants are paired), and groups never share keys.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from absl import logging

from common import app, train_loop
from disentangle import cells as cells_lib
from disentangle import models, tasks, train
from disentangle.validation import TASKS, VAE_VARIANTS, VARIANTS

# fold_in constants, one per group
_GROUP = {"linear_ae": 1, "deep_ae": 2, "supervised": 3, "supervised_cubic": 4, "vae": 5, "cells": 6}
_INDEPENDENT = 1_000  # cells: jitter >= side places objects uniformly over the torus


def run_keys(seed: int, group: str, seed_index: np.ndarray) -> jax.Array:
    """Typed keys [R]: fold_in(fold_in(key(seed), group constant), seed index of each run)."""
    base = jax.random.fold_in(jax.random.key(seed), _GROUP[group])
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.asarray(seed_index, np.uint32))


def _hparams(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    return {k: np.array([r.get(k, 0.0) for r in rows], np.float32) for k in train.HPARAMS}


def constraint_row(c, variant: str, table=VARIANTS) -> dict[str, float]:
    """The traced hyperparameters of one variant, from a config block holding its betas and learning rate."""
    n, a, w, relu, l1 = table[variant]
    return {
        "beta_nonneg": n * c.beta_nonneg,
        "beta_activity": a * c.beta_activity,
        "beta_weight": w * c.beta_weight,
        "beta_l1": l1 * c.get("beta_l1", 0.0),
        "relu": relu,
        "lr": c.lr,
    }


def task_config(config, task: str) -> train.TrainConfig:
    t = config[task]
    kind, cubic = TASKS[task]
    mcfg = models.ModelConfig(kind, t.input_dim, t.output_dim, t.code_dim, tuple(t.hidden))
    return train.TrainConfig(mcfg, t.num_factors, t.batch_size, t.chunk_steps, cubic=cubic)


def _synthetic_rows(config, task: str, with_correlated: bool) -> list[tuple[Any, dict]]:
    """(label, hyperparameters) per row: the ablation's variants, then correlated rhos and the corner cut."""
    c = config[task]
    rows = [(("ablation", name), {**constraint_row(c, name)}) for name in config.ablation.variants]
    if with_correlated:
        constrained = constraint_row(c, config.correlated.variant)
        for rho in config.correlated.rhos:
            if rho > 0.0 or config.correlated.variant not in config.ablation.variants:
                rows.append((("correlated", float(rho)), {**constrained, "rho": float(rho)}))
        if config.correlated.corner > 0:
            rows.append((("entangling", None), {**constrained, "corner": float(config.correlated.corner)}))
    return rows


def synthetic(config, task: str, workdir: str | None, writer, with_correlated: bool) -> dict[Any, list[dict]]:
    """Trains one task's rows x seeds as one sweep; returns label -> per-seed evaluation outputs (host numpy)."""
    tc = task_config(config, task)
    n_seeds = config.ablation.num_seeds
    rows = _synthetic_rows(config, task, with_correlated)
    hp_rows = [hp for _, hp in rows for _ in range(n_seeds)]
    seed_index = np.tile(np.arange(n_seeds), len(rows))
    labels = [{"row": str(label[1] if label[0] != "entangling" else "entangling"), "seed": int(i)}
              for label, _ in rows for i in range(n_seeds)]  # fmt: skip
    logging.info("%s: %d runs (rows x seeds) as one sweep, %d steps", task, len(hp_rows), config[task].num_steps)
    res = train_loop.train(
        name=task,
        init=train.init_state,
        chunk=train.chunk,
        static=(tc,),
        keys=run_keys(config.seed, task, seed_index),
        hparams=_hparams(hp_rows),
        num_steps=config[task].num_steps,
        chunk_steps=config[task].chunk_steps,
        workdir=workdir,
        writer=writer,
        labels=labels,
    )
    out = res.evaluate(train.evaluate, static=(tc, config.eval.num_samples, config.seed))
    per_row: dict[Any, list[dict]] = {}
    for r, (label, _) in enumerate(x for x in rows for _ in range(n_seeds)):
        per_row.setdefault(label, []).append({k: v[r] for k, v in out.items()})
    if with_correlated and 0.0 in [float(r) for r in config.correlated.rhos]:
        per_row.setdefault(("correlated", 0.0), per_row.get(("ablation", config.correlated.variant), []))
    return per_row


def vae_images(config) -> tuple[np.ndarray, np.ndarray, tuple, str]:
    """(images [N, P] in [0, 1], factors [N, F], factor names, data_source) for config.vae.dataset.

    dSprites / Shapes3D come only from a prepared tfds directory; when the set is not there the generated sprites
    are used instead, with a warning, and data_source says so.
    """
    c = config.vae
    fallback = ""
    if c.dataset != "sprites":
        try:
            x, f, names = tasks.tfds_factor_images(c.dataset, c.image_size, c.max_images, config.get("data_dir"))
            return x, f, names, f"tfds:{c.dataset}"
        except tasks.FactorDataUnavailable as e:
            logging.warning("%s -> using the generated sprites instead", e)
            fallback = f" (fallback for tfds:{c.dataset})"
    x, f, names = tasks.sprites(c.image_size, c.num_scales, c.num_positions)
    src = f"generated:sprites({c.image_size}px, 3 shapes x {c.num_scales} scales x {c.num_positions}^2){fallback}"
    return x, f, names, src


def vae(config, workdir: str | None, writer) -> dict[str, Any]:
    """VAE variants x seeds as one sweep on the image set; returns per-variant evaluations and the data."""
    c = config.vae
    images, factors, names, source = vae_images(config)
    if len(images) < c.batch_size:
        raise app.UserError(f"vae.batch_size={c.batch_size} exceeds the {len(images)} images of {source}")
    mcfg = models.ModelConfig("vae", images.shape[1], images.shape[1], c.code_dim, tuple(c.hidden))
    tc = train.TrainConfig(mcfg, factors.shape[1], c.batch_size, c.chunk_steps)
    extra = {"beta_kl": c.beta_kl, "mu_bias": c.mu_bias}
    hp_rows = [{**constraint_row(c, name, VAE_VARIANTS), **extra} for name in c.variants for _ in range(c.num_seeds)]
    seed_index = np.tile(np.arange(c.num_seeds), len(c.variants))
    logging.info("vae: %d runs on %d images (%s), %d steps", len(hp_rows), len(images), source, c.num_steps)
    res = train_loop.train(
        name="vae",
        init=train.init_state,
        chunk=train.chunk,
        static=(tc,),
        keys=run_keys(config.seed, "vae", seed_index),
        hparams=_hparams(hp_rows),
        shared=images,
        num_steps=c.num_steps,
        chunk_steps=c.chunk_steps,
        workdir=workdir,
        writer=writer,
        labels=[{"variant": n, "seed": int(i)} for n in c.variants for i in range(c.num_seeds)],
    )
    out = res.evaluate(train.evaluate_vae, static=(tc,))
    per = {n: [{k: v[i * c.num_seeds + j] for k, v in out.items()} for j in range(c.num_seeds)]
           for i, n in enumerate(c.variants)}  # fmt: skip
    return {"per_variant": per, "factors": factors, "names": names, "source": source, "num_images": len(images)}


def _cell_row(c, name: str) -> dict[str, float]:
    constrained = name.startswith("constrained")
    return {
        "lr": c.lr,
        "beta_nonneg": c.beta_nonneg if constrained else 0.0,
        "beta_activity": c.beta_activity if constrained else 0.0,
        "beta_weight": c.beta_weight if constrained else 0.0,
        "relu": 0.0,
        "jitter": float(c.jitter if name.endswith("entangled") else _INDEPENDENT),
    }


def cells(config, workdir: str | None, writer) -> dict[str, list[dict]]:
    """Cell variants x seeds as one sweep; returns variant -> per-seed evaluation outputs."""
    c = config.cells
    cfg = cells_lib.CellConfig(c.side, c.num_worlds, c.num_neurons, c.chunk_steps)
    rows = [_cell_row(c, n) for n in c.variants for _ in range(c.num_seeds)]
    res = train_loop.train(
        name="cells",
        init=cells_lib.init_state,
        chunk=cells_lib.chunk,
        static=(cfg,),
        keys=run_keys(config.seed, "cells", np.tile(np.arange(c.num_seeds), len(c.variants))),
        hparams={k: np.array([r[k] for r in rows], np.float32) for k in cells_lib.HPARAMS},
        num_steps=c.num_steps,
        chunk_steps=c.chunk_steps,
        workdir=workdir,
        writer=writer,
        labels=[{"variant": n, "seed": int(i)} for n in c.variants for i in range(c.num_seeds)],
    )
    out = res.evaluate(cells_lib.evaluate, static=(cfg,))
    return {n: [{k: v[i * c.num_seeds + j] for k, v in out.items()} for j in range(c.num_seeds)]
            for i, n in enumerate(c.variants)}  # fmt: skip
