"""disentangle at the paper's scale (App. A.4/A.5), for a GPU/TPU host; not run on CPU.

    python -m disentangle.main --config=disentangle/configs/paper.py
    python -m disentangle.main --config=disentangle/configs/paper.py:shapes3d

Settings from the paper's appendix: 6 independent U[0,1] factors; supervised x = O e -> 188 hidden -> y = W e
(lr 3e-3, batch 128, beta_activity 1e-3, beta_weight 1e-4, beta_nonneg 2.0); linear and deep [500, 300, 100]
autoencoders on y = W e in R^50 with 10 latents (lr 1e-4, batch 64, beta_activity 5e-3, beta_weight 1e-3,
beta_nonneg 0.5); 5 seeds. The paper trains on a fixed set of 200k samples; here every step draws fresh factors
(the same distribution; no finite-sample effects). beta-VAE on dSprites (tfds, prepared on disk; greyscale 64x64)
with a 1200-1200 MLP encoder/decoder and 10 latents; Shapes3D with the `shapes3d` variant. Cells: 16 x 16 worlds.
Step counts are not given in the notes; the values below are this package's choice (long enough that the CPU-scale
MIR, which saturates by ~8k steps at lr 1e-3, is reached at lr 1e-4).
"""

from __future__ import annotations

import ml_collections

from disentangle.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The paper-scale config; `arg`: None/'dsprites' or 'shapes3d' (the VAE's data set)."""
    c = default.get_config()
    c.eval.num_samples = 100_000
    c.ablation.tasks = ("linear_ae", "deep_ae", "supervised", "supervised_cubic")
    c.ablation.num_seeds = 5
    ae = dict(batch_size=64, lr=1e-4, beta_nonneg=0.5, beta_activity=5e-3, beta_weight=1e-3, num_steps=200_000,
              chunk_steps=10_000)  # fmt: skip
    c.linear_ae.update(ae)
    c.deep_ae.update(ae)
    c.deep_ae.hidden = (500, 300, 100)
    sup = dict(code_dim=188, batch_size=128, lr=3e-3, beta_nonneg=2.0, beta_activity=1e-3, beta_weight=1e-4,
               num_steps=100_000, chunk_steps=10_000)  # fmt: skip
    c.supervised.update(sup)
    c.supervised_cubic.update(sup)
    c.supervised_cubic.hidden = (188,)  # a ReLU layer before the code, to undo the cubic
    c.correlated.rhos = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)
    c.vae.dataset = "dsprites"
    c.vae.image_size = 64
    c.vae.max_images = 737_280
    c.vae.hidden = (1200, 1200)
    c.vae.code_dim = 10
    c.vae.num_steps = 300_000
    c.vae.chunk_steps = 10_000
    c.vae.num_seeds = 3
    c.cells.side = 16
    c.cells.num_worlds = 64
    c.cells.num_neurons = 128
    c.cells.jitter = 2
    c.cells.lr = 3e-3
    c.cells.num_steps = 50_000
    c.cells.chunk_steps = 5_000
    c.cells.num_seeds = 3
    if arg in (None, "", "dsprites"):
        return c
    if arg == "shapes3d":
        c.vae.dataset = "shapes3d"
        c.vae.max_images = 480_000
        return c
    raise ValueError(f"unknown variant {arg!r}; expected 'dsprites' or 'shapes3d'")
