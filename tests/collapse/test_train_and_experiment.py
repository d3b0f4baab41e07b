"""Training loop (chunking, vmapping, label noise) and the experiment's config checks and smoke run."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse import experiment, train
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
    assert experiment._gd_row(row, 5000)["label_noise"] == 0.2
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
    rows, settings = experiment._settings(c)
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
    monkeypatch.setattr(experiment, "attractivity", lambda *a: {"quartic": {}})
    monkeypatch.setattr(experiment, "_quartic_illustration", lambda *a: {})
    monkeypatch.setattr(experiment, "teacher_student", lambda *a: {})
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
        "fig4_independent_fraction",
        "fig4_independent_fraction_over_training",
        "fig5_teacher_student",
        "fig6_large_lr",
    ):
        assert os.path.exists(os.path.join(workdir, "figures", f"{name}.png"))
    rows = experiment.report(res)
    assert any("SGD vs full-batch GD" in r["name"] and r["ok"] for r in rows)


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
            out.append(experiment._train_group("g", task, rows, arrays, 40, c, str(tmp_path / f"w{per_call}"), w))
    for a, b in zip(jax.tree.leaves(out[0]["state"]), jax.tree.leaves(out[1]["state"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out[0]["parts"], out[1]["parts"])
    assert sorted(out[0]["history"]) == [20, 40]
