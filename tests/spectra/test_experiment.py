"""The smoke config end to end (results keys, figures, sane numbers) and config validation."""

from __future__ import annotations

import json
import os

import pytest

from common import app
from spectra import experiment
from spectra.configs import default, paper

FIGURES = ("a_density", "b_overlaps", "c_phase_diagram", "d_finite_rank", "e_denoise", "e_shrinkage")


def test_smoke_run_writes_results_and_figures(tmp_path):
    workdir = str(tmp_path / "run")
    res = app.execute(experiment, default.get_config("smoke"), workdir)
    for key in (
        "density_max_abs_quantile_error",
        "overlap_max_abs_error",
        "denoise",
        "covariance",
        "phase_diagram",
    ):
        assert key in res
    on_disk = json.load(open(os.path.join(workdir, "results.json")))
    assert on_disk["denoise"] == res["denoise"]
    for name in FIGURES:
        assert os.path.getsize(os.path.join(workdir, "figures", name + ".png")) > 10_000
    assert res["density_max_abs_quantile_error"] < 0.15  # N = 120: loose, only catches a broken pipeline
    for integral in res["density_integral"].values():
        assert integral == pytest.approx(1.0, abs=1e-3)
    den = res["denoise"]
    for sig in den["rie"]:
        assert den["oracle"][sig] <= den["rie"][sig] <= 1.1 * den["oracle"][sig]
        assert den["oracle"][sig] <= min(den[k][sig] for k in den)
    assert set(res["covariance"]) >= {"rie_covariance", "oracle"}
    assert all(float(v) > 0.84 for v in res["phase_diagram"].values())  # s_c > c^(1/4) at c = 1/2
    assert "phase_map_agreement" not in res  # the circular map-vs-line comparison is gone
    # Simulated bulk counts vs the theory's: at N = 120 only a fraction (edge fluctuations ~ N^(-2/3)
    # are as wide as the gaps); the N = 600 check is test_theory.test_phase_counts_against_simulation.
    assert 0.0 <= res["phase_simulation_count_agreement"] <= 1.0
    assert set(res["sigma_fit_over_sigma"]) == set(res["sigma_hat_over_sigma"])
    rows = experiment.report(res)
    assert all({"name", "value", "paper", "ok"} <= set(r) for r in rows)


@pytest.mark.parametrize(
    "key,value",
    [("n", 5), ("phase_c", 1.5), ("density_settings", ((0.5, 1.5, 2.0),)), ("smoothing", 0.0)],
)
def test_validate_names_the_field(key, value):
    cfg = default.get_config("smoke")
    cfg[key] = value
    with pytest.raises(app.ConfigError) as err:
        experiment.validate(cfg)
    assert err.value.key == key


def test_all_configs_validate():
    for cfg in (default.get_config(), default.get_config("smoke"), paper.get_config()):
        experiment.validate(cfg)
