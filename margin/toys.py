"""The 2-D data sets and initialisations of the demonstrations (a)-(c).

`toy_data`: linearly separable through the origin, built so that the two toys' programs differ. In z = y x
coordinates, half the points sit near (1, 1) (the hard-margin SVM's single support cluster) and half near (6, -0.4):
the asymmetric program of f = w x1 + uv x2 penalises only w, so it tilts β towards x2 until the far cluster becomes
active, which the SVM never needs: a strictly smaller ℓ2 margin. Labels are random signs, x = y z.

`xor_data`: four Gaussian blobs on a circle with alternating labels (separable by small ReLU nets, with or without
biases, not by a line), with a held-out test set, for the networks of (b)/(c).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from margin import models

TOY_MODELS = {
    "homogeneous": ("linear", models.linear, models.LINEAR_RATES),
    "quasi_homogeneous": ("toy_quasi_homogeneous", models.toy_quasi_homogeneous, models.TOY_RATES),
}


def toy_data(seed: int, n: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """n points in 2-D (float64) and labels in {-1, +1} (see the module docstring)."""
    rng = np.random.default_rng(seed)
    half = n // 2
    z = np.concatenate(
        [
            np.array([1.0, 1.0]) + noise * rng.normal(size=(half, 2)),
            np.array([6.0, -0.4]) + noise * rng.normal(size=(n - half, 2)),
        ]
    )
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    return y[:, None] * z, y


@dataclasses.dataclass(frozen=True)
class ToyInit:
    """init(key) for one run of a toy (hashable). u, v start positive and equal up to noise: uv stays >= 0 under
    gradient flow (u² - v² is conserved), the sign the program's solution has on `toy_data` (a sign-locked factor)."""

    name: str
    scale: float = 0.1

    def __call__(self, key: jax.Array) -> dict:
        if self.name == "linear":
            return {"w": self.scale * jax.random.normal(key, (2,), jnp.float32)}
        if self.name == "toy_quasi_homogeneous":
            k1, k2 = jax.random.split(key)
            return {
                "w": self.scale * jax.random.normal(k1, (), jnp.float32),
                "u": self.scale * (1.0 + 0.5 * jax.random.uniform(k2, (), jnp.float32)),
                "v": jnp.asarray(self.scale, jnp.float32),
            }
        raise KeyError(self.name)


def toy_init(name: str, scale: float = 0.1) -> ToyInit:
    """init(key) for one run of the toy `name` ('linear' or 'toy_quasi_homogeneous')."""
    if name not in ("linear", "toy_quasi_homogeneous"):
        raise KeyError(name)
    return ToyInit(name, float(scale))


def xor_data(seed: int, n: int, radius: float = 2.0, noise: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """n points from four blobs at angles 45°, 135°, 225°, 315° on a circle, labels +1, -1, +1, -1."""
    rng = np.random.default_rng(seed)
    blob = rng.integers(0, 4, n)
    angle = np.pi / 4 + blob * np.pi / 2
    x = radius * np.stack([np.cos(angle), np.sin(angle)], 1) + noise * rng.normal(size=(n, 2))
    y = np.where(blob % 2 == 0, 1.0, -1.0)
    return x, y


def l2_margin(beta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """The Euclidean (input-space) margin min_i y_i β·x_i / ‖β‖ of a linear predictor: the ℓ2 robustness radius."""
    return float(np.min(y * (x @ beta)) / np.linalg.norm(beta))
