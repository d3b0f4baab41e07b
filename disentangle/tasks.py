"""The tasks: independent (or correlated) uniform factors, the data maps of App. A.4/A.5, and a sprites image set.

Factors are e ~ U[0, 1]^F. With correlation rho they come from a Gaussian copula: g = sqrt(rho) s + sqrt(1 - rho) n
(s shared, n independent standard normals), e = Phi(g), so every pair of factors has the same rank correlation and
each factor stays exactly uniform (the marginals, and so the ranges, do not change with rho).

The data maps (fixed per run, drawn from the run's key):
  - "linear_ae": x = e A, A [F, D] with orthonormal rows (Theorem 2's scaled-orthonormal read-out), target x;
  - "deep_ae": x = a random two-layer ReLU MLP of e, target x;
  - "supervised": x = e O (O orthogonal), optionally cubed elementwise (the nonlinear variant), target y = e W.

`sprites()` renders a dSprites-like image set with known factors (shape, scale, x, y) in numpy, offline.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from disentangle import models


def sample_factors(key: jax.Array, n: int, num_factors: int, rho: jax.Array | float = 0.0) -> jax.Array:
    """[n, num_factors] uniform factors on [0, 1] with pairwise Gaussian-copula correlation rho (0: independent)."""
    k_s, k_n = jax.random.split(key)
    rho = jnp.clip(jnp.asarray(rho, jnp.float32), 0.0, 0.999)
    shared = jax.random.normal(k_s, (n, 1))
    own = jax.random.normal(k_n, (n, num_factors))
    g = jnp.sqrt(rho) * shared + jnp.sqrt(1.0 - rho) * own
    return jax.scipy.stats.norm.cdf(g)


def make_task(key: jax.Array, cfg: models.ModelConfig, num_factors: int, cubic: bool = False) -> dict:
    """The run's fixed data map (a dict of arrays) for `cfg.kind`."""
    k1, k2, k3 = jax.random.split(key, 3)
    if cfg.kind == "linear_ae":
        q, _ = jnp.linalg.qr(jax.random.normal(k1, (cfg.input_dim, num_factors)))
        return {"A": q.T}
    if cfg.kind == "deep_ae":
        width = 4 * cfg.input_dim
        return {
            "W1": jax.random.normal(k1, (num_factors, width)) * jnp.sqrt(2.0 / num_factors),
            "b1": jax.random.uniform(k2, (width,), minval=-1.0, maxval=0.0),
            "W2": jax.random.normal(k3, (width, cfg.input_dim)) / jnp.sqrt(width),
        }
    if cfg.kind == "supervised":
        o, _ = jnp.linalg.qr(jax.random.normal(k1, (num_factors, num_factors)))
        w = jax.random.normal(k2, (num_factors, cfg.output_dim)) / jnp.sqrt(num_factors)
        return {"O": o, "W": w}
    raise ValueError(f"no synthetic task for model kind {cfg.kind!r}")


def task_data(
    task: Mapping[str, jax.Array], e: jax.Array, kind: str, cubic: bool = False
) -> tuple[jax.Array, jax.Array]:
    """(inputs, targets) for factors e [n, F] under the run's data map."""
    if kind == "linear_ae":
        x = e @ task["A"]
        return x, x
    if kind == "deep_ae":
        x = jax.nn.relu(e @ task["W1"] + task["b1"]) @ task["W2"]
        return x, x
    if kind == "supervised":
        x = (e - 0.5) @ task["O"]
        if cubic:
            x = 4.0 * x**3
        return x, e @ task["W"]
    raise ValueError(f"no synthetic task for kind {kind!r}")


SPRITE_SHAPES = ("square", "ellipse", "triangle")


def sprites(size: int = 24, num_scales: int = 4, num_positions: int = 10) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A dSprites-like set: every combination of shape (3), scale, x and y position, rendered as binary images.

    Returns (images [N, size*size] float32 in {0, 1}, factors [N, 4] float32 (shape index, scale index, x index,
    y index), factor names). Scales run from 0.5 to 1 of the largest half-width (size/6); positions are evenly spaced
    so every sprite lies inside the canvas.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    max_r = size / 6.0
    scales = np.linspace(0.5, 1.0, num_scales) * max_r
    pos = np.linspace(max_r + 0.5, size - max_r - 0.5, num_positions)
    images, factors = [], []
    for si, shape in enumerate(SPRITE_SHAPES):
        for ri, r in enumerate(scales):
            for xi, cx in enumerate(pos):
                for yi, cy in enumerate(pos):
                    dx, dy = xx - cx, yy - cy
                    if shape == "square":
                        m = (np.abs(dx) <= 0.8 * r) & (np.abs(dy) <= 0.8 * r)
                    elif shape == "ellipse":
                        m = (dx / r) ** 2 + (dy / (0.6 * r)) ** 2 <= 1.0
                    else:
                        m = (dy <= 0.8 * r) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.5)
                    images.append(m.reshape(-1))
                    factors.append((si, ri, xi, yi))
    return (
        np.asarray(images, np.float32),
        np.asarray(factors, np.float32),
        ("shape", "scale", "x", "y"),
    )
