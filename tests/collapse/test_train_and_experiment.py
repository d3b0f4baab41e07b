"""Training loop (chunking, vmapping, label noise) and the experiment's config checks and smoke run."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse import experiment, groups, simulations, summary, train
from collapse.configs import default
from common import app, sweep

TASK = train.Task("mlp", (8,), 3, (2, 2, 1), batch_size=4)


def _hp(**kw):
    hp = {"lr": 0.1, "lr_late": 0.01, "switch": 30.0, "weight_decay": 1e-3, "label_noise": 0.2}
    hp.update(kw)
    return {k: jnp.float32(v) for k, v in hp.items()}


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(n, 2, 2, 1)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, n), jnp.int32)
    return x, y


def test_chunks_compose_exactly():
    hp, xy = _hp(), _data()
    s0 = train.init_state(TASK, jax.random.key(0), hp)
    step = jax.jit(lambda s, t0, n: train.run_steps(TASK, s, hp, xy, t0, n), static_argnums=2)
    whole, _ = step(s0, jnp.asarray(0), 60)
    half, _ = step(s0, jnp.asarray(0), 30)
    half, _ = step(half, jnp.asarray(30), 30)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(half), strict=True):
        np.testing.assert_array_equal(a, b)


def test_vmapped_sweep_equals_single_runs():
    xy = _data()
    rows = [_hp(lr=0.05), _hp(lr=0.2, label_noise=0.0)]
    hp = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    keys = jax.vmap(jax.random.key)(jnp.arange(2, dtype=jnp.uint32))
    fn = sweep.vmapped(lambda k, h, d: train.train(TASK, k, h, d, 40), in_axes=(0, 0, None))
    states, _ = fn(keys, hp, (*xy, *xy))
    for r in range(2):
        single, _ = jax.jit(lambda k, h: train.train(TASK, k, h, (*xy, *xy), 40))(keys[r], rows[r])
        np.testing.assert_allclose(states["params"][0]["w"][r], single["params"][0]["w"], rtol=1e-5, atol=1e-6)


def test_expected_cross_entropy_is_the_mean_over_label_noise_draws():
    """The full-batch control's loss: the cross-entropy averaged over noisy_labels' draws (Monte Carlo over 4000
    draws within 1%), and plain cross-entropy at label noise 0."""
    logits = jax.random.normal(jax.random.key(0), (50, 10)) * 2.0
    labels = jax.random.randint(jax.random.key(1), (50,), 0, 10)
    exact = float(train.expected_cross_entropy(logits, labels, 0.3, 10))
    draws = jax.vmap(lambda k: train.cross_entropy(logits, train.noisy_labels(k, labels, 0.3, 10)))(
        jax.random.split(jax.random.key(2), 4000)
    )
    assert float(jnp.mean(draws)) == pytest.approx(exact, rel=0.01)
    clean = float(train.cross_entropy(logits, labels))
    np.testing.assert_allclose(float(train.expected_cross_entropy(logits, labels, 0.0, 10)), clean, rtol=1e-6)


def test_full_batch_control_keeps_the_label_noise_as_soft_targets():
    """_gd_row keeps the setting's label noise (the control runs GD on the same expected loss)."""
    row = {"seed": 0, "lr": 0.05, "lr_late": 0.05, "switch": 20001.0, "weight_decay": 5e-4, "label_noise": 0.2}
    assert groups.gd_row(row, 5000)["label_noise"] == 0.2
    big = train.Task("mlp", (8,), 3, (2, 2, 1), batch_size=4, full_batch=True)
    xy = _data()
    outs = []
    for ln in (0.0, 0.5):
        hp = _hp(label_noise=ln, weight_decay=0.0)
        st, _ = train.run_steps(big, train.init_state(big, jax.random.key(0), hp), hp, xy, jnp.asarray(0), 1)
        outs.append(st["params"][0]["w"])
    assert not np.allclose(outs[0], outs[1])  # the soft targets change the full-batch gradient


def test_label_noise_rate_and_schedule_switch():
    labels = jnp.zeros((20000,), jnp.int32)
    noisy = train.noisy_labels(jax.random.key(0), labels, 0.3, 10)
    # a flipped label lands on class 0 with prob 1/10: P(changed) = 0.3 * 0.9
    assert float(jnp.mean(noisy != 0)) == pytest.approx(0.27, abs=0.01)
    # lr switches from lr to lr_late at step `switch`: zero lr_late freezes the parameters afterwards
    hp, xy = _hp(lr_late=0.0, switch=10.0, weight_decay=0.0), _data()
    s0 = train.init_state(TASK, jax.random.key(1), hp)
    a, _ = train.run_steps(TASK, s0, hp, xy, jnp.asarray(0), 10)
    b, _ = train.run_steps(TASK, a, hp, xy, jnp.asarray(10), 10)
    # (optax.sgd's update is -lr * momentum trace, so lr 0 means no motion at all)
    np.testing.assert_array_equal(a["params"][0]["w"], b["params"][0]["w"])


