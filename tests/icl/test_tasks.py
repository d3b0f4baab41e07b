"""icl.tasks: pools below a traced M, fresh tasks at M = inf, noise level."""

import jax
import jax.numpy as jnp
import numpy as np

from icl import tasks


def test_indices_stay_below_a_traced_m():
    pool = tasks.task_pool(jax.random.key(0), 64, 3)

    @jax.jit
    def draw(m):
        return tasks.sample_tasks(jax.random.key(1), pool, m, 4096)

    for m in (1, 3, 16):
        ws = np.asarray(draw(jnp.float32(m)))
        hits = (ws[:, None, :] == np.asarray(pool)[None]).all(-1)  # [B, 64]
        assert hits.any(1).all()
        used = np.flatnonzero(hits.any(0))
        assert used.max() < m
        assert len(used) == m  # 4096 draws cover every task of a small pool


def test_infinite_m_draws_fresh_gaussian_tasks():
    pool = tasks.task_pool(jax.random.key(0), 8, 4)
    ws = np.asarray(tasks.sample_tasks(jax.random.key(2), pool, jnp.inf, 20000))
    assert not (ws[:, None, :] == np.asarray(pool)[None]).all(-1).any()
    np.testing.assert_allclose(ws.mean(0), 0.0, atol=0.03)
    np.testing.assert_allclose(np.cov(ws.T), np.eye(4), atol=0.04)


def test_targets_are_linear_plus_noise_of_the_given_variance():
    pool = tasks.task_pool(jax.random.key(0), 4, 3)
    b = tasks.sample_batch(jax.random.key(3), pool, jnp.float32(4), 4000, 16, 0.5)
    assert b.xs.shape == (4000, 16, 3) and b.ws.shape == (4000, 3) and b.ys.shape == (4000, 16)
    resid = np.asarray(b.ys - tasks.noiseless_targets(b))
    assert abs(resid.var() - 0.25) < 0.01
    assert abs(np.asarray(b.xs).var() - 1.0) < 0.01


def test_pools_are_nested_across_sizes():
    # the pool of size M is the first M rows of the pool at the sweep's largest M
    big = tasks.task_pool(jax.random.key(5), 1024, 2)
    assert big.shape == (1024, 2)
    ws = tasks.sample_tasks(jax.random.key(6), big, jnp.float32(2), 100)
    assert ((np.asarray(ws)[:, None] == np.asarray(big[:2])[None]).all(-1).any(1)).all()
