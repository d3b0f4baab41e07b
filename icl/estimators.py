"""Exact Bayesian baselines for in-context regression, for every context position (Raventós et al. 2023, Sec. 3).

For a prompt (x_1, y_1, ..., x_K, y_K) each estimator predicts y_k from the first k - 1 pairs and x_k:
  - Ridge (Bayes-optimal under T_True, Gaussian prior w ~ N(0, I)): w_1 = 0,
    w_k = (X^T X + sigma^2 I)^{-1} X^T y over the first k - 1 pairs.
  - dMMSE (Bayes-optimal under T_Pretrain, uniform prior over the pool): w_k = sum_i softmax_i(L_i) w^(i) with
    L_i = -(1/2 sigma^2) sum_{j<k} (y_j - w^(i)T x_j)^2 (w_1 = the pool mean). Pools of up to 2^20 tasks are
    processed in chunks with a running log-sum-exp, so memory is O(B K chunk) whatever M is.
  - Least squares (minimum-norm solution over the first k - 1 pairs), the sigma -> 0 limit of Ridge.
and the distance between two estimators Delta(f, g) = E[(1/(K D)) sum_k (f(S_k) - g(S_k))^2].
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

_HI = jax.lax.Precision.HIGHEST


def _exclusive_cumsum(a: jax.Array, axis: int = 1) -> jax.Array:
    """sum_{j<k} a_j along `axis` (zero at k = 0), without the cancellation of cumsum(a) - a."""
    c = jnp.cumsum(a, axis=axis)
    pad = [(0, 0)] * a.ndim
    pad[axis] = (1, 0)
    return jax.lax.slice_in_dim(jnp.pad(c, pad), 0, a.shape[axis], axis=axis)


@jax.jit
def ridge_weights(xs_BxKxD: jax.Array, ys_BxK: jax.Array, sigma2: float | jax.Array) -> jax.Array:
    """Ridge estimates w_k = (X_{<k}^T X_{<k} + sigma^2 I)^{-1} X_{<k}^T y_{<k} for every k, [B, K, D]."""
    chex.assert_rank([xs_BxKxD, ys_BxK], [3, 2])
    d = xs_BxKxD.shape[-1]
    gram = _exclusive_cumsum(jnp.einsum("bkd,bke->bkde", xs_BxKxD, xs_BxKxD, precision=_HI))
    xty = _exclusive_cumsum(xs_BxKxD * ys_BxK[..., None])
    a = gram + sigma2 * jnp.eye(d, dtype=xs_BxKxD.dtype)
    return _solve_spd(a, xty)


def _solve_spd(a_NxDxD: jax.Array, b_NxD: jax.Array) -> jax.Array:
    """x with a x = b for symmetric positive definite a: Gauss-Jordan elimination without pivoting, unrolled over D.

    Plain elementwise ops instead of LAPACK's triangular solve, which XLA's SPMD partitioner does not split along a
    sharded batch axis: under a runs-sharded vmap it all-gathered the systems (and hung XLA:CPU's collectives).
    """
    d = a_NxDxD.shape[-1]
    a, b = a_NxDxD, b_NxD
    for i in range(d):
        piv = a[..., i, i]
        row, bi = a[..., i, :] / piv[..., None], b[..., i] / piv
        col = a[..., :, i]
        a = (a - col[..., :, None] * row[..., None, :]).at[..., i, :].set(row)
        b = (b - col * bi[..., None]).at[..., i].set(bi)
    return b


@jax.jit
def ridge_predictions(xs_BxKxD: jax.Array, ys_BxK: jax.Array, sigma2: float | jax.Array) -> jax.Array:
    """Ridge predictions x_k^T w_k for every position k, [B, K] (prediction 0 at k = 1)."""
    return jnp.sum(xs_BxKxD * ridge_weights(xs_BxKxD, ys_BxK, sigma2), axis=-1)


@jax.jit
def least_squares_predictions(xs_BxKxD: jax.Array, ys_BxK: jax.Array) -> jax.Array:
    """Minimum-norm least-squares predictions x_k^T pinv(X_{<k}) y_{<k} for every k, [B, K]."""
    b, k, d = xs_BxKxD.shape
    mask_KxK = jnp.tril(jnp.ones((k, k), xs_BxKxD.dtype), -1)  # row k keeps pairs j < k
    x_BxKxKxD = mask_KxK[None, :, :, None] * xs_BxKxD[:, None]
    y_BxKxK = mask_KxK[None] * ys_BxK[:, None]
    w = jnp.einsum("bkdj,bkj->bkd", jnp.linalg.pinv(x_BxKxKxD), y_BxKxK, precision=_HI)
    return jnp.sum(xs_BxKxD * w, axis=-1)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def dmmse_weights(
    xs_BxKxD: jax.Array,
    ys_BxK: jax.Array,
    pool_MxD: jax.Array,
    sigma2: float | jax.Array,
    chunk_size: int = 1024,
    num_tasks: jax.Array | float | None = None,
) -> jax.Array:
    """dMMSE posterior means w_k = sum_i softmax_i(L_i) w^(i) over the pool for every k, [B, K, D].

    `num_tasks` (may be traced) keeps only the first M rows of the pool (the prior of a run with M tasks; None: the
    whole pool), so one compiled program serves every M of a sweep. The pool is scanned in chunks of `chunk_size`
    tasks keeping a running maximum, normaliser and weighted sum (a streaming log-sum-exp), so pools of 2^20 tasks
    fit in memory.
    """
    chex.assert_rank([xs_BxKxD, ys_BxK, pool_MxD], [3, 2, 2])
    b, k, d = xs_BxKxD.shape
    m = pool_MxD.shape[0]
    c = min(chunk_size, m)
    n_chunks = -(-m // c)
    pad = n_chunks * c - m
    pool = jnp.pad(pool_MxD, ((0, pad), (0, 0))).reshape(n_chunks, c, d)
    limit = m if num_tasks is None else jnp.minimum(jnp.asarray(num_tasks, jnp.float32), m)
    valid = (jnp.arange(n_chunks * c) < limit).reshape(n_chunks, c)

    def body(carry, chunk):
        run_max, run_sum, run_acc = carry
        w_CxD, valid_C = chunk
        resid = ys_BxK[..., None] - jnp.einsum("bkd,cd->bkc", xs_BxKxD, w_CxD, precision=_HI)
        logit_BxKxC = -_exclusive_cumsum(resid**2) / (2.0 * sigma2)
        logit_BxKxC = jnp.where(valid_C, logit_BxKxC, -jnp.inf)
        new_max = jnp.maximum(run_max, jnp.max(logit_BxKxC, axis=-1))
        shrink = jnp.exp(run_max - new_max)
        p_BxKxC = jnp.exp(logit_BxKxC - new_max[..., None])
        run_sum = run_sum * shrink + jnp.sum(p_BxKxC, axis=-1)
        run_acc = run_acc * shrink[..., None] + jnp.einsum("bkc,cd->bkd", p_BxKxC, w_CxD, precision=_HI)
        return (new_max, run_sum, run_acc), None

    init = (
        jnp.full((b, k), -jnp.inf, xs_BxKxD.dtype),
        jnp.zeros((b, k), xs_BxKxD.dtype),
        jnp.zeros((b, k, d), xs_BxKxD.dtype),
    )
    (_, run_sum, run_acc), _ = jax.lax.scan(body, init, (pool, valid))
    return run_acc / run_sum[..., None]


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def dmmse_predictions(
    xs_BxKxD: jax.Array,
    ys_BxK: jax.Array,
    pool_MxD: jax.Array,
    sigma2: float | jax.Array,
    chunk_size: int = 1024,
    num_tasks: jax.Array | float | None = None,
) -> jax.Array:
    """dMMSE predictions x_k^T w_k for every position k, [B, K] (pool-mean prediction at k = 1)."""
    w = dmmse_weights(xs_BxKxD, ys_BxK, pool_MxD, sigma2, chunk_size=chunk_size, num_tasks=num_tasks)
    return jnp.sum(xs_BxKxD * w, axis=-1)


def squared_error(pred_BxK: jax.Array, target_BxK: jax.Array, dim: int) -> jax.Array:
    """Mean over prompts of (pred - target)^2 / D at every position, [K] (the paper's loss per position / D)."""
    chex.assert_equal_shape([pred_BxK, target_BxK])
    return jnp.mean((pred_BxK - target_BxK) ** 2, axis=0) / dim


def estimator_distance(f_BxK: jax.Array, g_BxK: jax.Array, dim: int) -> jax.Array:
    """Delta(f, g) = E[(1/(K D)) sum_k (f(S_k) - g(S_k))^2] over the prompts given (a scalar)."""
    return jnp.mean(squared_error(f_BxK, g_BxK, dim))
