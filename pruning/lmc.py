"""Linear mode connectivity: the error barrier on the straight line between two networks.

    barrier = lmc.error_barrier(lambda p: test_error(p), w_L, w_L_plus_1, n_points=11, mask=m_L)

error barrier = max over alpha in [0, 1] of  E(alpha a + (1 - alpha) b) - (alpha E(a) + (1 - alpha) E(b)),
the paper's definition (Sec. 2, following Frankle et al. 2020), with the alpha grid evaluated as one `vmap`. Between
successive IMP levels it is taken under the denser mask (the interpolated weights are projected on it; since the
sparser network's support lies inside the denser one's, this changes nothing for IMP pairs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from pruning import masks as masks_lib


def interpolate(params_a: Any, params_b: Any, alpha: jax.Array) -> Any:
    """alpha * a + (1 - alpha) * b, leaf by leaf."""
    return jax.tree.map(lambda a, b: alpha * a + (1.0 - alpha) * b, params_a, params_b)


def interpolation_curve(
    metric_fn: Callable[[Any], jax.Array],
    params_a: Any,
    params_b: Any,
    n_points: int,
    mask: Any | None = None,
) -> tuple[jax.Array, jax.Array]:
    """(alphas, metric at each alpha) on the evenly spaced grid alpha = 0, 1/(n-1), ..., 1 (vmapped over alpha).

    alpha = 1 is `params_a`, alpha = 0 is `params_b`.
    """
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    alphas = jnp.linspace(0.0, 1.0, n_points, dtype=jnp.float32)

    def at(alpha):
        p = interpolate(params_a, params_b, alpha)
        if mask is not None:
            p = masks_lib.apply_masks(p, mask)
        return metric_fn(p)

    return alphas, jax.vmap(at)(alphas)


def barrier_from_curve(alphas: jax.Array, values: jax.Array) -> jax.Array:
    """max_alpha [E(alpha) - (alpha E(1) + (1 - alpha) E(0))] from a curve whose ends are alpha = 0 and 1.

    `values` may carry trailing axes (several metrics at once): the barrier is taken for each.
    """
    a = alphas.reshape(alphas.shape[0], *([1] * (values.ndim - 1)))
    chord = a * values[-1] + (1.0 - a) * values[0]
    return jnp.max(values - chord, axis=0)


def error_barrier(
    metric_fn: Callable[[Any], jax.Array],
    params_a: Any,
    params_b: Any,
    n_points: int,
    mask: Any | None = None,
) -> jax.Array:
    """The error barrier between `params_a` and `params_b` for `metric_fn` (train loss, test error...).

    max_alpha [E(alpha a + (1-alpha) b) - (alpha E(a) + (1-alpha) E(b))] over `n_points` evenly spaced alphas
    including both ends (so it is >= 0 up to rounding; a convex metric gives 0 up to rounding). `mask`: evaluate
    the interpolated networks under this mask. A `metric_fn` returning a vector gives one barrier per entry.
    Jit/vmap-compatible; `n_points` is static.
    """
    alphas, values = interpolation_curve(metric_fn, params_a, params_b, n_points, mask)
    return barrier_from_curve(alphas, values)
