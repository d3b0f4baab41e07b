"""margin at a larger scale for an accelerator: longer horizons, larger neural-collapse runs, finer perceptron curves.

    python -m margin.main --config=margin/configs/paper.py --workdir=runs/margin/paper

The paper (no released code) states its results for gradient flow and shows small illustrative runs; this config
makes the limits tighter rather than reproducing a specific protocol: (a) toys for 200k steps, 8 seeds; (b, c) width
64 nets for 100k steps; (d) unconstrained features with K = 10, d = 27 (20 per class), and a BatchNorm MLP
(512, 256) -> d = 63 on MNIST (tfds, prepared offline; set nc_mlp.dataset = "digits" without it), 500 per class,
50k full-batch steps; (e) Cover at N = 50 with 2,000 draws per P, teacher-student at N = 200. Not run here: the
time on one accelerator is an estimate, not a measurement (see margin/README.md).
"""

from __future__ import annotations

import ml_collections

from margin.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The accelerator-scale config (no variants)."""
    if arg not in (None, ""):
        raise ValueError(f"unknown variant {arg!r} (paper.py has none)")
    c = default.get_config()
    c.toy.num_seeds = 8
    c.toy.num_steps, c.toy.chunk_steps = 200_000, 10_000
    c.toy.log_every = 100
    c.nets.num_seeds = 8
    c.nets.hidden = 64
    c.nets.num_train, c.nets.num_test = 1000, 2000
    c.nets.num_steps, c.nets.chunk_steps = 100_000, 5_000
    c.nets.log_every = 100
    c.nets.pgd_steps = 50
    c.nc_ufm.num_seeds = 4
    c.nc_ufm.classes, c.nc_ufm.per_class, c.nc_ufm.dim = 10, 20, 27
    c.nc_ufm.num_steps, c.nc_ufm.chunk_steps = 50_000, 2_500
    c.nc_ufm.log_every = 50
    c.nc_mlp.num_seeds = 4
    c.nc_mlp.dataset = "mnist"
    c.nc_mlp.allow_fallback = False
    c.nc_mlp.per_class = 500
    c.nc_mlp.hidden = (512, 256)
    c.nc_mlp.dim = 63
    c.nc_mlp.num_steps, c.nc_mlp.chunk_steps = 50_000, 2_500
    c.nc_mlp.log_every = 50
    c.perceptron.cover_n = 50
    c.perceptron.cover_p = tuple(range(10, 161, 10))
    c.perceptron.cover_draws = 2000
    c.perceptron.ts_n = 200
    c.perceptron.ts_alphas = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    c.perceptron.ts_draws = 64
    c.perceptron.iters = 4000
    return c