@pytest.mark.parametrize(
    "field,value",
    [
        ("train.chunk_steps", 7),
        ("sweep.lrs", (0.1, -0.1)),
        ("sweep.label_noises", (1.5,)),
        ("net.identical_threshold", 1.5),
        ("net.act", "sigmoid"),
        ("large_lr.durations", (10**9,)),
    ],
)
def test_validate_names_the_field(field, value):
    c = default.get_config("smoke")
    section, key = field.split(".")
    c[section][key] = value
    with pytest.raises(app.ConfigError) as e:
        experiment.validate(c)
    assert field in str(e.value)


def test_default_and_paper_configs_validate():
    from collapse.configs import paper

    experiment.validate(default.get_config())
    experiment.validate(default.get_config("smoke"))
    experiment.validate(paper.get_config())


def test_settings_share_duplicate_runs():
    c = default.get_config()
    c.sweep.lrs = (0.02, 0.05, 0.2)
    rows, settings = groups.main_settings(c)
    # lr=0.02 with weight decay, no noise is also the large-lr run with no high-lr phase
    assert settings["large_lr=0"] == settings["lr=0.02"]
    assert len(rows) == len({tuple(sorted(r.items())) for r in rows})
    assert all(len(v) == c.train.num_seeds for v in settings.values())


def test_results_record_the_data_source(monkeypatch, tmp_path):
    # The parts are stubbed: this checks that run() carries the source the data loader reported into results.
    nets = {
        "fraction": {},
        "parts": {},
        "test_acc": {},
        "layer_names": {"mlp": []},
        "gd_steps": 1,
        "gd_fraction": {},
        "sgd_fraction_at_gd_steps": {},
        "gd_test_acc": {},
        "gd_label_noise": {},
        "large_lr": {},
        "large_lr_fixed_budget": {},
        "source": "sklearn:digits (fallback for tfds:x)",
    }
    monkeypatch.setattr(experiment, "trained_networks", lambda *a: nets)
    monkeypatch.setattr(simulations, "attractivity", lambda *a: {"quartic": {}})
    monkeypatch.setattr(simulations, "quartic_illustration", lambda *a: {})
    monkeypatch.setattr(simulations, "teacher_student", lambda *a: {})
    monkeypatch.setattr(experiment.figures, "draw_all", lambda *a, **k: None)
    c = default.get_config("smoke")
    res = experiment.run(c, str(tmp_path))
    assert res["data_source"] == "sklearn:digits (fallback for tfds:x)"


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path):
    c = default.get_config("smoke")
    workdir = str(tmp_path / "run")
    res = app.execute(experiment, c, workdir)
    assert set(res) - {"runtime_seconds"} == {
        "sde",
        "independent_fraction",
        "vanishing_fraction",
        "merged_fraction",
        "test_acc",
        "gd_control",
        "noise_scale",
        "teacher_student",
        "large_lr",
        "large_lr_fixed_budget",
        "independent_fraction_layers",
        "data_source",
    }
    assert res["data_source"] == "sklearn:digits"
    assert res["independent_fraction_layers"] == {"mlp": ["fc1", "fc2"], "cnn": ["conv1", "conv2"]}
    assert set(res["sde"]) == {"quartic", "single_neuron", "hidden_neuron", "merging"}
    assert res["sde"]["quartic"]["predicted"] == pytest.approx(np.sqrt(3))
    assert res["sde"]["merging"]["kind"] == "identical"
    assert set(res["teacher_student"]) == {"0", "20"}
    assert set(res["large_lr"]) == {"100"}  # the fraction at the drop needs a checkpoint there
    for k, v in res["independent_fraction"].items():
        assert len(v) == 2 and all(0 < f <= 1 for f in v)
        parts = np.asarray(v) + res["vanishing_fraction"][k] + res["merged_fraction"][k]
        np.testing.assert_allclose(parts, 1.0)
    # The smoke's noisy setting really collapses (a neuron in four vanishes from fc1); its noise-free control,
    # full-batch GD with the same lr, weight decay and steps, does not.
    gd = res["gd_control"]
    sgd_fc1 = gd["sgd_independent_fraction"]["mlp label_noise=0.3"][0]
    gd_fc1 = gd["gd_independent_fraction"]["mlp label_noise=0.3"][0]
    assert sgd_fc1 < 0.85
    assert gd_fc1 >= 0.9
    for name in (
        "fig1_quartic",
        "attractivity",
        "fig3_merging",
        "fig4_noise_scale",
        "fig4_independent_fraction",
        "fig4_independent_fraction_over_training",
        "fig5_teacher_student",
        "fig6_large_lr",
    ):
        assert os.path.exists(os.path.join(workdir, "figures", f"{name}.png"))
    rows = experiment.report(res)
    assert any("SGD vs full-batch GD" in r["name"] and r["ok"] for r in rows)
    ns = res["noise_scale"]
    assert [p["batch"] for p in ns["batch_axis"]["points"]] == [32, 8]  # increasing lr / B
    assert len(ns["lr_axis"]["points"][0]["sgd"]) == 2 and len(ns["lr_axis"]["points"][0]["gd"]) == 1
    assert sum("noise scale" in r["name"] for r in rows) == 4


