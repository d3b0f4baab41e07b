"""Training: the width mask gives exactly the narrower MLP, snapshots from step 0, equal epochs, resume."""

import jax
import jax.numpy as jnp
import numpy as np

from manifolds import models, train

N = 64


def _data(n=N, d=12, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, c, n).astype(np.int32)
    return x, y, rng.integers(0, c, n).astype(np.int32)


def _hp(**kw):
    hp = {"lr": 1e-2, "train_size": N, "stop_step": 1e9, "random_labels": 0.0, "width": 1e9, "weight_decay": 0.0}
    return {k: jnp.float32(v) for k, v in {**hp, **kw}.items()}


def _chunk(task, steps):
    return jax.jit(lambda s, hp, data, start: train.chunk_run(task, steps, s, hp, data, start))


def test_masked_wide_mlp_is_the_narrow_mlp_and_stays_masked():
    task = train.Task("mlp", (32,), (12, 1, 1), 3, 16, N)
    hp = _hp(width=5)
    state = train.init_run(task, 20, jax.random.key(0), hp)
    state, _ = _chunk(task, 20)(state, hp, _data(), 0)
    p = state["params"]
    assert np.all(np.asarray(p[0]["w"])[:, 5:] == 0) and np.all(np.asarray(p[1]["w"])[5:] == 0)
    narrow = [{"w": p[0]["w"][:, :5], "b": p[0]["b"][:5]}, {"w": p[1]["w"][:5], "b": p[1]["b"]}]
    x = jnp.asarray(_data(seed=1)[0])
    np.testing.assert_allclose(models.mlp_apply(p, x), models.mlp_apply(narrow, x), rtol=1e-5, atol=1e-6)
    # the output layer starts with the narrow net's fan-in scale 1/sqrt(5)
    s0 = train.init_run(task, 20, jax.random.key(0), hp)["params"][1]["w"][:5]
    assert 0.3 < float(jnp.max(jnp.abs(s0))) * np.sqrt(5) <= 1.0 + 1e-6


def test_snapshots_from_the_initialisation_and_chunks_resume():
    task = train.Task("mlp", (16,), (12, 1, 1), 3, 8, N, snap_steps=(0, 3, 20))
    hp = _hp()
    s0 = train.init_run(task, 20, jax.random.key(1), hp)
    chunk20 = _chunk(task, 20)
    a, _ = chunk20(s0, hp, _data(), 0)
    a, _ = chunk20(a, hp, _data(), 20)
    one, by_step = _chunk(task, 1), {}
    b = s0
    for t in range(40):  # the same 40 steps one chunk at a time
        b, _ = one(b, hp, _data(), t)
        by_step[t + 1] = np.asarray(b["params"][0]["w"])
    np.testing.assert_allclose(np.asarray(a["params"][0]["w"]), by_step[40], rtol=1e-6, atol=1e-7)
    # slot 0: the initialisation; slot 1: after 3 steps; slot 2: after 20 steps (the first chunk's end)
    snaps = np.asarray(a["snaps"][0]["w"])
    np.testing.assert_array_equal(snaps[0], np.asarray(s0["params"][0]["w"]))
    np.testing.assert_allclose(snaps[1], by_step[3], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(snaps[2], by_step[20], rtol=1e-6, atol=1e-7)
    assert not np.allclose(snaps[1], snaps[0]) and not np.allclose(snaps[2], snaps[1])


def test_stop_step_freezes_the_parameters_and_random_labels_differ():
    task = train.Task("mlp", (16,), (12, 1, 1), 3, 8, N)
    s0 = train.init_run(task, 30, jax.random.key(2), _hp())
    stopped, _ = _chunk(task, 30)(s0, _hp(stop_step=10), _data(), 0)
    ten, _ = _chunk(task, 10)(s0, _hp(), _data(), 0)
    np.testing.assert_allclose(np.asarray(stopped["params"][0]["w"]), np.asarray(ten["params"][0]["w"]), atol=1e-7)
    r, _ = _chunk(task, 10)(s0, _hp(random_labels=1.0), _data(), 0)
    assert not np.allclose(np.asarray(r["params"][0]["w"]), np.asarray(ten["params"][0]["w"]))


def test_each_seed_trains_on_its_own_subset():
    task = train.Task("mlp", (16,), (12, 1, 1), 3, 8, N)
    orders = [np.asarray(train.init_run(task, 1, jax.random.key(s), _hp())["order"]) for s in (0, 1)]
    assert sorted(orders[0].tolist()) == list(range(N))
    assert set(orders[0][:16]) != set(orders[1][:16])


def test_weight_decay_penalises_conv_kernels_only():
    task = train.Task("cnn", (2,), (4, 4, 1), 3, 8, N)
    params = task.init(jax.random.key(0))
    x, y = jnp.zeros((2, 16)), jnp.zeros((2,), jnp.int32)
    base = float(train._loss(task, params, x, y, 0.0)[0])
    with_wd = float(train._loss(task, params, x, y, 0.1)[0])
    kernel = params[0]["w"]
    np.testing.assert_allclose(with_wd - base, 0.5 * 0.1 * float(jnp.sum(kernel**2)), rtol=1e-5)


def _resnet_params(blocks, width, c_in, classes):
    """ResNet parameters counted by hand: 3x3 convolutions without bias, GroupNorm scale and bias after each, a 1x1
    shortcut at the first block of stages 2 and 3, a dense head with bias."""
    n, cin = 9 * c_in * width + 2 * width, width
    for s, c in enumerate((width, 2 * width, 4 * width)):
        for b in range(blocks):
            n += 9 * cin * c + 2 * c + 9 * c * c + 2 * c + ((cin * c + 2 * c) if s > 0 and b == 0 else 0)
            cin = c
    return n + cin * classes + classes


def test_resnet20_and_wideresnet_shapes_and_parameter_counts():
    for blocks, width, approx in ((3, 16, 0.27e6), (2, 64, 2.75e6)):  # ResNet-20 ~0.27M, WRN-16-4 ~2.7M
        task = train.Task("resnet", (blocks, width), (32, 32, 3), 10, 8, N)
        params = jax.eval_shape(task.init, jax.random.key(0))
        count = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))
        assert count == _resnet_params(blocks, width, 3, 10) and abs(count - approx) < 0.05 * approx
        convs = [a for a in jax.tree.leaves(params) if a.ndim == 4]
        assert len(convs) == 1 + 2 * 3 * blocks + 2  # stem + 6n + 2 shortcuts (ResNet-20: 19 + the head = 20 layers)


def test_toy_resnet_is_per_example_and_trains():
    task = train.Task("resnet", (1, 4), (8, 8, 1), 3, 16, N)
    x, y, yr = _data(d=64)
    x = np.abs(x) / 3
    hp = _hp(lr=3e-3)
    s0 = train.init_run(task, 60, jax.random.key(0), hp)
    logits = task.apply(s0["params"], jnp.asarray(x[:5]))
    one_by_one = jnp.concatenate([task.apply(s0["params"], jnp.asarray(x[i : i + 1])) for i in range(5)])
    np.testing.assert_allclose(logits, one_by_one, rtol=1e-5, atol=1e-5)  # no batch statistics
    s1, out = _chunk(task, 60)(s0, hp, (x, y, yr), 0)
    s2, out2 = _chunk(task, 60)(s1, hp, (x, y, yr), 60)
    assert float(out2["loss"]) < float(out["loss"]) - 0.05 and np.isfinite(float(out2["loss"]))
