"""spectra at CPU scale: theory vs simulation of the deformed spectrum and singular vectors, the ESM
phase diagram, the finite-rank failure at N = 1000, and the denoising / covariance tables.

    python -m spectra.main --config=spectra/configs/default.py
    python -m spectra.main --config=spectra/configs/default.py:smoke  # seconds (tests)

default: N = 1000, M = 2000 (c = 1/2) for (a), (b), (e); N = M = 1000, rank 10 for (d); 2-3 seeds.
Expected (see spectra/README.md for the measured numbers): a few minutes on 2 shared CPU cores;
density quantile error ~1e-2, overlap error a few 1e-2, RIE within ~1% of the oracle on every
signal (relative Frobenius error 0.64 for b = 0.5, s = 1.5, i.e. 0.41 squared).
smoke: N = 120, M = 240, one seed, coarse phase diagram; checks that everything runs.
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The CPU-scale config; `arg` picks a variant: None/'default' or 'smoke'."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False
    # BLAS/LAPACK threads for numpy/scipy/jax-CPU linear algebra; 0 = library default. One thread is
    # several times faster than two on 2 cores shared with other jobs (measured).
    c.blas_threads = 1

    # (a) density and (b) overlaps: N rows, M = N / c columns for each (b, s, c) setting.
    c.n = 1000
    c.density_settings = ((0.5, 1.5, 0.5), (0.1, 1.0, 0.5), (0.05, 2.0, 0.5), (0.3, 1.2, 1.0))
    c.overlap_settings = ((0.5, 1.5, 0.5), (0.1, 1.2, 0.5))
    c.bbp_thetas = (1.2, 1.5, 2.0, 3.0)  # rank-one spikes at c = 1/2 (finite-rank overlaps)
    c.num_seeds = 3
    c.overlap_bins = 20

    # (c) phase diagram of the ESM at ratio c.
    c.phase_c = 0.5
    c.phase_bs = (0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    c.phase_grid_b = 14  # resolution of the (b, s) map of the number of bulks
    c.phase_grid_s = 20
    c.phase_s_max = 2.5
    c.phase_sim_bs = (0.01, 0.03, 0.1, 0.3, 0.7)  # simulated at s_c(b) -+ phase_sim_offset (N = n)
    c.phase_sim_offset = 0.15

    # (d) finite-rank failure: N = M = finite_n, rank finite_rank, strengths around 1.
    c.finite_n = 1000
    c.finite_rank = 10
    c.finite_thetas = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.7, 2.0)
    c.finite_seeds = 3

    # (e) denoising tables at N x (N / denoise_c).
    c.denoise_n = 1000
    c.denoise_c = 0.5
    c.denoise_esm = ((0.5, 1.5), (0.1, 1.0), (0.05, 2.0))  # (b, s) ESM signals
    c.denoise_continuous_smax = 3.0  # plus singular values evenly spread on (0, s_max]
    c.denoise_seeds = 3
    c.smoothing = 1.5  # RIE smoothing eps = smoothing / sqrt(N) (denoiser)
    c.cov_smoothing = 0.5  # same for the covariance estimator

    if arg in (None, "", "default"):
        return c
    if arg == "smoke":
        c.n = 120
        c.density_settings = ((0.5, 1.5, 0.5), (0.2, 1.2, 1.0))
        c.overlap_settings = ((0.5, 1.5, 0.5),)
        c.bbp_thetas = (2.0,)
        c.num_seeds = 1
        c.overlap_bins = 6
        c.phase_bs = (0.01, 0.3)
        c.phase_grid_b = 3
        c.phase_grid_s = 4
        c.phase_sim_bs = (0.3,)
        c.finite_n = 100
        c.finite_rank = 2
        c.finite_thetas = (0.8, 1.5)
        c.finite_seeds = 1
        c.denoise_n = 100
        c.denoise_esm = ((0.5, 1.5),)
        c.denoise_seeds = 1
        return c
    raise ValueError(f"unknown variant {arg!r}; use 'smoke' or nothing")