@pytest.mark.slow  # 20-60 s on 2 cores; make test-all runs it
def test_runs_in_slices_equal_one_call(tmp_path):
    from common import metrics

    c = default.get_config("smoke")
    c.train.num_steps, c.train.chunk_steps = 40, 20
    x, y = (np.asarray(a) for a in _data(n=30))
    arrays = (x, y, x, y)
    task = train.Task("mlp", (6,), 3, (2, 2, 1), batch_size=4)
    rows = [{"seed": i, **{k: float(v) for k, v in _hp(lr=0.05 * (i + 1)).items()}} for i in range(3)]
    out = []
    for per_call in (0, 2):
        c.train.max_runs_per_call = per_call
        with metrics.MetricWriter(str(tmp_path / f"m{per_call}.jsonl")) as w:
            g = groups.Group("g", "mlp", rows, {}, 4, (6,), 40)
            out.append(groups.train_group(g, task, arrays, c, str(tmp_path / f"w{per_call}"), w))
    for a, b in zip(jax.tree.leaves(out[0]["state"]), jax.tree.leaves(out[1]["state"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out[0]["parts"], out[1]["parts"])
    assert sorted(out[0]["history"]) == [20, 40]


# ------------------------------------------------------------------------------------------------------------
# the training step and the noise-free control


def test_full_batch_step_is_gradient_descent_on_the_expected_loss_with_weight_decay():
    """One full-batch step from a fresh state equals params - lr (grad of the expected cross-entropy over the whole
    training set + wd params), computed here with jax.grad on the model directly (the momentum trace starts at 0)."""
    task = train.Task("mlp", (8,), 3, (2, 2, 1), batch_size=4, full_batch=True)
    x, y = _data()
    hp = _hp(lr=0.3, weight_decay=0.01, label_noise=0.2, switch=100.0)
    s0 = train.init_state(task, jax.random.key(3), hp)
    s1, _ = train.run_steps(task, s0, hp, (x, y), jnp.asarray(0), 1)

    def loss(p):
        logits = task.apply(p, x)
        soft = 0.8 * jax.nn.one_hot(y, 3) + 0.2 / 3
        return -jnp.mean(jnp.sum(soft * jax.nn.log_softmax(logits), axis=-1))

    g = jax.grad(loss)(s0["params"])
    want = jax.tree.map(lambda p, d: p - 0.3 * (d + 0.01 * p), s0["params"], g)
    for a, b in zip(jax.tree.leaves(s1["params"]), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_minibatch_update_is_unbiased_so_batch_size_changes_only_the_noise():
    """The batch axis of the noise sweep rests on this: at a fixed lr, the expected first SGD update of every batch
    size equals the full-batch update (minibatches drawn uniformly with replacement); its variance falls as 1/B."""
    x, y = _data(n=24)
    hp = _hp(lr=0.1, weight_decay=0.0, label_noise=0.0, switch=100.0)
    full = train.Task("mlp", (8,), 3, (2, 2, 1), batch_size=4, full_batch=True)
    s0 = train.init_state(full, jax.random.key(5), hp)
    target, _ = train.run_steps(full, s0, hp, (x, y), jnp.asarray(0), 1)
    target = np.asarray(target["params"][0]["w"] - s0["params"][0]["w"])
    variances = []
    for b in (2, 8):
        task = dataclasses.replace(full, batch_size=b, full_batch=False)

        def step(k, task=task):
            st = dict(s0, key=jax.random.key_data(k))
            out, _ = train.run_steps(task, st, hp, (x, y), jnp.asarray(0), 1)
            return out["params"][0]["w"] - s0["params"][0]["w"]

        d = np.asarray(jax.jit(jax.vmap(step))(jax.random.split(jax.random.key(6), 4000)))
        se = d.std(axis=0) / np.sqrt(len(d))
        assert np.all(np.abs(d.mean(axis=0) - target) < 5 * se + 1e-7)
        variances.append(d.var(axis=0).sum())
    assert variances[0] / variances[1] == pytest.approx(4.0, rel=0.15)  # variance ~ 1/B (with replacement)


# ------------------------------------------------------------------------------------------------------------
# the noise-scale sweep: groups, summary, report rule


def test_noise_groups_cross_at_a_shared_point_and_pair_each_lr_with_its_control():
    c = default.get_config()
    c.noise.lrs, c.noise.batch_axis_lr, c.noise.lr_axis_batch, c.noise.batch_sizes = (0.05, 0.1, 0.2), 0.2, 8, (8, 16)
    c.noise.label_noise, c.noise.gd_num_seeds = 0.1, 2
    gs = groups.noise_groups(c)
    sgd = {k: (g, idx) for g in gs if not g.full_batch for k, idx in g.settings.items()}
    assert set(sgd) == {"lr=0.05 batch=8", "lr=0.1 batch=8", "lr=0.2 batch=8", "lr=0.2 batch=16"}
    for name, (g, idx) in sgd.items():
        assert g.batch_size == int(name.split("batch=")[1]) and g.num_steps == c.noise.num_steps
        assert [g.rows[i]["seed"] for i in idx] == list(range(c.noise.num_seeds))
        assert all(g.rows[i]["weight_decay"] == c.noise.weight_decay for i in idx)
        assert all(g.rows[i]["label_noise"] == c.noise.label_noise for i in idx)
        assert all(g.rows[i]["switch"] > c.noise.num_steps for i in idx)
    (gd,) = [g for g in gs if g.full_batch]
    assert gd.num_steps == c.noise.num_steps and set(gd.settings) == {"lr=0.05", "lr=0.1", "lr=0.2"}
    for lr in (0.05, 0.1, 0.2):
        js = gd.settings[f"lr={lr:g}"]
        g, idx = sgd[f"lr={lr:g} batch=8"]
        # the same runs but for the noise: same seeds (initial networks), lr, weight decay and label noise (the
        # control on its expected loss)
        assert [gd.rows[j] for j in js] == [g.rows[i] for i in idx[:2]]


def _point(sgd, gd, lr=0.1, batch=8, acc=0.95):
    sgd, gd = np.asarray(sgd, float), np.asarray(gd, float)
    return {"lr": lr, "batch": batch, "noise_scale": lr / batch, "sgd": sgd, "gd": gd, "sgd_test_acc": acc}


def test_trend_rule_needs_a_drop_beyond_the_end_points_spread_and_no_rise_beyond_the_error_bars():
    from collapse import report

    # layer 0 falls 1.0 -> 0.8 -> 0.5 (sd 0.1 at the end), layer 1 is flat around 0.9
    pts = [
        _point([[1.0, 0.9], [1.0, 0.9], [1.0, 0.9]], [[1, 1]]),
        _point([[0.8, 0.85], [0.8, 0.95], [0.8, 0.9]], [[1, 1]]),
        _point([[0.4, 0.9], [0.5, 0.9], [0.6, 0.9]], [[1, 1]]),
    ]
    t = report.trend(pts)
    np.testing.assert_allclose(t["drop"], [0.5, 0.0, 0.25], atol=1e-12)
    np.testing.assert_allclose(t["spread"], [0.1, 0.0, 0.05], atol=1e-12)  # sample sd (ddof 1) of the end points
    assert t["shown"].tolist() == [True, False, True]
    # a middle point far above both ends breaks the monotone trend even though the ends are separated
    pts[1] = _point([[1.3, 0.9]] * 3, [[1, 1]])
    assert not report.trend(pts)["shown"][0]


def test_control_gap_is_control_minus_sgd_against_the_summed_seed_spread():
    from collapse import report

    g = report.control_gap(_point([[0.5, 1.0], [0.6, 1.0], [0.7, 1.0]], [[1.0, 0.95], [1.0, 1.0]]))
    np.testing.assert_allclose(g["gap"], [0.4, -0.025, 0.1875], atol=1e-12)
    np.testing.assert_allclose(g["spread"][:2], [0.1, np.sqrt(0.00125)], atol=1e-12)
    assert g["shown"].tolist() == [True, False, True]


def test_noise_report_passes_a_shown_trend_and_names_the_layer_where_it_is_only_partly_shown():
    from collapse import report

    flat = [[0.9, 1.0]] * 3
    lr_axis = [_point(flat, [[1, 1]], lr=0.05), _point([[1.0, 0.4], [1.0, 0.5], [1.0, 0.6]], [[1, 1]], lr=0.2)]
    none = [[1.0, 1.0]] * 3
    batch_axis = [_point(none, [[1, 1]], lr=0.2, batch=64), _point(none, [[1, 1]], lr=0.2, batch=8)]
    ns = {
        "weight_decay": 1e-4,
        "num_steps": 100,
        "min_test_acc": 0.9,
        "layers": ["fc1", "fc2"],
        "lr_axis": {"batch": 8, "points": lr_axis},
        "batch_axis": {"lr": 0.2, "points": batch_axis},
    }
    rows = report.noise_rows(ns)
    assert [r["ok"] for r in rows] == [True, True, False, False]
    # fc1 does not follow (it even rises, 0.9 -> 1.0): the rows pass on the mean of layers and name fc1
    assert "trend shown in fc2 (0.50 > 0.10); not in fc1 -0.10 vs spread 0.00" in rows[0]["value"]
    assert "excess collapse shown in fc2 (0.50 > 0.10); not in fc1 +0.00 vs spread 0.00" in rows[1]["value"]
    # the same numbers from a run that did not train (test accuracy at chance) do not pass
    lr_axis[1]["sgd_test_acc"] = 0.1
    assert [r["ok"] for r in report.noise_rows(ns)][:2] == [False, False]
    # nor does a point whose mean accuracy passes while one of its seeds did not train
    lr_axis[1]["sgd_test_acc"], lr_axis[1]["sgd_test_acc_min"] = 0.93, 0.85
    assert [r["ok"] for r in report.noise_rows(ns)][:2] == [False, False]
    lr_axis[1]["sgd_test_acc_min"] = 0.91
    assert [r["ok"] for r in report.noise_rows(ns)][:2] == [True, True]


def test_noise_points_are_ordered_by_noise_scale_with_their_controls():
    n = default.get_config().noise
    layers = 2

    def parts(v, r):
        p = np.zeros((r, layers, 3))
        p[:, :, 0] = v
        return {"parts": p, "acc": np.ones(r)}

    n.lrs, n.batch_axis_lr, n.lr_axis_batch, n.batch_sizes = (0.05, 0.1, 0.2), 0.2, 8, (8, 16, 32, 64)
    sgd = {f"lr={lr:g} batch=8": parts(1 - lr, 3) for lr in n.lrs}
    sgd.update({f"lr=0.2 batch={b}": parts(1 - 0.2, 3) for b in n.batch_sizes if b != 8})
    sgd["lr=0.2 batch=16"]["acc"] = np.array([0.97, 0.4, 0.97])  # one seed did not train
    gd = {f"lr={lr:g}": parts(1.0 - lr / 10, 1) for lr in n.lrs}
    out = summary.noise_points(n, sgd, gd, ["fc1", "fc2"])
    b16 = [p for p in out["batch_axis"]["points"] if p["batch"] == 16][0]
    assert b16["sgd_test_acc"] == pytest.approx(0.78) and b16["sgd_test_acc_min"] == pytest.approx(0.4)
    assert [p["noise_scale"] for p in out["batch_axis"]["points"]] == [0.2 / 64, 0.2 / 32, 0.2 / 16, 0.2 / 8]
    assert [p["lr"] for p in out["lr_axis"]["points"]] == [0.05, 0.1, 0.2]
    for p in out["lr_axis"]["points"]:
        np.testing.assert_allclose(p["gd_mean"], 1.0 - p["lr"] / 10)
    assert all(p["gd_mean"][0] == pytest.approx(0.98) for p in out["batch_axis"]["points"])


@pytest.mark.parametrize(
    "field,value",
    [
        ("noise.batch_axis_lr", 0.3),  # not one of noise.lrs: no control
        ("noise.lr_axis_batch", 4),  # not one of noise.batch_sizes
        ("noise.num_steps", 150),  # not a multiple of train.chunk_steps (100)
        ("noise.lrs", (0.4,)),  # one lr: no trend
        ("noise.batch_sizes", (32, 8)),
        ("noise.label_noise", 1.5),  # not a probability
        ("noise.warmup_steps", -1),
    ],
)
def test_noise_sweep_fields_are_checked_naming_the_field(field, value):
    c = default.get_config("smoke")
    section, key = field.split(".")
    c[section][key] = value
    with pytest.raises(app.ConfigError) as e:
        experiment.validate(c)
    assert field in str(e.value)
