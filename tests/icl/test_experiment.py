"""icl.experiment end to end on the smoke config; config checks; the two M* estimates on known curves."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import app
from icl import estimators, evaluation, experiment, summary, tasks, thresholds, train, transformer
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


@pytest.mark.slow  # 20-60 s on 2 cores; make test-all runs it
def test_smoke_writes_every_documented_key(smoke):
    workdir, res = smoke
    for k in REQUIRED:
        assert k in res, k
    n = len(res["M"])
    assert res["M"] == [2, 8, "inf"]
    for k in REQUIRED[1:8]:
        assert len(res[k]) == n and len(res[k + "_se"]) == n, k
    assert res["num_seeds"] == 2
    for k in ("curves", "early_stop_step", "by_weight_decay", "by_model_size", "dist_ridge_pretrain"):
        assert k in res, k
    assert sorted(res["early_stop_step"]) == ["2", "8", "inf"]
    assert set(res["curves"]) == {"50", "100", "150", "200"}
    assert res["loss_units"] == "noiseless"
    for name in ("loss_vs_M.png", "distance_vs_M.png", "loss_vs_position.png"):
        assert os.path.getsize(os.path.join(workdir, "figures", name)) > 10_000
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["M"][-1] == "inf"
    assert {"closer_to_ridge", "batch_crossing"} <= set(res["threshold_M"])
    rows = experiment.report(res)
    assert all({"name", "value", "paper", "ok"} <= set(r) for r in rows)


@pytest.mark.slow  # 20-60 s on 2 cores; make test-all runs it
def test_smoke_training_loss_falls(smoke):
    workdir, _ = smoke
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    runs = sorted({r["run"] for r in rows})
    assert len(runs) == 2 * 2 * 3  # two batch sizes x two seeds x (2 values of M + inf)
    for run in runs:
        losses = [r["loss"] for r in sorted((r for r in rows if r["run"] == run), key=lambda r: r["step"])]
        assert losses[-1] < losses[0], run


@pytest.mark.slow  # 20-60 s on 2 cores; make test-all runs it
def test_smoke_baselines_are_bayes_optimal_where_they_should_be(smoke):
    _, res = smoke
    for j, m in enumerate(res["M"]):
        assert res["ridge_true"][j] <= res["dmmse_true"][j] + 1e-6  # Ridge: Bayes estimator of T_True
        if m != "inf":
            assert res["dmmse_pretrain"][j] < res["ridge_pretrain"][j]  # dMMSE: Bayes estimator of T_Pretrain


def test_evaluation_ridge_matches_the_closed_form_and_masked_dmmse_matches_the_pool_prefix():
    # Independent references: Ridge by numpy's solve per prompt and position, dMMSE on pool[:M] unmasked.
    cfg = train.TrainConfig(
        model=transformer.ModelConfig(dim=2, num_points=4, num_layers=1, width=8, num_heads=2),
        batch_size=8,
        num_steps=4,
        noise_std=0.5,
        max_tasks=8,
    )
    ev = evaluation.make_evaluate(cfg, 64, 32, 4)
    key = jax.random.key(5)
    hp = {"num_tasks": jnp.float32(3.0), "lr": jnp.float32(1e-3), "weight_decay": jnp.float32(0.0)}
    state = train.init_state(key, hp, cfg)
    out = jax.jit(ev)(state, hp)
    gd = transformer.graphdef(cfg.model)
    empty = jnp.zeros((1, 2))
    pool = train.run_pool(state["key"], cfg)
    ridge_err, dmmse_err = np.zeros(4), np.zeros(4)
    for c in range(2):
        b = tasks.sample_batch(
            jax.random.fold_in(jax.random.key(evaluation.EVAL_TRUE_SEED), c), empty, jnp.inf, 32, 4, 0.5
        )
        xs, ys, target = np.asarray(b.xs, float), np.asarray(b.ys, float), np.asarray(tasks.noiseless_targets(b))
        for i in range(32):
            for k in range(4):
                x, y = xs[i, :k], ys[i, :k]
                w = np.linalg.solve(x.T @ x + 0.25 * np.eye(2), x.T @ y)
                ridge_err[k] += (xs[i, k] @ w - target[i, k]) ** 2
        dm = estimators.dmmse_predictions(b.xs, b.ys, pool[:3], 0.25)
        dmmse_err += np.sum((np.asarray(dm) - target) ** 2, 0)
    np.testing.assert_allclose(out["ridge_true"], ridge_err / (64 * 2), rtol=1e-4)
    np.testing.assert_allclose(out["dmmse_true"], dmmse_err / (64 * 2), rtol=1e-4)
    assert np.all(np.asarray(out["dmmse_true"])[1:] > np.asarray(out["ridge_true"])[1:])  # 3 tasks: not Ridge
    del gd


def _fake_grid_results():
    g = experiment.sweep.grid([0, 1], num_tasks=[2.0, 8.0, math.inf], lr=[1e-3, 3e-3], weight_decay=[0.0, 0.1])
    # every value encodes its run: 100 * seed + 10 * log2(M) (inf -> 9) + 1000 * lr + 7 * decay, at every position
    code = np.array(
        [
            100 * s + 10 * (9 if math.isinf(m) else math.log2(m)) + 1000 * lr + 7 * wd
            for s, m, lr, wd in zip(
                g.seeds, g.hparams["num_tasks"], g.hparams["lr"], g.hparams["weight_decay"], strict=True
            )
        ]
    )
    per_run = {k: np.repeat(code[:, None], 3, 1) for k in evaluation.KEYS}
    return g, per_run, code


def test_summary_table_picks_each_run_by_seed_m_lr_and_decay():
    g, per_run, _ = _fake_grid_results()
    tab = summary.table(g, per_run, weight_decay=0.1, lrs=[1e-3, 3e-3, 1e-3])
    want = np.array([[10 + 1 + 0.7, 30 + 3 + 0.7, 90 + 1 + 0.7], [110 + 1 + 0.7, 130 + 3 + 0.7, 190 + 1 + 0.7]])
    np.testing.assert_allclose(tab["loss_true_per_seed"], want, rtol=1e-5)
    np.testing.assert_allclose(tab["loss_true"], want.mean(0), rtol=1e-5)
    np.testing.assert_allclose(tab["loss_true_se"], [50.0] * 3, rtol=1e-5)  # std(ddof=1) = 70.7 / sqrt(2)
    assert tab["num_seeds"] == 2


def test_best_lr_per_m_and_early_stop_step_from_the_curves():
    g, _, code = _fake_grid_results()
    curves = np.ones((g.size, 3, 2))
    for r in range(g.size):
        m, lr = g.hparams["num_tasks"][r], g.hparams["lr"][r]
        good = (m == 8.0) == (lr > 2e-3)  # M = 8 prefers 3e-3, the others 1e-3
        curves[r, :, 0] = [3.0, 1.0, 2.0] if good else [3.0, 2.5, 2.4]
    assert summary.best_lrs(g, curves, 0.0) == pytest.approx([1e-3, 3e-3, 1e-3])
    out, stop = summary.curves(g, curves, [10, 20, 30], 0.0, summary.best_lrs(g, curves, 0.0))
    assert stop == {"2": 20, "8": 20, "inf": 20}
    assert out["30"]["loss_true"] == pytest.approx([2.0, 2.0, 2.0])


@pytest.mark.parametrize(
    "key,value",
    [
        ("sweep.batch_sizes", (32, 32)),
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
    assert out["log2_M_se"] == pytest.approx(0.0) and out["num_seeds"] == 2
    assert thresholds.batch_crossing(x, small, small - 0.1)["log2_M"] is None  # never crosses


def test_batch_crossing_takes_the_last_of_several_crossings():
    x = np.arange(1, 7, dtype=float)
    diff = np.array([0.2, -0.1, 0.1, 0.3, -0.1, -0.2])  # + - + + - -: crossings at 1.67 and 4.75
    out = thresholds.batch_crossing(x, np.zeros((1, 6)), diff[None])
    assert out["log2_M"] == pytest.approx(4.75) and out["interval_log2"] == [4.0, 5.0]


def test_closer_to_ridge_from_distances_with_multiple_crossings_and_standard_error():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    dd = np.ones((3, 5))
    # log ratio: seed 0 crosses once between 2 and 3; seed 1 dips below at 2, returns above at 3, stays below from
    # 4 (the last crossing counts); seed 2 is never closer at the largest M (not bracketed)
    ratio = np.array([[4.0, 2.0, 0.5, 0.25, 0.25], [4.0, 0.5, 2.0, 0.5, 0.25], [4.0, 2.0, 0.5, 0.5, 2.0]])
    out = thresholds.closer_to_ridge(x, ratio * dd, dd)
    assert out["per_seed_log2"][0] == pytest.approx(2.5)
    assert out["per_seed_log2"][1] == pytest.approx(3.5)
    assert out["per_seed_log2"][2] is None
    assert out["num_seeds"] == 2 and out["log2_M_mean"] == pytest.approx(3.0)
    assert out["log2_M_se"] == pytest.approx(0.5)  # std(ddof=1) of (2.5, 3.5) / sqrt(2)
    already = thresholds.closer_to_ridge(x, 0.5 * dd, dd)  # closer at every M: M* below the sweep
    assert already["log2_M_mean"] is None and already["num_seeds"] == 0


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
    [(default, v) for v in (None, "smoke", "dims", "crossing", "regularisation")]
    + [(paper, v) for v in (None, "small", "dims", "medium", "medium_dims")],
)
def test_every_shipped_config_is_valid(module, variant):
    c = module.get_config(variant)
    experiment.validate(c)
    assert c.train.num_steps % c.train.chunk_steps == 0


def _measured_like(loss_true_256):
    return {
        "M": [2, 16, 256, "inf"],
        "num_seeds": 3,
        "loss_pretrain": [0.05, 0.33, 0.45, 0.46],
        "dmmse_pretrain": [0.046, 0.23, 0.34, 0.38],
        "loss_true": [2.0, 0.62, loss_true_256, 0.45],
        "loss_true_se": [0.2, 0.02, 0.01, 0.01],
        "ridge_true": [0.394] * 4,
        "dmmse_true": [1.79, 0.93, 0.51, 0.394],
        "dist_ridge": [1.6, 0.2, 0.05, 0.05],
        "dist_dmmse": [0.16, 0.3, 0.13, 0.05],
        "threshold_M": {
            "closer_to_ridge": {
                "log2_M": 3.5,
                "per_seed_log2": [3, 4, 3.5],
                "log2_M_mean": 3.5,
                "log2_M_se": 0.3,
                "num_seeds": 3,
            }
        },
        "report_thresholds": {"ridge_ratio_max": 1.15, "flat_num_se": 2.0, "log2_M_star_range": (2.0, 8.0)},
    }


def test_report_checks_the_non_bayesian_claim_and_flatness_above_m_star():
    ok = {r["name"].split(":")[0]: r["ok"] for r in experiment.report(_measured_like(0.45))}
    assert ok["loss_true / Ridge at M=256"] is True and ok["loss_true / Ridge at M=inf"] is True
    assert ok["T_True loss flat above M*"] is True
    assert ok["non-Bayesian above M*"] is True
    bad = _measured_like(0.70)  # worse at 2^8 than at M* = 2^4: not flat, not Ridge, and no longer beats dMMSE
    ok = {r["name"].split(":")[0]: r["ok"] for r in experiment.report(bad)}
    assert ok["T_True loss flat above M*"] is False
    assert ok["non-Bayesian above M*"] is False
    assert ok["loss_true / Ridge at M=256"] is False


def test_report_thresholds_come_from_the_config():
    res = _measured_like(0.45)
    res["report_thresholds"]["ridge_ratio_max"] = 1.1
    ok = {r["name"]: r["ok"] for r in experiment.report(res)}
    assert ok["loss_true / Ridge at M=256"] is False  # 1.142 passes 1.15 but not 1.1


def test_report_of_an_infinite_only_sweep_does_not_crash():
    res = {k: [v[-1]] if isinstance(v, list) else v for k, v in _measured_like(0.45).items()}
    res["threshold_M"] = {"closer_to_ridge": thresholds.closer_to_ridge([], np.zeros((3, 0)), np.zeros((3, 0)))}
    rows = experiment.report(res)
    assert [r["name"] for r in rows] == ["loss_true / Ridge at M=inf"]
