"""spectra at the paper's scale (an accelerator or a patient CPU): larger matrices, more seeds,
finer phase diagram. The finite-rank experiment keeps the paper's N = M = 1000, rank 10.

    python -m spectra.main --config=spectra/configs/paper.py

N = 2000, M = 4000 for (a), (b), (e) with 5 seeds; phase diagram over 20 values of b. Not run
here (no accelerator in this session); expect tighter theory/simulation agreement than default.
"""

from __future__ import annotations

import ml_collections

from spectra.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The paper-scale config (no variants)."""
    c = default.get_config()
    c.n = 2000
    c.num_seeds = 5
    c.overlap_bins = 30
    c.bbp_thetas = (1.0, 1.2, 1.5, 2.0, 3.0)
    c.phase_bs = tuple(
        float(b)
        for b in (
            0.0003,
            0.001,
            0.002,
            0.005,
            0.01,
            0.02,
            0.05,
            0.1,
            0.15,
            0.2,
            0.25,
            0.3,
            0.4,
            0.5,
            0.6,
            0.7,
            0.8,
            0.9,
            0.95,
            0.99,
        )
    )
    c.phase_grid_b = 30
    c.phase_grid_s = 40
    c.finite_thetas = tuple(round(0.7 + 0.05 * i, 2) for i in range(27))
    c.finite_seeds = 10
    c.denoise_n = 2000
    c.denoise_seeds = 5
    if arg not in (None, "", "paper"):
        raise ValueError(f"unknown variant {arg!r}")
    return c
