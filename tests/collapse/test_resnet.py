"""The BatchNorm ResNet: convolution, ResNet-18 structure, invariant-set neurons (exact and the released chain rule),
exact invariance under SGD with BatchNorm in training mode, function-preserving extraction, vmapped training."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse import experiment, models, train
from collapse import invariant_sets as inv
from collapse.configs import default, paper
from common import app, sweep

TASK = train.Task("resnet", (6, 8), 3, (6, 6, 2), batch_size=5, blocks=2, warmup_steps=3)


def _np(tree):
    return jax.tree.map(lambda a: np.array(a, copy=True), tree)


def _randomise_bn(params, seed=0):
    """Random BN scale/bias so that planted structure is not hidden by the scale-1 / bias-0 initialisation."""
    rng = np.random.default_rng(seed)
    p = _np(params)
    for bn in [p["stem"]["bn"]] + [blk[k] for stage in p["stages"] for blk in stage for k in blk if "bn" in k]:
        bn["scale"][:] = rng.uniform(0.5, 1.5, bn["scale"].shape)
        bn["bias"][:] = rng.normal(0, 0.3, bn["bias"].shape)
    return p


def _vanish_inner(p, s, b, c, scale=0.0):
    blk = p["stages"][s][b]
    blk["conv1"][..., c] = 0.0
    blk["bn1"]["bias"][c] = 0.0
    blk["bn1"]["scale"][c] = scale
    blk["conv2"][:, :, c, :] = 0.0


def _copy_inner(p, s, b, i, j, stats=None):
    blk = p["stages"][s][b]
    blk["conv1"][..., j] = blk["conv1"][..., i]
    for k in ("scale", "bias"):
        blk["bn1"][k][j] = blk["bn1"][k][i]
    blk["conv2"][:, :, j, :] = blk["conv2"][:, :, i, :]
    if stats is not None:
        for k in ("mean", "var"):
            stats["stages"][s][b]["bn1"][k][j] = stats["stages"][s][b]["bn1"][k][i]


def _stream_slices(p, s):
    """(writer kernels + BNs, reader kernels, head) of the residual stream of stage s (0-based)."""
    stage = p["stages"][s]
    writers = [(p["stem"]["w"], p["stem"]["bn"])] if s == 0 else [(stage[0]["short"], stage[0]["short_bn"])]
    writers += [(blk["conv2"], blk["bn2"]) for blk in stage]
    readers = [blk["conv1"] for blk in (stage if s == 0 else stage[1:])]
    if s + 1 < len(p["stages"]):
        readers += [p["stages"][s + 1][0]["conv1"], p["stages"][s + 1][0]["short"]]
    return writers, readers


def _vanish_stream(p, s, c):
    writers, readers = _stream_slices(p, s)
    for w, bn in writers:
        w[..., c] = 0.0
        bn["scale"][c] = 0.0
        bn["bias"][c] = 0.0
    for w in readers:
        w[:, :, c, :] = 0.0
    if s + 1 == len(p["stages"]):
        p["head"]["w"][c, :] = 0.0


def _data(n=30, seed=0, shape=(6, 6, 2), classes=3):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, *shape)), jnp.float32), jnp.asarray(rng.integers(0, classes, n), jnp.int32)


def _hp():
    hp = {"lr": 0.3, "lr_late": 0.1, "switch": 6.0, "weight_decay": 1e-3, "label_noise": 0.5}
    return {k: jnp.float32(v) for k, v in hp.items()}


def test_paper_resnet18_structure():
    c = paper.get_config("resnet18")
    experiment.validate(c)
    task = train.Task("resnet", tuple(c.net.widths), 100, (32, 32, 3), c.train.batch_size, blocks=c.net.blocks)
    shapes = jax.eval_shape(task.init, jax.random.key(0))
    # CIFAR ResNet-18 with a 100-way head: 11,220,132 parameters (the usual count for this architecture).
    assert sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes)) == 11_220_132
    assert [len(s) for s in shapes["stages"]] == [2, 2, 2, 2]
    assert [("short" in s[0]) for s in shapes["stages"]] == [False, True, True, True]
    zeros = jax.tree.map(lambda a: np.zeros(a.shape, np.float32), shapes)
    assert len(inv.layer_names(zeros, "exact")) == 12  # 8 block-inner layers + 4 residual streams
    names = inv.layer_names(zeros, "chain")
    assert len(names) == 17 and names[:3] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    logits, _ = jax.eval_shape(
        lambda p, x: models.apply_resnet(p, x, models.init_resnet_stats(p), train=True),
        shapes,
        jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32),
    )
    assert logits.shape == (2, 100)


def test_neuron_vectors_exact_and_chain():
    p = _np(TASK.init(jax.random.key(0)))
    layers = dict(inv.resnet_neuron_layers(p, "exact"))
    blk = p["stages"][1][1]
    v = layers["layer2.1.inner"]
    c = 3
    expect = np.concatenate(
        [blk["conv1"][..., c].ravel(), [blk["bn1"]["scale"][c], blk["bn1"]["bias"][c]], blk["conv2"][:, :, c].ravel()]
    )
    np.testing.assert_allclose(v[c], expect)
    # stage-1 stream: writers stem (9*2 + 2 BN), 2 x conv2 (9*6 + 2); readers 2 x conv1 (9*6), next conv1 (9*8),
    # next shortcut (8)
    assert layers["layer1.stream"].shape == (6, 20 + 2 * 56 + 2 * 54 + 72 + 8)
    # stage-2 stream: writers shortcut (6 + 2), 2 x conv2 (9*8 + 2); readers conv1 of block 1 (9*8), head (3)
    assert layers["layer2.stream"].shape == (8, 8 + 2 * 74 + 72 + 3)
    assert (
        list(layers)
        == inv.layer_names(p)
        == [
            "layer1.0.inner",
            "layer1.1.inner",
            "layer1.stream",
            "layer2.0.inner",
            "layer2.1.inner",
            "layer2.stream",
        ]
    )
    chain = dict(inv.resnet_neuron_layers(p, "chain"))
    w1, w2 = p["stages"][0][0]["conv2"], p["stages"][0][1]["conv1"]
    np.testing.assert_allclose(chain["layer1.0.conv2"][2], np.concatenate([w1[..., 2].ravel(), w2[:, :, 2].ravel()]))
    np.testing.assert_allclose(chain["layer2.1.conv2"][5, -3:], p["head"]["w"][5])
    no_norm = dict(inv.resnet_neuron_layers(p, "exact", norm_params=False))
    assert no_norm["layer2.1.inner"].shape[1] == v.shape[1] - 2


def test_detection_on_hand_built_resnet():
    p = _randomise_bn(TASK.init(jax.random.key(2)))
    assert np.all(inv.independent_fraction(p) == 1.0)  # a random network has no collapsed neurons
    _vanish_inner(p, 0, 0, 1)
    _copy_inner(p, 0, 0, 0, 4)
    _copy_inner(p, 0, 0, 0, 5)
    _copy_inner(p, 1, 1, 2, 7)
    _vanish_stream(p, 1, 6)
    res = dict(inv.analyse_resnet(p))
    np.testing.assert_array_equal(np.flatnonzero(res["layer1.0.inner"].vanishing), [1])
    assert [0, 4, 5] in res["layer1.0.inner"].groups and res["layer1.0.inner"].independent == 3
    assert [2, 7] in res["layer2.1.inner"].groups
    np.testing.assert_array_equal(np.flatnonzero(res["layer2.stream"].vanishing), [6])
    frac = inv.independent_fraction(p)
    np.testing.assert_allclose(frac, [3 / 6, 1, 1, 1, 7 / 8, 7 / 8])


def test_sgd_with_batchnorm_keeps_vanishing_and_identical_sets_exactly():
    state = train.init_state(TASK, jax.random.key(1), _hp())
    p = _randomise_bn(state["params"], seed=1)
    _vanish_inner(p, 0, 0, 1, scale=0.7)  # conv1 slice, BN bias, conv2 slice zero; the BN scale is free
    gamma_set = p["stages"][1][1]  # the other vanishing set under BatchNorm: BN scale and bias zero, conv1 free
    gamma_set["bn1"]["scale"][0] = gamma_set["bn1"]["bias"][0] = 0.0
    gamma_set["conv2"][:, :, 0, :] = 0.0
    _copy_inner(p, 0, 1, 0, 2)
    _copy_inner(p, 1, 0, 1, 4)
    _vanish_stream(p, 0, 3)
    state["params"] = jax.tree.map(jnp.asarray, p)
    x, y = _data()
    out, _ = jax.jit(lambda s: train.run_steps(TASK, s, _hp(), (x, y), jnp.asarray(0), 12))(state)
    q, st = _np(out["params"]), _np(out["stats"])
    b00, b01, b10, b11 = q["stages"][0][0], q["stages"][0][1], q["stages"][1][0], q["stages"][1][1]
    assert np.all(b00["conv1"][..., 1] == 0) and b00["bn1"]["bias"][1] == 0 and np.all(b00["conv2"][:, :, 1] == 0)
    assert 0 < b00["bn1"]["scale"][1] < 0.7  # free direction: only weight decay acts on it
    assert b11["bn1"]["scale"][0] == 0 and b11["bn1"]["bias"][0] == 0 and np.all(b11["conv2"][:, :, 0] == 0)
    w0, w1 = p["stages"][1][1]["conv1"][..., 0], b11["conv1"][..., 0]  # gets no gradient: only decays
    np.testing.assert_allclose(w1, w0 * (np.vdot(w1, w0) / np.vdot(w0, w0)), rtol=1e-5, atol=1e-7)
    for blk, stats, i, j in ((b01, st["stages"][0][1], 0, 2), (b10, st["stages"][1][0], 1, 4)):
        np.testing.assert_array_equal(blk["conv1"][..., i], blk["conv1"][..., j])
        np.testing.assert_array_equal(blk["conv2"][:, :, i], blk["conv2"][:, :, j])
        for k in ("scale", "bias"):
            assert blk["bn1"][k][i] == blk["bn1"][k][j]
        for k in ("mean", "var"):
            assert stats["bn1"][k][i] == stats["bn1"][k][j]
    writers, readers = _stream_slices(q, 0)
    assert all(np.all(w[..., 3] == 0) and bn["bias"][3] == 0 and bn["scale"][3] == 0 for w, bn in writers)
    assert all(np.all(w[:, :, 3] == 0) for w in readers)
    # ...while the rest moved.
    assert not np.allclose(b00["conv1"][..., 0], p["stages"][0][0]["conv1"][..., 0])


def test_extraction_preserves_the_function_in_train_and_eval_mode():
    p = _randomise_bn(TASK.init(jax.random.key(3)), seed=3)
    rng = np.random.default_rng(3)
    stats = jax.tree.map(lambda a: np.array(a), models.init_resnet_stats(p))
    for stage in stats["stages"]:
        for blk in stage:
            for bn in blk.values():
                bn["mean"][:] = rng.normal(0, 0.2, bn["mean"].shape)
                bn["var"][:] = rng.uniform(0.5, 2.0, bn["var"].shape)
    _vanish_inner(p, 0, 0, 2)
    _copy_inner(p, 0, 0, 0, 3, stats)
    _copy_inner(p, 0, 0, 0, 5, stats)
    _copy_inner(p, 1, 1, 1, 2, stats)
    _vanish_inner(p, 1, 0, 7)
    _copy_inner(p, 1, 0, 4, 6, stats)
    small, small_stats, groups = inv.extract_resnet(p, stats)
    assert [[blk["conv1"].shape[-1] for blk in s] for s in small["stages"]] == [[3, 6], [6, 7]]
    assert groups["layer1.0.inner"] == [[0, 3, 5], [1], [4]]
    x, _ = _data(n=7, seed=4)
    big_p, big_s = jax.tree.map(jnp.asarray, p), jax.tree.map(jnp.asarray, stats)
    for train_mode in (True, False):
        a = models.apply_resnet(big_p, x, big_s, train=train_mode)[0]
        b = models.apply_resnet(small, x, small_stats, train=train_mode)[0]
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert inv.independent_fraction(small)[0] == 1.0


@pytest.mark.slow  # 20-60 s on 2 cores; make test-all runs it
def test_vmapped_resnet_runs_equal_single_runs():
    x, y = _data()
    rows = [_hp(), {**_hp(), "lr": jnp.float32(0.05), "label_noise": jnp.float32(0.0)}]
    hp = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    keys = jax.vmap(jax.random.key)(jnp.arange(2, dtype=jnp.uint32))
    task = train.Task("resnet", (4, 6), 3, (6, 6, 2), batch_size=5, blocks=1, warmup_steps=3)  # small: compiles
    fn = sweep.vmapped(lambda k, h, d: train.train(task, k, h, d, 8), in_axes=(0, 0, None))
    states, m = fn(keys, hp, (x, y, x, y))
    frac = inv.independent_fraction_batched(states["params"])
    assert frac.shape == (2, 4)
    one = jax.jit(lambda k, h: train.train(task, k, h, (x, y, x, y), 8))
    for r in range(2):
        single, sm = one(keys[r], rows[r])
        for a, b in zip(jax.tree.leaves(states), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(a[r], b, rtol=1e-4, atol=1e-5)
        assert float(m["test_acc"][r]) == pytest.approx(float(sm["test_acc"]))
        np.testing.assert_array_equal(frac[r], inv.independent_fraction(single["params"]))


@pytest.mark.slow
def test_resnet_smoke_run_end_to_end(tmp_path):
    c = default.get_config("resnet_smoke")
    workdir = str(tmp_path / "run")
    res = app.execute(experiment, c, workdir)
    names = ["layer1.0.inner", "layer1.1.inner", "layer1.stream", "layer2.0.inner", "layer2.1.inner", "layer2.stream"]
    assert res["independent_fraction_layers"] == {"resnet": names}
    assert set(res["independent_fraction"]) == {
        "resnet lr=0.2",
        "resnet lr=0.05",
        "resnet label_noise=0.2",
        "resnet weight_decay=0",
        "resnet batch=8",
    }
    for v in res["independent_fraction"].values():
        assert len(v) == len(names) and all(0 < f <= 1 for f in v)
    assert set(res["large_lr"]) == {"0", "50"} and all(0 < v["test_acc"] <= 1 for v in res["large_lr"].values())
    assert os.path.exists(os.path.join(workdir, "figures", "independent_fraction_over_training.png"))


@pytest.mark.slow
def test_resnet_accuracy_in_slices_equals_one_pass():
    # train.accuracy evaluates a ResNet in lax.map slices plus a remainder; hits must add up to the one-pass count.
    task = train.Task("resnet", (4,), 3, (6, 6, 2), batch_size=5, blocks=1)
    params = task.init(jax.random.key(0))
    stats = task.init_stats(params)
    x = jax.random.normal(jax.random.key(1), (23, 6, 6, 2))
    y = jnp.argmax(task.apply(params, x, stats), axis=-1).at[:5].set(-1)  # 18 of 23 right by construction
    for eval_batch in (4, 23, 100):
        assert float(train.accuracy(task, params, x, y, stats, eval_batch=eval_batch)) == pytest.approx(18 / 23)
