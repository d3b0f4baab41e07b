"""The experiment: configs, bad input through the API and the CLI, the trend checks of the report, the paper
config's data path on a fake tfds set, and (slow) the smoke runs end to end."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from common import app
from manifolds import experiment, report, summary, training
from manifolds.configs import default, paper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_configs_validate():
    for cfg in (
        default.get_config(),
        default.get_config("smoke"),
        default.get_config("smoke,released"),
        paper.get_config(),
    ):
        experiment.validate(cfg)
    p = paper.get_config()
    assert p.data.name == "cifar10" and max(p.estimator.dims) == 3072 and not p.data.allow_fallback
    r = default.get_config("released")
    assert r.estimator.bounds is None and r.estimator.optimizer == "released" and r.estimator.starts == "train_fresh"
    assert r.data.subtract_mean and r.ensemble.mode == "mixture" and r.train.weight_decay == 1e-4


@pytest.mark.parametrize(
    "key, value, field",
    [
        ("estimator.dims", (), "estimator.dims"),
        ("estimator.dims", (4, 2), "estimator.dims"),
        ("boundary_sets", ((0,),), "boundary_sets"),
        ("boundary_sets", ((1, 1),), "boundary_sets"),
        ("estimator.basis", "sparse", "estimator.basis"),
        ("estimator.bounds", (1.0, 0.0), "estimator.bounds"),
        ("estimator.optimizer", "sgd", "estimator.optimizer"),
        ("train.chunk_steps", 33, "train.chunk_steps"),
        ("train.num_seeds", 1, "train.num_seeds"),
        ("over_training.steps", (0, 5000), "over_training.steps"),
        ("thresholds", (0.3,), "thresholds"),
    ],
)
def test_bad_config_names_the_field(tmp_path, key, value, field):
    cfg = default.get_config("smoke")
    node, leaf = cfg, key.split(".")
    for part in leaf[:-1]:
        node = node[part]
    with cfg.unlocked():
        node[leaf[-1]] = value
    with pytest.raises(app.ConfigError) as err:
        app.execute(experiment, cfg, str(tmp_path / "w"))
    assert err.value.key == field
    assert not (tmp_path / "w").exists()


def test_bounds_with_mean_subtraction_is_refused(tmp_path):
    cfg = default.get_config("smoke,released")
    cfg.estimator.bounds = (0.0, 1.0)
    with pytest.raises(app.ConfigError) as err:
        app.execute(experiment, cfg, str(tmp_path / "w"))
    assert err.value.key == "estimator.bounds"


def test_d_larger_than_D_and_classes_beyond_C_are_user_errors(tmp_path):
    cfg = default.get_config("smoke")
    cfg.estimator.dims = (1, 2, 128)
    with pytest.raises(app.UserError, match=r"d must be <= D=64"):
        app.execute(experiment, cfg, str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    cfg = default.get_config("smoke")
    cfg.boundary_sets = ((0, 12),)
    with pytest.raises(app.UserError, match="boundary_sets"):
        app.execute(experiment, cfg, str(tmp_path / "b"))


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    cmd = [sys.executable, "-m", "manifolds.main", "--config=manifolds/configs/default.py:smoke"]
    cmd += [f"--workdir={tmp_path / 'w'}", "--config.estimator.dims=(1,2,100)"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ}, timeout=600)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: estimator.dims: d must be <= D=64")
    assert not (tmp_path / "w").exists()


def _pt(per_seed):
    return summary.over_seeds(per_seed, converged=True)


def test_trend_change_is_paired_over_seeds_and_signed():
    falls = {"0": _pt([5.0, 6.0, 7.0]), "3000": _pt([3.0, 4.1, 4.9])}  # each seed falls by ~2
    t = summary.trend_change(falls, -1)
    assert t["delta"] == pytest.approx(-2.0, abs=1e-9) and t["holds"] and not t["opposite"]
    assert t["error"] == pytest.approx(np.std([-2.0, -1.9, -2.1], ddof=1) / math.sqrt(3))
    rises = summary.trend_change(falls, +1)
    assert not rises["holds"] and rises["opposite"]
    noisy = summary.trend_change({"a": _pt([1.0, 2.0, 3.0]), "b": _pt([1.5, 1.0, 3.2])}, -1)
    assert not noisy["holds"] and not noisy["opposite"]  # within 2 standard errors
    p = _pt([1.0, float("nan"), 3.0])
    assert p["n"] == 2 and p["value"] == 2.0


def test_report_rows_say_which_trends_hold():
    res = {
        "D": 64,
        "data_source": "synthetic",
        "d_star": {"0": {"value": 2.0}, "1": {"value": 3.0}},
        "known_answer": {},
        "d_star_boundary": {"1": {"value": 2.5}, "2": {"value": 4.0}},
        "d_star_by_epoch": {"0": _pt([9.0, 8.0, 9.5]), "3000": _pt([3.0, 2.5, 3.2])},
        "d_star_random_labels": {"true": _pt([3.0, 2.5, 3.2]), "random": _pt([2.0, 2.4, 2.1])},
        "converged": {"fraction": 0.95, "by_estimate": {"a": True}},
    }
    res["trends"] = summary.trends(res)
    rows = {r["name"]: r for r in report.report(json.loads(json.dumps(res)))}
    assert rows["trend: over_training (holds)"]["ok"] is True
    assert rows["trend: random_labels (opposite to the paper)"]["ok"] is False  # -0.73 ± 0.32: 2.3 sigma down
    assert rows["estimates converged (4x the steps at the same rate: d* moved by at most its error)"]["ok"] is True


def test_paper_config_reads_cifar10_from_a_fake_tfds_set(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.testing import mocking

    monkeypatch.setattr(mocking, "_getitems", lambda *a, generator, serialized=False: [generator[k] for k in a[-1]])
    cfg = paper.get_config()
    with tfds.testing.mock_data(num_examples=24):
        ds = training.load_data(cfg)
    assert ds["source"] == "tfds:cifar10" and ds["dim"] == 3072 and ds["x"].shape == (24, 3072)
    assert ds["shape"] == (32, 32, 3) and 0.0 <= ds["x"].min() and ds["x"].max() <= 1.0
    assert max(cfg.estimator.dims) == ds["dim"]


def _smoke_keys(res):
    for key in ("d_star", "d_star_boundary", "d_star_by_epoch", "d_star_random_labels", "d_star_by_width",
                "d_star_by_train_size", "d_star_ensemble", "d_star_by_threshold", "robustness", "trends",
                "effective_dimension", "converged", "data_source"):  # fmt: skip
        assert key in res, key


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path):
    wd = tmp_path / "w"
    res = app.execute(experiment, default.get_config("smoke"), str(wd))
    _smoke_keys(res)
    assert set(res["d_star"]) == {"0", "1"} and set(res["d_star_boundary"]) == {"1", "2", "3"}
    assert list(res["d_star_by_epoch"]) == ["0", "10", "100"] and res["data_source"] == "sklearn:digits"
    assert len(res["d_star_by_epoch"]["0"]["per_seed"]) == 2 and "probability" in res["d_star_by_epoch"]["0"]
    assert set(res["trends_probability_fit"]) <= set(res["trends"])
    figs = sorted(os.listdir(wd / "figures"))
    assert figs == [
        "d_star_boundaries.png",
        "d_star_per_class.png",
        "d_star_vs_variables.png",
        "known_answer_budget.png",
    ]
    rows = experiment.report(json.loads((wd / "results.json").read_text()))
    assert all({"name", "value", "paper", "ok"} <= set(r) for r in rows)


@pytest.mark.slow
def test_released_protocol_smoke_run(tmp_path):
    res = app.execute(experiment, default.get_config("smoke,released"), str(tmp_path / "w"))
    _smoke_keys(res)
    assert res["estimator"]["starts"] == "train_fresh" and res["estimator"]["bounds"] is None
    assert res["estimator"]["budget"]["adam"] == "released"
