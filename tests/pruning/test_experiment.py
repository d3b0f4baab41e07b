"""Experiment wiring: configs, bad input, summaries and report on known inputs; smoke end to end and SIGKILL resume
(slow)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from common import app
from pruning import experiment, imp, summary
from pruning.configs import default, paper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("module, variant", [(default, None), (default, "smoke"), (paper, None)])
def test_every_shipped_config_is_valid(module, variant):
    c = module.get_config(variant)
    experiment.validate(c)
    assert c.train.steps % c.train.chunk_steps == 0


@pytest.mark.parametrize(
    "key, value",
    [
        ("imp.fraction", 1.0),
        ("imp.num_levels", 0),
        ("train.rewind_step", 600),
        ("train.chunk_steps", 250),
        ("flatness.fractions", (0.5, 0.2)),
        ("flatness.levels", (20,)),
        ("imp.runs", ("no_rewind", "twin")),
        ("net.arch", "vgg"),
        ("train.lr_drops", (400, 100)),
        ("flatness.epsilons", (-0.1, 0.2)),
        ("flatness.nonpositive", "clip"),
        ("net.strides", (1, 2)),
        ("instability.rewind_steps", (0, 900)),
    ],
)
def test_bad_config_names_the_field(key, value):
    c = default.get_config()
    section, name = key.split(".")
    c[section][name] = value
    with pytest.raises(app.ConfigError) as e:
        experiment.validate(c)
    assert e.value.key == key


def test_cli_rejects_an_empty_grid_with_exit_2(tmp_path):
    work = tmp_path / "w"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pruning.main",
            "--config=pruning/configs/default.py:smoke",
            f"--workdir={work}",
            "--config.flatness.fractions=()",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "flatness.fractions" in proc.stderr.strip().splitlines()[-1]
    assert not work.exists()


def _known():
    """Two seeds of imp (k = 1), no_rewind (k = 0), the shuffled-mask control and a twin, 4 levels."""
    runs = imp.make_runs(
        [0, 1], ["imp", "no_rewind", "random_pruning", "twin"], lr=0.1, weight_decay=0, fraction=0.2, rewind_step=1
    )
    hist = {k: np.zeros((len(runs), 4)) for k in imp.HIST_KEYS}
    hist["density"][:] = 0.8 ** np.arange(4)
    err = {
        "imp": [0.10, 0.10, 0.105, 0.2],
        "no_rewind": [0.10, 0.13, 0.3, 0.5],
        "random_pruning": [0.10, 0.15, 0.3, 0.5],
        "twin": [0.1, 0.1, 0.1, 0.1],
    }
    bar = {"imp": [np.nan, 0.0, 0.002, 0.08], "no_rewind": [np.nan, 0.05, 0.004, 0.2]}
    for i, r in enumerate(runs):
        hist["test_error"][i] = err[r.name]
        hist["barrier_error"][i] = bar.get(r.name, [np.nan, 0, 0, 0])
    hist["rank_overlap"][:] = np.nan  # no next level after the last: a NaN column must not warn
    return runs, hist


def test_summaries_on_known_histories():
    runs, hist = _known()
    res = summary.summarize(runs, hist, tolerance=0.01, barrier_tol=0.01)
    assert res["imp"]["matching"] == [True, True, True, False]
    assert res["imp"]["lowest_matching_density"] == pytest.approx(0.64)
    assert res["ablations"]["random_pruning"]["lowest_matching_density"] is None
    assert res["dense_test_error"]["mean"] == pytest.approx(0.10)
    assert "twin_barrier_error" in res["stability"] and "twin" not in res["ablations"]
    assert res["rewind"] == {"1": pytest.approx(0.64), "0": None}
    # imp: levels 1, 2 match and are flat, level 3 neither (2 seeds); no_rewind: level 1 not matching with a
    # barrier, level 2 not matching but flat, level 3 not matching with a barrier
    assert res["lmc_confusion"]["1"] == {"match_flat": 4, "match_barrier": 0, "nomatch_flat": 0, "nomatch_barrier": 2}
    assert res["lmc_confusion"]["0"] == {"match_flat": 0, "match_barrier": 0, "nomatch_flat": 2, "nomatch_barrier": 4}
    assert summary.measured_max_fraction([0.1, 0.2, 0.3], np.array([True, True, False])) == 0.2
    assert summary.measured_max_fraction([0.1, 0.2, 0.3], np.array([False, True, True])) == 0.0
    res["max_prune_fraction"] = {}
    rows = {r["name"]: r for r in experiment.report(res)}
    agree = next(r for n, r in rows.items() if n.startswith("levels where"))
    assert agree["value"] == pytest.approx(10 / 12, abs=1e-3) and agree["ok"]
    deeper = next(r for n, r in rows.items() if n.startswith("lowest matching density, k = 0"))
    assert deeper["ok"] is True
    rand = next(r for n, r in rows.items() if n.startswith("random_pruning"))
    assert rand["ok"] is True
    res["ablations"]["random_pruning"]["test_error"]["mean"] = [0.1, 0.09, 0.09, 0.09]
    rand = next(r for r in experiment.report(res) if r["name"].startswith("random_pruning"))
    assert rand["ok"] is False


def test_mean_std_of_an_all_nan_column_is_nan_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = summary.mean_std(np.array([[np.nan, 1.0], [np.nan, 3.0]]))
    assert np.isnan(out["mean"][0]) and out["mean"][1] == 2.0 and out["std"][1] == 1.0


@pytest.mark.slow
def test_smoke_end_to_end_writes_every_documented_key(tmp_path):
    res = app.execute(experiment, default.get_config("smoke"), str(tmp_path / "w"))
    for key in ("imp", "ablations", "stability", "max_prune_fraction", "data_source", "lmc_confusion", "rewind"):
        assert key in res
    for key in ("density", "test_error", "barrier_loss", "barrier_error", "matching"):
        assert key in res["imp"] and key in res["ablations"]["random_pruning"]
    assert set(res["max_prune_fraction"]["level_2"]) >= {"random", "magnitude", "quadratic_check"}
    for kind in ("random", "magnitude"):
        assert {"predicted", "measured"} <= set(res["max_prune_fraction"]["level_2"][kind])
    assert set(res["lmc_confusion"]) == {"0", "5"} and set(res["rewind"]) == {"0", "5"}
    assert res["instability"]["k"] == [0, 5]
    figs = os.listdir(tmp_path / "w" / "figures")
    assert {"test_error_vs_density.png", "barrier_vs_density.png", "max_prune_fraction.png"} <= set(figs)
    # training happened: the dense network is far better than chance
    assert res["dense_test_error"]["mean"] < 0.5


@pytest.mark.slow
def test_sigkill_mid_level_then_resume_is_bit_exact(tmp_path):
    def cmd(work):
        return [
            sys.executable,
            "-m",
            "pruning.main",
            "--config=pruning/configs/default.py:smoke",
            f"--workdir={work}",
            "--config.flatness.levels=()",
        ]

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(cmd(ref), cwd=ROOT, check=True, capture_output=True, timeout=1800)
    proc = subprocess.Popen(cmd(killed), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoints" / "imp"
    deadline = time.time() + 1500
    # kill once a checkpoint in the middle of level 1 exists (smoke: 40 steps per level, chunks of 20)
    while time.time() < deadline and not (ckpt / "60").is_dir():
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()
    subprocess.run(cmd(killed), cwd=ROOT, check=True, capture_output=True, timeout=1800)
    a = json.loads((ref / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    a.pop("runtime_seconds")
    b.pop("runtime_seconds")
    assert a == b
