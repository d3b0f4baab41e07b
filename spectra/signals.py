"""Random signals and noise in the package's convention: Y = S + X, X_ij ~ N(0, 1/M), S with Haar
vectors."""

from __future__ import annotations

import math

import jax
import numpy as np


def _rng(key: jax.Array) -> np.random.Generator:
    """A numpy generator seeded by a jax key: reproducible from the key, and no XLA compilation of
    the random-number kernels for every new matrix shape (a second or more each on CPU)."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def random_orthonormal(key: jax.Array, n: int, k: int) -> np.ndarray:
    """An n x k float64 matrix with Haar-distributed orthonormal columns (QR of a Gaussian, signs fixed)."""
    g = _rng(key).standard_normal((n, k))
    q, r = np.linalg.qr(g)
    return q * np.sign(np.diagonal(r))[None, :]


def signal_matrix(key: jax.Array, n: int, m: int, singular_values: np.ndarray) -> np.ndarray:
    """S = U diag(singular_values) V^T, N x M, with Haar U (N x K) and V (M x K); K =
    len(singular_values)."""
    sv = np.asarray(singular_values, dtype=np.float64)
    k = sv.shape[0]
    if k > min(n, m):
        raise ValueError(f"rank {k} exceeds min(N, M) = {min(n, m)}")
    ku, kv = jax.random.split(key)
    return (random_orthonormal(ku, n, k) * sv[None, :]) @ random_orthonormal(kv, m, k).T


def esm_singular_values(n: int, b: float, s: float) -> np.ndarray:
    """Extensive spike model: K = round(b N) singular values equal to s (at least one)."""
    k = max(1, int(round(b * n)))
    return np.full(k, float(s), dtype=np.float32)


def continuous_singular_values(n: int, s_max: float) -> np.ndarray:
    """A continuous signal spectrum: N singular values evenly spread on (0, s_max]."""
    return (s_max * np.arange(1, n + 1) / n).astype(np.float32)


def noise(key: jax.Array, n: int, m: int) -> np.ndarray:
    """X with iid N(0, 1/M) entries, N x M, float64 (the package's noise convention)."""
    return _rng(key).standard_normal((n, m)) / math.sqrt(m)


def singular_values(y: jax.Array | np.ndarray) -> np.ndarray:
    """Singular values of y (descending), from eigvalsh of the smaller Gram matrix, in float64."""
    a = np.asarray(y, dtype=np.float64)
    gram = a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a
    lam = np.linalg.eigvalsh(gram)[::-1]
    return np.sqrt(np.maximum(lam, 0.0))
