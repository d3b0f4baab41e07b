"""icl.experiment end to end on the smoke config; config checks; the two M* estimates on known curves."""

import json
import math
import os

import numpy as np
import pytest

from common import app
from icl import experiment, thresholds
from icl.configs import default, paper

REQUIRED = [
    "M",
    "loss_true",
    "loss_pretrain",
    "ridge_true",
    "dmmse_true",
    "dmmse_pretrain",
    "dist_ridge",
    "dist_dmmse",
    "threshold_M",
    "loss_units",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("icl_smoke"))
    return workdir, app.execute(experiment, default.get_config("smoke"), workdir)


def test_smoke_writes_every_documented_key(smoke):
    workdir, res = smoke
    for k in REQUIRED:
        assert k in res, k
    n = len(res["M"])
    assert res["M"] == [2, 8, "inf"]
    for k in REQUIRED[1:8]:
        assert len(res[k]) == n and len(res[k + "_std"]) == n, k
    assert res["loss_units"] == "noiseless"
    for name in ("loss_vs_M.png", "distance_vs_M.png", "loss_vs_position.png"):
        assert os.path.getsize(os.path.join(workdir, "figures", name)) > 10_000
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["M"][-1] == "inf"
    assert {"closer_to_ridge", "batch_crossing"} <= set(res["threshold_M"])
    rows = experiment.report(res)
    assert all({"name", "value", "paper", "ok"} <= set(r) for r in rows)


def test_smoke_training_loss_falls(smoke):
    workdir, _ = smoke
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    runs = sorted({r["run"] for r in rows})
    assert len(runs) == 2 * 3  # two batch sizes x (2 values of M + inf)
    for run in runs:
        losses = [r["loss"] for r in sorted((r for r in rows if r["run"] == run), key=lambda r: r["step"])]
        assert losses[-1] < losses[0], run


def test_smoke_baselines_are_bayes_optimal_where_they_should_be(smoke):
    _, res = smoke
    for j, m in enumerate(res["M"]):
        assert res["ridge_true"][j] <= res["dmmse_true"][j] + 1e-6  # Ridge: Bayes estimator of T_True
        if m != "inf":
            assert res["dmmse_pretrain"][j] < res["ridge_pretrain"][j]  # dMMSE: Bayes estimator of T_Pretrain
    inf = res["M"].index("inf")
    assert res["dmmse_true"][inf] == res["ridge_true"][inf]  # the M -> inf limit of dMMSE is Ridge
    assert res["dist_ridge"][inf] == pytest.approx(res["dist_dmmse"][inf])


@pytest.mark.parametrize(
    "key,value",
    [
        ("sweep.batch_sizes", (64, 32)),
        ("sweep.log2_num_tasks", (3, 1)),
        ("task.noise_var", 0.0),
        ("train.chunk_steps", 7),
        ("model.num_heads", 3),
        ("sweep.lrs", (-1e-3,)),
    ],
)
def test_bad_config_names_the_field(key, value, tmp_path):
    c = default.get_config("smoke")
    section, name = key.split(".")
    c[section][name] = value
    with pytest.raises(app.ConfigError) as err:
        app.execute(experiment, c, str(tmp_path / "w"))
    assert err.value.key == key
    assert not (tmp_path / "w").exists()


def test_batch_crossing_recovers_a_known_crossing():
    x = np.arange(1, 9, dtype=float)
    small = np.ones((2, 8))
    large = small + 0.1 * (4.5 - x)  # larger batch further from Ridge below 2^4.5, closer above
    out = thresholds.batch_crossing(x, small, large)
    assert out["log2_M"] == pytest.approx(4.5)
    assert out["interval_log2"] == [4.0, 5.0]
    assert out["log2_M_std"] == pytest.approx(0.0)
    assert thresholds.batch_crossing(x, small, small - 0.1)["log2_M"] is None  # never crosses


def test_closer_to_ridge_per_seed():
    x = [1.0, 2.0, 3.0, 4.0]
    ridge = np.full((2, 4), 0.4)
    dmmse = np.array([[2.0, 1.5, 1.0, 0.6]] * 2)
    loss = np.array([[2.0, 1.4, 0.5, 0.45], [2.0, 1.5, 1.0, 0.45]])
    out = thresholds.closer_to_ridge(x, loss, ridge, dmmse)
    assert out["per_seed_log2"] == [3.0, 4.0]
    assert out["log2_M_mean"] == pytest.approx(3.5) and out["log2_M_std"] == pytest.approx(0.5)
    assert math.isclose(2 ** out["log2_M_mean"], 2**3.5)


@pytest.mark.slow
def test_resume_from_a_mid_run_checkpoint_is_bit_exact(tmp_path):
    import shutil

    workdir = str(tmp_path / "w")
    first = app.execute(experiment, default.get_config("smoke"), workdir)
    os.unlink(os.path.join(workdir, "results.json"))
    shutil.rmtree(os.path.join(workdir, "checkpoints", "B32", "200"))  # as if killed after step 100 of batch 32
    second = app.execute(experiment, default.get_config("smoke"), workdir)
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "B32", "200"))  # steps 100-200 were trained again
    first.pop("runtime_seconds")
    second.pop("runtime_seconds")
    assert first == second


@pytest.mark.parametrize(
    "module, variant",
    [(default, None), (default, "smoke"), (default, "dims"), (default, "ridge")]
    + [(paper, v) for v in (None, "small", "dims", "medium", "medium_dims")],
)
def test_every_shipped_config_is_valid(module, variant):
    c = module.get_config(variant)
    experiment.validate(c)
    assert c.train.num_steps % c.train.chunk_steps == 0


def test_report_flags_a_model_that_stays_above_ridge():
    # The measured CPU default pattern: flat in M and nearer Ridge than dMMSE, but 1.36x Ridge's loss.
    res = {
        "M": [2, 256, "inf"],
        "loss_pretrain": [0.05, 0.5, 0.5],
        "dmmse_pretrain": [0.046, 0.34, 0.38],
        "loss_true": [2.0, 0.536, 0.543],
        "ridge_true": [0.394] * 3,
        "dmmse_true": [1.79, 0.51, 0.394],
        "dist_ridge": [1.6, 0.142, 0.148],
        "dist_dmmse": [0.16, 0.18, 0.148],
        "threshold_M": {"closer_to_ridge": {"log2_M_mean": 3.0, "log2_M_std": 0.0}},
    }
    ok = {r["name"]: r["ok"] for r in experiment.report(res)}
    assert ok["loss_true / Ridge at M=256"] is False
    assert ok["Delta(model, Ridge) / Delta(model, dMMSE) at M=256"] is True
    assert ok["loss_true at M=256 / loss_true at M=inf"] is True
    assert ok["loss_pretrain / dMMSE at M=2"] is True
