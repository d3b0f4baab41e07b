"""Config checks of spectra's experiments: every field's range, raised as app.ConfigError naming the field."""

from __future__ import annotations

import ml_collections

from common import app
from common import validate as check


def validate(config: ml_collections.ConfigDict) -> None:
    """Range checks for every field (raises app.ConfigError naming the field)."""

    def need(ok: bool, key: str, msg: str) -> None:
        if not ok:
            raise app.ConfigError(key, msg)

    check.integer(config, "n", "finite_n", "finite_rank", "denoise_n")
    check.positive_int(
        config, "num_seeds", "overlap_bins", "phase_grid_b", "phase_grid_s", "finite_seeds", "denoise_seeds"
    )
    check.non_negative_int(config, "blas_threads")  # 0 = library default
    check.in_range(config, "n", 20)
    for key in ("density_settings", "overlap_settings"):
        settings = config[key]
        need(len(settings) >= 1, key, "needs at least one (b, s, c) triple")
        for t in settings:
            need(len(t) == 3, key, f"entries must be (b, s, c), got {t}")
            b, s, c = t
            need(0 < b < 1, key, f"b must be in (0, 1), got {b}")
            need(s > 0, key, f"s must be > 0, got {s}")
            need(0 < c <= 1, key, f"c must be in (0, 1], got {c}")
    # Grids: non-empty and strictly increasing (figures and tables are laid out along them).
    check.sorted_grid(config, "bbp_thetas", positive=True)
    check.sorted_grid(config, "finite_thetas", positive=True)
    for key in ("phase_bs", "phase_sim_bs"):  # no simulated points is allowed: the diagram is theory alone
        check.sorted_grid(config, key, positive=True, allow_empty=key == "phase_sim_bs")
        need(all(b < 1 for b in config[key]), key, f"every b must be in (0, 1), got {tuple(config[key])}")
    need(config.overlap_bins >= 2, "overlap_bins", "must be >= 2")
    check.probability(config, "phase_c", "denoise_c", open_low=True)
    need(config.phase_grid_b >= 2, "phase_grid_b", "must be >= 2")
    need(config.phase_grid_s >= 2, "phase_grid_s", "must be >= 2")
    check.positive(config, "phase_s_max", "phase_sim_offset", "denoise_continuous_smax", "smoothing", "cov_smoothing")
    need(config.finite_n >= 10, "finite_n", "must be >= 10")
    need(1 <= config.finite_rank <= config.finite_n, "finite_rank", "must be in [1, finite_n]")
    need(config.denoise_n >= 10, "denoise_n", "must be >= 10")
    need(
        all(len(t) == 2 and 0 < t[0] <= 1 and t[1] > 0 for t in config.denoise_esm),
        "denoise_esm",
        "entries must be (b, s) with 0 < b <= 1, s > 0",
    )
