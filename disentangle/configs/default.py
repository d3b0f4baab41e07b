"""disentangle at CPU scale: Theorem 1, the ablation (linear AE and supervised net), correlated factors, a beta-VAE
on generated sprites and the cell-type experiment, each one vmapped sweep.

    python -m disentangle.main --config=disentangle/configs/default.py
    python -m disentangle.main --config=disentangle/configs/default.py:smoke   # tiny; compile-bound (~1-2 min)

default: linear autoencoder (6 U[0,1] factors -> 50-d data -> 10 latents; Adam 1e-3, batch 256, 12k steps) and a
supervised net (x = O e -> 24 hidden -> y = W e, 8k steps) for the five constraint variants x 3 seeds; the
constrained linear AE at rho = 0, 0.3, 0.6, 0.9; a beta-VAE (beta 4) with and without a ReLU on the posterior
mean on 576 16x16 sprites; path-integrating codes in 32 5x5 worlds with objects.
Runtime and results: disentangle/README.md.
smoke: tiny versions of every part, a few steps each: only checks that everything runs end to end (its time is
the XLA compiles of about ten small programs).
"""

from __future__ import annotations

import ml_collections


def _task(**kw) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.input_dim = 50
    c.output_dim = 50
    c.code_dim = 10
    c.num_factors = 6
    c.hidden = ()
    c.batch_size = 256
    c.num_steps = 8000
    c.chunk_steps = 2000  # steps per compiled call = checkpoint interval
    c.lr = 1e-3
    c.beta_nonneg = 0.5
    c.beta_activity = 5e-3
    c.beta_weight = 1e-3
    c.beta_l1 = 5e-3  # the L1 control's sparsity penalty (variant "l1")
    c.update(kw)
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The CPU-scale config; `arg` picks a variant: None/'default' or 'smoke'."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False
    c.data_dir = ""  # tfds data directory for vae.dataset = dsprites / shapes3d ("" = $TFDS_DATA_DIR)

    c.energy = ml_collections.ConfigDict()
    c.energy.num_thetas = 19  # theta grid on [0, pi/2]
    c.energy.num_samples = 1_000_000

    c.eval = ml_collections.ConfigDict()
    c.eval.num_samples = 10_000  # fresh factor samples for the metrics
    c.eval.num_bins = 20  # histogram bins per latent (disentanglement_lib's default)
    c.eval.factor_bins = 20  # equal-width bins for the continuous synthetic factors (image factors: one class each)
    c.eval.activity_threshold = 0.0  # 0: scale-invariant (only constant latents inactive); see metrics.py

    c.ablation = ml_collections.ConfigDict()
    c.ablation.tasks = ("linear_ae", "deep_ae", "supervised", "supervised_cubic")  # the first is the headline
    c.ablation.variants = ("none", "energy", "nonneg", "all", "relu_energy", "l1")
    c.ablation.num_seeds = 3

    c.linear_ae = _task(num_steps=12_000, chunk_steps=3000)
    c.deep_ae = _task(hidden=(64, 32), lr=1e-3)
    sup = dict(input_dim=6, output_dim=6, code_dim=24, batch_size=128, lr=3e-3, beta_nonneg=2.0, beta_activity=1e-3,
               beta_weight=1e-4, beta_l1=1e-3)  # fmt: skip
    c.supervised = _task(**sup)
    c.supervised_cubic = _task(**{**sup, "hidden": (64,)})  # x <- 4 x^3: a ReLU layer to undo the cubic

    c.correlated = ml_collections.ConfigDict()
    c.correlated.rhos = (0.0, 0.3, 0.6, 0.9)  # correlation of every factor pair, full support (tasks.sample_factors)
    c.correlated.variant = "all"
    c.correlated.corner = 0.8  # the entangling case: factor pairs uniform on the band |u - v| <= 1 - corner

    c.vae = ml_collections.ConfigDict()
    c.vae.variants = ("beta_vae", "relu", "nonneg_energy", "relu_energy")
    c.vae.dataset = "sprites"  # generated offline; paper.py: dsprites / shapes3d via tfds
    c.vae.image_size = 16
    c.vae.num_scales = 3
    c.vae.num_positions = 8
    c.vae.max_images = 50_000  # tfds sets only
    c.vae.hidden = (128,)
    c.vae.code_dim = 6
    c.vae.beta_kl = 4.0
    c.vae.beta_activity = 0.05
    c.vae.beta_weight = 1e-4
    c.vae.beta_nonneg = 1.0  # the soft-nonnegativity penalty of `nonneg_energy`
    c.vae.mu_bias = 1.0  # initial bias of the posterior means (every variant): nonnegative latents start alive
    c.vae.lr = 1e-3
    c.vae.batch_size = 64
    c.vae.num_steps = 3000
    c.vae.chunk_steps = 1000
    c.vae.num_seeds = 3

    c.cells = ml_collections.ConfigDict()
    c.cells.variants = ("unconstrained", "constrained", "constrained_entangled", "unconstrained_entangled")
    c.cells.side = 5  # L x L torus worlds
    c.cells.num_worlds = 32
    c.cells.num_neurons = 24
    c.cells.jitter = 1  # entangled task: object at (0, 0) + {0, ..., jitter} cells per axis
    c.cells.lr = 1e-2
    c.cells.beta_nonneg = 1.0
    c.cells.beta_activity = 0.05
    c.cells.beta_weight = 0.01
    c.cells.num_steps = 2000
    c.cells.chunk_steps = 1000
    c.cells.num_seeds = 2

    if arg in (None, "", "default"):
        return c
    if arg == "smoke":
        c.energy.num_thetas = 5
        c.energy.num_samples = 20_000
        c.eval.num_samples = 2000
        c.ablation.tasks = ("linear_ae",)
        c.ablation.variants = ("none", "all")
        c.ablation.num_seeds = 1
        # small enough to train in seconds, long enough for the effect: all three constraints disentangle
        c.linear_ae = _task(input_dim=12, output_dim=12, code_dim=4, num_factors=3, batch_size=128, num_steps=3000,
                            chunk_steps=1000, lr=1e-2, beta_activity=2e-2, beta_weight=5e-3)  # fmt: skip
        c.correlated.rhos = (0.0, 0.9)
        c.correlated.corner = 0.8
        c.vae.variants = ("beta_vae", "nonneg_energy")
        c.vae.image_size = 12
        c.vae.num_scales = 2
        c.vae.num_positions = 4
        c.vae.hidden = (32,)
        c.vae.code_dim = 4
        c.vae.num_steps = 100
        c.vae.chunk_steps = 50
        c.vae.num_seeds = 1
        c.cells.variants = ("unconstrained", "constrained")
        c.cells.side = 3
        c.cells.num_worlds = 6
        c.cells.num_neurons = 8
        c.cells.num_steps = 100
        c.cells.chunk_steps = 50
        c.cells.num_seeds = 1
        return c
    raise ValueError(f"unknown variant {arg!r}; expected 'default' or 'smoke'")
