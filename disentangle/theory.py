"""Theorem 1's worked example: the energy of a rotated, shifted-to-be-nonnegative code of two uniform factors.

Two independent factors e ~ U[-1, 1]^2 are coded by z = R(theta) e + b, with b the smallest shift that makes z
nonnegative on the whole support. Each row of R(theta) is (cos, -sin) or (sin, cos), whose minimum over the square is
-(|cos| + |sin|), so b_i = |cos theta| + |sin theta| and

    E||z||^2 = E||R e||^2 + ||b||^2 = 2/3 + 2 (|cos theta| + |sin theta|)^2,

minimal (8/3) exactly at the axis-aligned (disentangled) angles theta = k pi / 2 and maximal (14/3) at
theta = pi/4. The total variance (2/3) does not depend on theta: only the nonnegativity shift does.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def rotation(theta: jax.Array) -> jax.Array:
    """The 2x2 rotation matrix R(theta)."""
    c, s = jnp.cos(theta), jnp.sin(theta)
    return jnp.array([[c, -s], [s, c]])


def rotated_code_energy(theta: jax.Array) -> jax.Array:
    """Analytic E||z||^2 = 2/3 + 2(|cos theta| + |sin theta|)^2 of the minimal nonnegative rotated code (Thm 1)."""
    theta = jnp.asarray(theta, jnp.float32)
    return 2.0 / 3.0 + 2.0 * jnp.square(jnp.abs(jnp.cos(theta)) + jnp.abs(jnp.sin(theta)))


@functools.partial(jax.jit, static_argnames=("num_samples",))
def simulated_code_energy(key: jax.Array, thetas: jax.Array, num_samples: int = 200_000) -> jax.Array:
    """Monte Carlo E||z||^2 per theta: samples e ~ U[-1,1]^2, rotates them, shifts each neuron by minus its sample
    minimum (the smallest shift that makes the sampled code nonnegative) and averages ||z||^2.

    One shared set of `num_samples` samples serves every theta.
    """
    e = jax.random.uniform(key, (num_samples, 2), minval=-1.0, maxval=1.0)

    def one(theta):
        z = e @ rotation(theta).T
        z = z - jnp.min(z, axis=0)
        return jnp.mean(jnp.sum(jnp.square(z), axis=1))

    return jax.vmap(one)(thetas)
