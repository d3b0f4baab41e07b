"""Neural-collapse metrics (Papyan, Han & Donoho 2020) and the simplex-ETF margin of a BatchNorm + linear classifier.

For features h_i (the classifier's input) with labels y_i in K balanced classes, class means μ_c, global mean μ_G:
  nc1  = tr(Σ_W Σ_B^+) / K                          within-class variability relative to between-class
  nc2_cos_max_dev = max_{c≠c'} |cos(μ_c - μ_G, μ_c' - μ_G) + 1/(K-1)|   (equiangular at the simplex ETF)
  nc2_norm_cv     = std_c ‖μ_c - μ_G‖ / mean_c ‖μ_c - μ_G‖             (equinorm)
  nc3  = ‖W/‖W‖_F - M/‖M‖_F‖_F²  with M the centred class means            (self-duality)
  bias_ratio = ‖b‖ / ‖W‖_F, and the normalised margin min_i (f_{i,y} - max_{k≠y} f_{i,k}) / ‖(W, b)‖.

ETF margin. BatchNorm (no affine) makes every feature dimension have batch mean 0 and variance 1, so with balanced
classes Σ_c ‖μ_c‖² ≤ K d, equality when the features have collapsed to their class means. Only (W, b) have positive
rate, so the max-margin program is max min-margin / ‖(W, b)‖; at the simplex ETF (‖μ_c‖² = d, μ_c·μ_c' = -d/(K-1),
W ∝ M, b = 0, which needs d ≥ K-1) the margin is a d K/(K-1) against ‖W‖_F = a sqrt(K d): γ_ETF = sqrt(K d)/(K-1).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def etf_margin(num_classes: int, dim: int) -> float:
    """γ_ETF = sqrt(K d) / (K - 1): the normalised margin of collapsed BatchNorm features and W ∝ means, b = 0."""
    if dim < num_classes - 1:
        raise ValueError(f"a simplex ETF of {num_classes} classes needs dim >= {num_classes - 1}, got {dim}")
    return math.sqrt(num_classes * dim) / (num_classes - 1)


def simplex_etf_features(num_classes: int, dim: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Features collapsed to a simplex ETF that already satisfy BatchNorm's constraints, and their labels.

    dim must be a multiple of K-1: the class means are sqrt(K) [Q, ..., Q] with Q [K, K-1] an orthonormal basis
    of the sum-zero subspace, so every dimension has mean 0 and variance 1 over the balanced batch, ‖μ_c‖² = d and
    μ_c·μ_c' = -d/(K-1).
    """
    k = num_classes
    if dim % (k - 1):
        raise ValueError(f"dim must be a multiple of K-1={k - 1}, got {dim}")
    q = np.linalg.svd(np.eye(k) - 1.0 / k)[0][:, : k - 1]
    means = np.sqrt(k) * np.tile(q, (1, dim // (k - 1)))
    labels = np.repeat(np.arange(k), per_class)
    return means[labels], labels


def metrics(features: jax.Array, labels: jax.Array, w: jax.Array, b: jax.Array, num_classes: int) -> dict:
    """nc1, nc2_cos_max_dev, nc2_norm_cv, nc3, bias_ratio and margin (module docstring); w is [d, K] (x @ w + b)."""
    k = num_classes
    onehot = jax.nn.one_hot(labels, k, dtype=features.dtype)
    counts = jnp.sum(onehot, axis=0)
    means = (onehot.T @ features) / counts[:, None]
    glob = jnp.mean(means, axis=0)
    m = means - glob
    within = features - means[labels]
    sigma_w = within.T @ within / features.shape[0]
    sigma_b = m.T @ m / k
    nc1 = jnp.trace(sigma_w @ jnp.linalg.pinv(sigma_b, rtol=1e-6)) / k
    norms = jnp.linalg.norm(m, axis=1)
    cos = (m @ m.T) / (norms[:, None] * norms[None, :])
    off = ~jnp.eye(k, dtype=bool)
    cos_dev = jnp.max(jnp.where(off, jnp.abs(cos + 1.0 / (k - 1)), 0.0))
    norm_cv = jnp.std(norms) / jnp.mean(norms)
    wt = w.T  # [K, d]
    nc3 = jnp.sum(jnp.square(wt / jnp.linalg.norm(wt) - m / jnp.linalg.norm(m)))
    logits = features @ w + b
    true = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    others = jnp.where(onehot > 0, -jnp.inf, logits)
    margin = jnp.min(true - jnp.max(others, axis=1)) / jnp.sqrt(jnp.sum(w * w) + jnp.sum(b * b))
    return {
        "nc1": nc1,
        "nc2_cos_max_dev": cos_dev,
        "nc2_norm_cv": norm_cv,
        "nc3": nc3,
        "bias_ratio": jnp.linalg.norm(b) / jnp.linalg.norm(w),
        "margin": margin,
    }
