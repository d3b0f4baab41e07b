"""icl.estimators against numpy references, limits and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import estimators, tasks


def _prompts(seed, b, k, d, noise_std, pool=None):
    key = jax.random.key(seed)
    if pool is None:
        pool = jnp.zeros((1, d))
        m = jnp.inf
    else:
        m = pool.shape[0]
    return tasks.sample_batch(key, pool, m, b, k, noise_std)


def test_ridge_equals_numpy_regularised_least_squares():
    d, k, s2 = 3, 7, 0.3
    batch = _prompts(0, 5, k, d, np.sqrt(s2))
    pred = np.asarray(estimators.ridge_predictions(batch.xs, batch.ys, s2))
    xs, ys = np.asarray(batch.xs, np.float64), np.asarray(batch.ys, np.float64)
    for b in range(xs.shape[0]):
        assert pred[b, 0] == 0.0
        for i in range(1, k):
            # Ridge as ordinary least squares on the data stacked over sqrt(sigma^2) I rows with zero targets.
            a = np.concatenate([xs[b, :i], np.sqrt(s2) * np.eye(d)])
            y = np.concatenate([ys[b, :i], np.zeros(d)])
            w = np.linalg.lstsq(a, y, rcond=None)[0]
            np.testing.assert_allclose(pred[b, i], xs[b, i] @ w, rtol=2e-4, atol=2e-5)


def test_least_squares_equals_numpy_min_norm_solution():
    d, k = 3, 6
    batch = _prompts(1, 4, k, d, 0.1)
    pred = np.asarray(estimators.least_squares_predictions(batch.xs, batch.ys))
    xs, ys = np.asarray(batch.xs, np.float64), np.asarray(batch.ys, np.float64)
    for b in range(xs.shape[0]):
        for i in range(1, k):
            w = np.linalg.lstsq(xs[b, :i], ys[b, :i], rcond=None)[0]
            np.testing.assert_allclose(pred[b, i], xs[b, i] @ w, rtol=1e-3, atol=1e-4)


def test_ridge_tends_to_least_squares_as_noise_vanishes():
    batch = _prompts(2, 4, 8, 3, 0.1)
    ridge = estimators.ridge_predictions(batch.xs, batch.ys, 1e-6)
    ls = estimators.least_squares_predictions(batch.xs, batch.ys)
    # with more pairs than dimensions both are the unique least-squares fit
    np.testing.assert_allclose(ridge[:, 4:], ls[:, 4:], rtol=1e-3, atol=1e-3)


def test_dmmse_with_one_task_returns_that_task():
    pool = jax.random.normal(jax.random.key(3), (1, 4))
    batch = _prompts(4, 6, 5, 4, 0.5, pool=pool)
    w = estimators.dmmse_weights(batch.xs, batch.ys, pool, 0.25)
    np.testing.assert_allclose(w, np.broadcast_to(pool[0], w.shape), rtol=1e-6)
    pred = estimators.dmmse_predictions(batch.xs, batch.ys, pool, 0.25)
    np.testing.assert_allclose(pred, tasks.noiseless_targets(batch), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 4, 8, 64])
def test_dmmse_chunked_equals_direct_softmax(chunk):
    m, d, k, s2 = 37, 3, 6, 0.2  # 37 tasks: no chunk size divides the pool
    pool = jax.random.normal(jax.random.key(5), (m, d))
    batch = _prompts(6, 5, k, d, np.sqrt(s2), pool=pool)
    pred = np.asarray(estimators.dmmse_predictions(batch.xs, batch.ys, pool, s2, chunk_size=chunk))
    xs, ys, w = (np.asarray(a, np.float64) for a in (batch.xs, batch.ys, pool))
    for b in range(xs.shape[0]):
        for i in range(k):
            logit = -((ys[b, :i, None] - xs[b, :i] @ w.T) ** 2).sum(0) / (2 * s2)
            p = np.exp(logit - logit.max())
            np.testing.assert_allclose(pred[b, i], xs[b, i] @ (p @ w / p.sum()), rtol=1e-4, atol=1e-5)
    # position 1 sees no data: the prediction uses the pool mean
    np.testing.assert_allclose(pred[:, 0], np.asarray(batch.xs[:, 0] @ pool.mean(0)), rtol=1e-5, atol=1e-6)


def test_dmmse_concentrates_on_the_true_task_as_the_context_grows():
    pool = jax.random.normal(jax.random.key(7), (64, 3))
    batch = _prompts(8, 32, 48, 3, 0.5, pool=pool)
    w = np.asarray(estimators.dmmse_weights(batch.xs, batch.ys, pool, 0.25))
    err = np.mean(np.sum((w - np.asarray(batch.ws)[:, None]) ** 2, -1), 0)
    assert err[0] > 0.5  # prior: the pool mean, far from the task
    assert err[-1] < 1e-3  # the posterior has collapsed onto the generating pool task
    assert err[16] < err[4] < err[0]


def test_dmmse_with_a_large_gaussian_pool_tends_to_ridge():
    # M -> inf: the uniform prior over M draws of N(0, I) becomes N(0, I), whose posterior mean is Ridge.
    d, s2 = 2, 0.25
    pool = jax.random.normal(jax.random.key(9), (2**16, d))
    batch = _prompts(10, 64, 6, d, np.sqrt(s2))
    dm = estimators.dmmse_predictions(batch.xs, batch.ys, pool, s2, chunk_size=4096)
    ri = estimators.ridge_predictions(batch.xs, batch.ys, s2)
    target = tasks.noiseless_targets(batch)
    assert float(estimators.estimator_distance(dm, ri, d)) < 0.01 * float(estimators.estimator_distance(ri, target, d))
    small = estimators.dmmse_predictions(batch.xs, batch.ys, pool[:4], s2)
    assert float(estimators.estimator_distance(small, ri, d)) > 10 * float(estimators.estimator_distance(dm, ri, d))


def test_estimator_distance_closed_form():
    f = jnp.zeros((10, 4))
    g = jnp.full((10, 4), 0.5)
    assert float(estimators.estimator_distance(f, g, dim=2)) == pytest.approx(0.25 / 2)
    np.testing.assert_allclose(estimators.squared_error(f, g, 2), np.full(4, 0.125))


def test_ridge_is_bayes_optimal_on_gaussian_tasks():
    # Ridge is the posterior mean under T_True: no other estimator here has a lower expected error there.
    d, s2 = 3, 0.25
    batch = _prompts(11, 4096, 8, d, np.sqrt(s2))
    target = tasks.noiseless_targets(batch)
    ridge = estimators.squared_error(estimators.ridge_predictions(batch.xs, batch.ys, s2), target, d)
    ls = estimators.squared_error(estimators.least_squares_predictions(batch.xs, batch.ys), target, d)
    pool = jax.random.normal(jax.random.key(12), (16, d))
    dm = estimators.squared_error(estimators.dmmse_predictions(batch.xs, batch.ys, pool, s2), target, d)
    assert float(ridge.mean()) < float(ls.mean()) and float(ridge.mean()) < float(dm.mean())
    # first position: prediction 0, error E[(w.x)^2]/D = 1
    assert float(ridge[0]) == pytest.approx(1.0, abs=0.1)  # 3 standard errors at 4096 prompts
