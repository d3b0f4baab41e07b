"""Invariant sets: exact invariance under SGD, detection on hand-built parameters,
function-preserving extraction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse import invariant_sets as inv
from collapse import models, train


def _mlp(seed=0, sizes=(6, 8, 5, 3)):
    return models.init_mlp(jax.random.key(seed), sizes)


def _rows(layers, layer):
    """Next layer's weights as [k, width, rest] so that [:, j] are neuron j's outgoing weights."""
    w_next = layers[layer + 1]["w"]
    width = layers[layer]["w"].shape[-1]
    if w_next.ndim == 4:  # HWIO: move I next to a leading H*W axis
        kh, kw, _, o = w_next.shape
        return w_next.reshape(kh * kw, width, o)
    return w_next.reshape(-1, width, w_next.shape[-1])


def _set_vanishing(layers, layer, j):
    layers = jax.tree.map(lambda x: x, layers)
    layers[layer]["w"] = layers[layer]["w"].at[..., j].set(0.0)
    layers[layer]["b"] = layers[layer]["b"].at[j].set(0.0)
    w3 = _rows(layers, layer)
    layers[layer + 1]["w"] = w3.at[:, j].set(0.0).reshape(layers[layer + 1]["w"].shape)
    return layers


def _set_identical(layers, layer, i, j):
    layers = jax.tree.map(lambda x: x, layers)
    layers[layer]["w"] = layers[layer]["w"].at[..., j].set(layers[layer]["w"][..., i])
    layers[layer]["b"] = layers[layer]["b"].at[j].set(layers[layer]["b"][i])
    w3 = _rows(layers, layer)
    layers[layer + 1]["w"] = w3.at[:, j].set(w3[:, i]).reshape(layers[layer + 1]["w"].shape)
    return layers


def test_detection_on_hand_built_parameters():
    layers = _mlp()
    layers = _set_vanishing(layers, 0, 2)
    layers = _set_identical(layers, 0, 0, 5)
    layers = _set_identical(layers, 0, 0, 7)
    layers = _set_identical(layers, 1, 1, 3)
    a = inv.analyse(layers)
    assert [c.width for c in a] == [8, 5]
    np.testing.assert_array_equal(np.flatnonzero(a[0].vanishing), [2])
    assert [0, 5, 7] in a[0].groups and all(2 not in g for g in a[0].groups)
    assert a[0].independent == 8 - 1 - 2  # one vanishing, three neurons in one group
    assert [1, 3] in a[1].groups and a[1].independent == 4
    np.testing.assert_allclose(inv.independent_fraction(layers), [5 / 8, 4 / 5])


def test_thresholds_are_the_papers():
    # Two neurons at relative distance just below / above 0.1, and one at 0.09 x / 0.11 x the largest norm.
    u = np.array([1.0, 0.0, 0.0])

    def off(r):  # offset e with 2 e^2 / (2 + e^2) = r
        return np.sqrt(2 * r / (2 - r))

    v = u + np.array([0.0, off(0.099), 0.0])
    far = u + np.array([0.0, 0.0, off(0.101)])
    small = 0.09 * np.array([0.0, 1.0, 1.0]) / np.sqrt(2)
    notsmall = 0.11 * np.array([0.0, 1.0, 1.0]) / np.sqrt(2)
    vecs = np.stack([u, v, far, small * np.linalg.norm(far), notsmall * np.linalg.norm(far)])
    c = inv.analyse_layer(vecs)
    np.testing.assert_array_equal(c.vanishing, [False, False, False, True, False])
    assert c.groups == [[0, 1], [2], [4]]
    assert inv.relative_distances(np.stack([u, -u]))[0, 1] == pytest.approx(4.0)
    assert inv.relative_distances(np.stack([u, u * 0]))[0, 1] == pytest.approx(2.0)


def test_cnn_neuron_vectors_include_outgoing_kernel_and_flattened_dense_rows():
    task = train.Task("cnn", (3, 4), 5, (4, 4, 2), batch_size=2, maxpool_after=(1,))
    layers = task.init(jax.random.key(0))
    v1 = inv.neuron_vectors(layers, 1)  # conv 2 (4 channels) -> dense over a 2x2x4 flattening
    assert v1.shape == (4, 3 * 3 * 3 + 1 + 4 * 5)
    w_dense = np.asarray(layers[2]["w"]).reshape(4, 4, 5)  # [spatial, channel, out]
    np.testing.assert_allclose(v1[2, -20:], w_dense[:, 2, :].reshape(-1), rtol=1e-6)
    v0 = inv.neuron_vectors(layers, 0)
    np.testing.assert_allclose(v0[1, -36:], np.asarray(layers[1]["w"])[:, :, 1, :].reshape(-1))


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_sgd_keeps_vanishing_and_identical_sets_exactly(arch):
    if arch == "mlp":
        task = train.Task("mlp", (8, 6), 3, (2, 2, 1), batch_size=5)
    else:
        task = train.Task("cnn", (4, 5), 3, (4, 4, 1), batch_size=5, maxpool_after=(0,))
    hp = {
        "lr": jnp.float32(0.3),
        "lr_late": jnp.float32(0.1),
        "switch": jnp.float32(7),
        "weight_decay": jnp.float32(1e-3),
        "label_noise": jnp.float32(0.5),
    }
    state = train.init_state(task, jax.random.key(1), hp)
    p = _set_vanishing(state["params"], 0, 1)
    p = _set_identical(p, 0, 2, 3)
    p = _set_identical(p, 1, 0, 4)
    state["params"] = p
    n = 40
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n, *task.input_shape)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, n), jnp.int32)
    out, _ = jax.jit(lambda s: train.run_steps(task, s, hp, (x, y), jnp.asarray(0), 25))(state)
    q = out["params"]
    v0, v1 = inv.neuron_vectors(q, 0), inv.neuron_vectors(q, 1)
    assert np.all(v0[1] == 0.0)  # vanishing stays exactly zero
    if arch == "mlp":  # identical stay bitwise identical
        np.testing.assert_array_equal(v0[2], v0[3])
        np.testing.assert_array_equal(v1[0], v1[4])
    else:
        # XLA's CPU convolutions may round two equal output channels differently (they sit in different vector
        # lanes), so a conv pair stays identical to float32 rounding: ~1e-8 here, while every neuron moved ~1e-1.
        for a, b in ((v0[2], v0[3]), (v1[0], v1[4])):
            assert np.max(np.abs(a - b)) < 1e-6 * np.max(np.abs(a))
    # ...while the other neurons did move.
    assert not np.allclose(v0[0], inv.neuron_vectors(p, 0)[0])


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_extraction_preserves_the_function(arch):
    if arch == "mlp":
        task = train.Task("mlp", (9, 7), 4, (3, 2, 1), batch_size=1)
    else:
        task = train.Task("cnn", (5, 6), 4, (4, 4, 1), batch_size=1, maxpool_after=(1,))
    p = task.init(jax.random.key(3))
    p = _set_vanishing(p, 0, 4)
    p = _set_identical(p, 0, 0, 2)
    p = _set_identical(p, 0, 0, 3)
    p = _set_identical(p, 1, 1, 5)
    p = _set_vanishing(p, 1, 2)
    small, groups = inv.extract_subnetwork(p)
    assert [0, 2, 3] in groups[0] and all(4 not in g for g in groups[0])
    widths = [la["b"].shape[0] for la in small[:-1]]
    assert widths == [inv.analyse(p)[0].independent, inv.analyse(p)[1].independent]
    x = jax.random.normal(jax.random.key(4), (11, *task.input_shape))
    np.testing.assert_allclose(task.apply(small, x), task.apply(p, x), rtol=1e-5, atol=1e-5)
    assert models.num_params(small) < models.num_params(p)
    # The extracted network has no invariant structure left.
    np.testing.assert_allclose(inv.independent_fraction(small), 1.0)


def test_extraction_of_near_collapsed_network_is_close():
    p = _mlp(5, (4, 10, 3))
    p = _set_identical(p, 0, 0, 1)
    p = jax.tree.map(lambda a: a, p)
    p[0]["w"] = p[0]["w"].at[:, 1].add(1e-4)  # nearly, not exactly, identical
    small, _ = inv.extract_subnetwork(p)
    assert small[0]["w"].shape[1] == 9
    x = jax.random.normal(jax.random.key(0), (20, 4))
    err = float(jnp.max(jnp.abs(models.apply(small, x) - models.apply(p, x))))
    assert 0 < err < 1e-3


def test_patch_convolution_equals_lax_conv():
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    for k in (1, 2, 3):
        w = jax.random.normal(jax.random.key(k), (k, k, 3, 4))
        ref = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        np.testing.assert_allclose(models.conv2d_same(x, w), ref, rtol=1e-5, atol=1e-5)


def test_user_nnx_model_through_declared_layer_structure():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc1 = nnx.Linear(5, 6, rngs=rngs)
            self.fc2 = nnx.Linear(6, 2, rngs=rngs)

    net = Net(nnx.Rngs(0))
    _, state = nnx.split(net)
    tree = nnx.to_pure_dict(state)
    paths = [(("fc1", "kernel"), ("fc1", "bias")), (("fc2", "kernel"), ("fc2", "bias"))]
    layers = models.layers_from_tree(tree, paths)
    layers = _set_identical(_set_vanishing(layers, 0, 1), 0, 2, 4)
    a = inv.analyse(layers)
    assert a[0].vanishing.tolist() == [False, True, False, False, False, False]
    assert [2, 4] in a[0].groups and a[0].independent == 4
    # the declared structure computes what the NNX model computes
    for mod, layer in ((net.fc1, layers[0]), (net.fc2, layers[1])):
        mod.kernel[...] = layer["w"]
        mod.bias[...] = layer["b"]
    x = jnp.ones((3, 5))
    ref = net.fc2(jax.nn.gelu(net.fc1(x), approximate=False))
    np.testing.assert_allclose(models.apply(layers, x), ref, rtol=1e-6)


@pytest.mark.slow  # 20-60 s on 2 cores; make test-all runs it
def test_paper_vgg16_structure_shapes_and_analysis():
    from collapse.configs import paper

    c = paper.get_config()
    task = train.Task(
        "cnn",
        tuple(c.net.widths),
        10,
        (32, 32, 3),
        batch_size=2,
        maxpool_after=tuple(c.net.maxpool_after),
        dense_head=tuple(c.net.dense_head),
    )
    p = task.init(jax.random.key(0))
    assert len(p) == 16  # 13 convolutions + 3 dense layers, as in the released VGG-16
    out = task.apply(p, jnp.ones((2, 32, 32, 3)))
    assert out.shape == (2, 10)
    frac = inv.independent_fraction(p)
    assert frac.shape == (15,) and np.all(frac == 1.0)  # a random initialisation has no collapsed neurons


def test_collapse_fractions_separate_vanishing_from_merged():
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(5, 6)).astype(np.float32)
    w2 = rng.normal(size=(6, 3)).astype(np.float32)
    b1 = rng.normal(size=6).astype(np.float32)
    w1[:, 5], b1[5], w2[5] = 0.0, 0.0, 0.0  # neuron 5 vanishes
    w1[:, 1], b1[1], w2[1] = w1[:, 0], b1[0], w2[0]  # neuron 1 is a copy of neuron 0
    layers = [{"w": w1, "b": b1}, {"w": w2, "b": np.zeros(3, np.float32)}]
    f = inv.collapse_fractions(layers)
    np.testing.assert_allclose(f, [[4 / 6, 1 / 6, 1 / 6]])
    np.testing.assert_allclose(f[:, 0], inv.independent_fraction(layers))
    stacked = jax.tree.map(lambda a: np.stack([a, a]), layers)
    np.testing.assert_allclose(inv.collapse_fractions_batched(stacked), np.stack([f, f]))
