"""Training: the width mask gives exactly the narrower MLP, and chunks resume bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np

from manifolds import models, train


def _data(n=64, d=12, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, c, n).astype(np.int32)
    return x, y, rng.integers(0, c, n).astype(np.int32)


def test_masked_wide_mlp_is_the_narrow_mlp_and_stays_masked():
    task = train.Task("mlp", (32,), (12, 1, 1), 3, 16)
    hp = {
        "lr": jnp.float32(1e-2),
        "train_size": jnp.float32(64),
        "random_labels": jnp.float32(0),
        "width": jnp.float32(5),
    }
    state = train.init_state(task, jax.random.key(0), hp)
    state, _ = jax.jit(train.run_chunk(task, 50))(state, hp, _data(), 0)
    p = state["params"]
    assert np.all(np.asarray(p[0]["w"])[:, 5:] == 0) and np.all(np.asarray(p[1]["w"])[5:] == 0)
    narrow = [{"w": p[0]["w"][:, :5], "b": p[0]["b"][:5]}, {"w": p[1]["w"][:5], "b": p[1]["b"]}]
    x = jnp.asarray(_data(seed=1)[0])
    np.testing.assert_allclose(models.mlp_apply(p, x), models.mlp_apply(narrow, x), rtol=1e-5, atol=1e-6)
    # the output layer starts with the narrow net's fan-in scale 1/sqrt(5)
    s0 = train.init_state(task, jax.random.key(0), hp)["params"][1]["w"][:5]
    assert 0.3 < float(jnp.max(jnp.abs(s0))) * np.sqrt(5) <= 1.0 + 1e-6


def test_chunks_resume_bit_for_bit_and_random_labels_differ():
    task = train.Task("mlp", (16,), (12, 1, 1), 3, 8, num_chunks=2, snapshots=True)
    hp = {
        "lr": jnp.float32(1e-2),
        "train_size": jnp.float32(64),
        "random_labels": jnp.float32(0),
        "width": jnp.float32(1e9),
    }
    chunk = jax.jit(train.run_chunk(task, 20))
    s0 = train.init_state(task, jax.random.key(1), hp)
    a, _ = chunk(s0, hp, _data(), 0)
    a, _ = chunk(a, hp, _data(), 20)
    b, _ = jax.jit(train.run_chunk(task, 40))(s0, hp, _data(), 0)
    for u, v in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"]), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    # snapshot slot 0 holds the parameters after the first chunk, slot 1 the final ones
    np.testing.assert_array_equal(np.asarray(a["snaps"][0]["w"][1]), np.asarray(a["params"][0]["w"]))
    r, _ = chunk(s0, {**hp, "random_labels": jnp.float32(1)}, _data(), 0)
    assert not np.allclose(np.asarray(r["params"][0]["w"]), np.asarray(chunk(s0, hp, _data(), 0)[0]["params"][0]["w"]))
