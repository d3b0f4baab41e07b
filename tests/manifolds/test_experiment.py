"""The experiment: configs, bad input through the API and the CLI, and (slow) the smoke run end to end."""

import json
import os
import subprocess
import sys

import pytest

from common import app
from manifolds import experiment
from manifolds.configs import default, paper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_configs_validate():
    for cfg in (default.get_config(), default.get_config("smoke"), paper.get_config()):
        experiment.validate(cfg)
    p = paper.get_config()
    assert p.data.name == "cifar10" and max(p.estimator.dims) == 3072 and not p.data.allow_fallback


@pytest.mark.parametrize(
    "key, value, field",
    [
        ("estimator.dims", (), "estimator.dims"),
        ("estimator.dims", (4, 2), "estimator.dims"),
        ("boundary_sets", ((0,),), "boundary_sets"),
        ("boundary_sets", ((1, 1),), "boundary_sets"),
        ("ensemble.members", (1, 16), "ensemble.members"),
        ("estimator.basis", "sparse", "estimator.basis"),
        ("estimator.bounds", (1.0, 0.0), "estimator.bounds"),
        ("train.chunk_steps", 33, "train.chunk_steps"),
        ("over_training.chunks", (1, 99), "over_training.chunks"),
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


def _cli(tmp_path, *overrides):
    cmd = [sys.executable, "-m", "manifolds.main", "--config=manifolds/configs/default.py:smoke"]
    cmd += [f"--workdir={tmp_path / 'w'}", *overrides]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    out = _cli(tmp_path, "--config.estimator.dims=(1,2,100)")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: estimator.dims: d must be <= D=64")
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_cli_start_points_in_target_class_exit_2(tmp_path):
    # 300 unfiltered start points of other labels: some are predicted as the target by the smoke-sized net
    out = _cli(tmp_path, "--config.estimator.filter_starts=False", "--config.estimator.num_starts=300")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "already reach the target" in out.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path):
    wd = tmp_path / "w"
    res = app.execute(experiment, default.get_config("smoke"), str(wd))
    for key in (
        "d_star",
        "d_star_boundary",
        "d_star_by_epoch",
        "d_star_random_labels",
        "d_star_by_width",
        "d_star_by_train_size",
        "d_star_ensemble",
        "robustness",
        "effective_dimension",
        "converged",
        "data_source",
    ):
        assert key in res, key
    assert set(res["d_star"]) == {"0", "1"} and set(res["d_star_boundary"]) == {"1", "2", "3"}
    assert res["data_source"] == "sklearn:digits"
    figs = sorted(os.listdir(wd / "figures"))
    assert figs == [
        "d_star_boundaries.png",
        "d_star_per_class.png",
        "d_star_vs_variables.png",
        "known_answer_budget.png",
    ]
    rows = experiment.report(json.loads((wd / "results.json").read_text()))
    assert all({"name", "value", "paper", "ok"} <= set(r) for r in rows)
