"""Noisy linear regression prompts, generated on device (Raventós et al. 2023, Sec. 2).

A prompt is K pairs x_k ~ N(0, I_D), y_k = w^T x_k + eps_k, eps_k ~ N(0, sigma^2). Under T_Pretrain the task w is
drawn uniformly from a fixed pool of M tasks w^(i) ~ N(0, I_D); under T_True (and M = inf) a fresh w ~ N(0, I_D) is
drawn for every prompt.

A sweep over M is one compiled program: every run holds the pool at the sweep's largest M (`task_pool`) and draws
indices below its own M, a traced float32 scalar; M = inf (float32 infinity) switches to fresh tasks. Pools are
nested: the first M tasks of a seed's pool form its pool of size M.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Batch(NamedTuple):
    """A batch of prompts: inputs [B, K, D], tasks [B, D], noisy targets [B, K]."""

    xs: jax.Array
    ws: jax.Array
    ys: jax.Array


def task_pool(key: jax.Array, max_tasks: int, dim: int) -> jax.Array:
    """The pool of `max_tasks` tasks w^(i) ~ N(0, I_D), [max_tasks, D]; its first M rows are the pool of size M."""
    return jax.random.normal(key, (max_tasks, dim), jnp.float32)


def sample_tasks(key: jax.Array, pool: jax.Array, num_tasks: jax.Array, batch_size: int) -> jax.Array:
    """Tasks for `batch_size` prompts, [B, D]: uniform over pool[:M], or fresh N(0, I) tasks when M is inf.

    `num_tasks` (M) may be traced; it must be a whole number in [1, len(pool)] or +inf.
    """
    k_idx, k_fresh = jax.random.split(key)
    num_tasks = jnp.asarray(num_tasks, jnp.float32)
    infinite = jnp.isinf(num_tasks)
    m = jnp.where(infinite, 1.0, num_tasks).astype(jnp.int32)
    idx = jax.random.randint(k_idx, (batch_size,), 0, m)
    fresh = jax.random.normal(k_fresh, (batch_size, pool.shape[1]), pool.dtype)
    return jnp.where(infinite, fresh, pool[idx])


def sample_prompts(key: jax.Array, ws_BxD: jax.Array, num_points: int, noise_std: float | jax.Array) -> Batch:
    """Prompts for given tasks: x ~ N(0, I_D) and y = w^T x + N(0, sigma^2) noise."""
    k_x, k_eps = jax.random.split(key)
    b, d = ws_BxD.shape
    xs = jax.random.normal(k_x, (b, num_points, d), ws_BxD.dtype)
    eps = jax.random.normal(k_eps, (b, num_points), ws_BxD.dtype) * noise_std
    return Batch(xs, ws_BxD, jnp.einsum("bkd,bd->bk", xs, ws_BxD) + eps)


def sample_batch(
    key: jax.Array,
    pool: jax.Array,
    num_tasks: jax.Array,
    batch_size: int,
    num_points: int,
    noise_std: float | jax.Array,
) -> Batch:
    """A batch from T_Pretrain with M = `num_tasks` (T_True when M is inf)."""
    k_task, k_prompt = jax.random.split(key)
    ws = sample_tasks(k_task, pool, num_tasks, batch_size)
    return sample_prompts(k_prompt, ws, num_points, noise_std)


def noiseless_targets(batch: Batch) -> jax.Array:
    """w^T x_k for every position, [B, K]: the target the losses are measured against."""
    return jnp.einsum("bkd,bd->bk", batch.xs, batch.ws)
