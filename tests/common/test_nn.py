"""common.nn: each primitive against an independent reference (lax convolution, a hand-computed BatchNorm, PyTorch's
documented init bounds and momentum convention)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from common import nn


def test_dense_init_is_uniform_within_pytorch_bound():
    p = nn.dense_init(jax.random.key(0), 400, 300)
    bound = 1 / np.sqrt(400)
    w = np.asarray(p["kernel"])
    assert w.shape == (400, 300) and p["bias"].shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    # uniform on [-b, b]: variance b^2 / 3
    np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.02)
    c = nn.conv_init(jax.random.key(1), 3, 3, 16, 8)
    assert np.abs(np.asarray(c["kernel"])).max() <= 1 / np.sqrt(9 * 16)


@pytest.mark.parametrize("stride, k", [(1, 3), (2, 3), (1, 1), (2, 1), (1, 5)])
def test_conv2d_equals_lax(stride, k):
    x = jax.random.normal(jax.random.key(0), (2, 9, 8, 3))
    w = jax.random.normal(jax.random.key(1), (k, k, 3, 4))
    p = (k - 1) // 2
    ref = jax.lax.conv_general_dilated(
        x, w, (stride, stride), ((p, p), (p, p)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(nn.conv2d(x, w, stride), ref, rtol=1e-4, atol=1e-4)


def test_batch_norm_train_and_eval_follow_pytorch():
    x = np.random.default_rng(0).normal(2.0, 3.0, (8, 5, 5, 4)).astype(np.float32)
    params, stats = nn.batch_norm_init(4)
    params = {"scale": jnp.full(4, 2.0), "bias": jnp.full(4, 0.5)}
    y, new = nn.batch_norm(x, params, stats, train=True)
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    np.testing.assert_allclose(y, 2.0 * (x - mean) / np.sqrt(var + 1e-5) + 0.5, rtol=1e-4, atol=1e-4)
    n = 8 * 25
    # PyTorch: running = 0.9 running + 0.1 batch, with the unbiased variance
    np.testing.assert_allclose(new["mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(new["var"], 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    y_eval, same = nn.batch_norm(x, params, new, train=False)
    assert same is new
    np.testing.assert_allclose(y_eval, 2.0 * (x - new["mean"]) / np.sqrt(new["var"] + 1e-5) + 0.5, rtol=1e-4)


def test_augment_crops_and_flips_per_image():
    x = jnp.arange(2 * 6 * 6, dtype=jnp.float32).reshape(2, 6, 6, 1) + 1
    out = nn.augment(jax.random.key(3), x, pad=2)
    assert out.shape == x.shape
    for i in range(2):
        img, orig = np.asarray(out[i, ..., 0]), np.asarray(x[i, ..., 0])
        padded = np.pad(orig, 2)
        found = any(
            np.array_equal(img, v)
            for dy in range(5)
            for dx in range(5)
            for v in (padded[dy : dy + 6, dx : dx + 6], padded[dy : dy + 6, dx : dx + 6][:, ::-1])
        )
        assert found, "every output image must be a flipped or unflipped crop of its padded input"
    outs = np.stack([np.asarray(nn.augment(jax.random.key(s), x, pad=2)) for s in range(20)])
    assert len({o.tobytes() for o in outs}) > 10, "crops must vary with the key"


def test_per_run_lr_under_vmap():
    tx = nn.per_run_lr(optax.sgd, momentum=0.9)

    def run(lr):
        w = jnp.ones(3)
        s = nn.set_lr(tx.init(w), lr)
        for _ in range(3):
            u, s = tx.update(w, s, w)  # gradient of 0.5 |w|^2
            w = optax.apply_updates(w, u)
        return w, nn.get_lr(s)

    ws, got = jax.vmap(run)(jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(got, [0.1, 0.2])
    for lr, w in zip([0.1, 0.2], ws, strict=True):
        ref = optax.sgd(lr, momentum=0.9)
        v = jnp.ones(3)
        s = ref.init(v)
        for _ in range(3):
            u, s = ref.update(v, s, v)
            v = optax.apply_updates(v, u)
        np.testing.assert_allclose(w, v, rtol=1e-6)
