"""Accuracy under ℓ2 input perturbations: projected gradient ascent on the loss inside the ε-ball (PGD-ℓ2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp


def pgd_margins(
    f: Callable, params: Any, x: jax.Array, y: jax.Array, eps: float | jax.Array, steps: int = 20
) -> jax.Array:
    """The margins y_i f(x_i + δ_i) after `steps` of normalised gradient descent on them over ‖δ_i‖ ≤ ε.

    f must act on rows independently (no BatchNorm); step size 2.5 ε / steps (the usual PGD schedule), starting at
    δ = 0, keeping the lowest margin seen. A lower bound on the true worst case (an attack, not a certificate).
    """
    step = 2.5 * eps / steps

    def margin(xp):
        return y * f(params, xp)

    grad = jax.grad(lambda xp: jnp.sum(margin(xp)))

    def body(carry, _):
        delta, best = carry
        g = grad(x + delta)
        g = g / jnp.maximum(jnp.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        delta = delta - step * g
        norm = jnp.linalg.norm(delta, axis=1, keepdims=True)
        delta = delta * jnp.minimum(1.0, eps / jnp.maximum(norm, 1e-12))
        best = jnp.minimum(best, margin(x + delta))
        return (delta, best), None

    (_, best), _ = jax.lax.scan(body, (jnp.zeros_like(x), margin(x)), None, length=steps)
    return best


def robust_accuracy(
    f: Callable, params: Any, x: jax.Array, y: jax.Array, eps_grid: Sequence[float], steps: int = 20
) -> jax.Array:
    """Fraction of (x, y) still classified correctly under the PGD-ℓ2 attack, one value per ε in `eps_grid`."""
    return jnp.stack([jnp.mean(pgd_margins(f, params, x, y, e, steps) > 0) for e in eps_grid])
