"""Closed-form two-class log-probability functions whose target regions have a known codimension.

`closed_form(params, x)`: the logit difference of class 1 over class 0 is
    h · (w·x − b) + t · 10 · (1 − |A(x − c)| / ε),
so h=1, t=0 is the halfspace {w·x ≥ b} (d* = 1: a line meets a hyperplane) and h=0, t=1 the ε-tube around the
affine flat {A(x − c) = 0} of codimension m = rank(A) (Gordon: a random d-flat meets it iff d ≥ m). One function for
every case, so the estimator compiles once per shape.

`box_tube` places a tube inside the pixel box [0, 1]^D: its flat passes through the box's centre and the start
points lie in the box at a given distance from it, so a search clipped to the box meets it as Gordon's theorem says
(a halfspace, by contrast, is not a known answer inside the box: its boundary meets a clipped ray only where the box
reaches it).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def closed_form(params, x):
    """Log-probabilities [B, 2] (see the module docstring)."""
    dist = jnp.sqrt(jnp.sum(jnp.square((x - params["c"]) @ params["a"].T), axis=-1) + 1e-12)
    z = params["h"] * (x @ params["w"] - params["b"]) + params["t"] * 10.0 * (1.0 - dist / params["eps"])
    logits = jnp.stack([jnp.zeros_like(z), z], axis=-1)
    return logits - jnp.logaddexp(logits[:, :1], logits[:, 1:])


def halfspace(dim: int, distance: float, num_starts: int, seed: int = 0, mmax: int = 4):
    """(params, start points at `distance` from the halfspace {w·x ≥ b}, codimension-like d* = 1)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim)
    w /= np.linalg.norm(w)
    x0 = rng.normal(size=(num_starts, dim))
    x0 -= (x0 @ w)[:, None] * w
    return _params(dim, mmax, w=w, b=distance, h=5.0, t=0.0), x0.astype(np.float32)


def tube(dim: int, m: int, num_starts: int, distance: float = 2.0, eps: float = 0.2, seed: int = 0, mmax: int = 4):
    """(params, start points at `distance` from the flat) of the ε-tube of codimension `m` (m <= mmax)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, mmax)))
    a = q.T.copy()
    a[m:] = 0.0
    x = rng.normal(size=(num_starts, dim))
    x -= (x @ a[:m].T) @ a[:m]
    u = rng.normal(size=(num_starts, m))
    u *= distance / np.linalg.norm(u, axis=1, keepdims=True)
    return _params(dim, mmax, a=a, eps=eps), (x + u @ a[:m]).astype(np.float32)


def box_tube(dim: int, m: int, num_starts: int, distance: float = 0.3, eps: float = 0.05, seed: int = 0,
             spread: float = 0.2, mmax: int = 4):  # fmt: skip
    """(params, start points in [0, 1]^D at `distance` from the flat through the centre) of an ε-tube of
    codimension `m`; the start points also vary by up to ±`spread` along the flat."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, mmax)))
    a = q.T.copy()
    a[m:] = 0.0
    centre = np.full(dim, 0.5)
    x = rng.uniform(-spread, spread, size=(num_starts, dim))
    x -= (x @ a[:m].T) @ a[:m]
    u = rng.normal(size=(num_starts, m))
    u *= distance / np.linalg.norm(u, axis=1, keepdims=True)
    x0 = np.clip(centre + x + u @ a[:m], 0.0, 1.0)
    params = _params(dim, mmax, a=a, eps=eps)
    return {**params, "c": jnp.asarray(centre, jnp.float32)}, x0.astype(np.float32)


def _params(dim, mmax, a=None, w=None, b=0.0, h=0.0, t=1.0, eps=0.2):
    f = jnp.float32
    return {
        "a": jnp.asarray(np.zeros((mmax, dim)) if a is None else a, jnp.float32),
        "c": jnp.zeros(dim),
        "w": jnp.asarray(np.zeros(dim) if w is None else w, jnp.float32),
        "b": f(b),
        "h": f(h),
        "t": f(t),
        "eps": f(eps),
    }
