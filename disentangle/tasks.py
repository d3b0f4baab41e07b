"""The tasks: independent (or correlated) uniform factors, the data maps of App. A.4/A.5, and a sprites image set.

Factors are e ~ U[0, 1]^F. With correlation rho each factor copies one shared uniform draw with probability
sqrt(rho) (else it is its own uniform draw): every pair has correlation rho and every factor stays exactly uniform
(the marginals, and so the ranges, do not change with rho).

The data maps (fixed per run, drawn from the run's key):
  - "linear_ae": x = e A, A [F, D] with orthonormal rows (Theorem 2's scaled-orthonormal read-out), target x;
  - "deep_ae": x = a random two-layer ReLU MLP of e, target x;
  - "supervised": x = e O (O orthogonal), optionally cubed elementwise (the nonlinear variant), target y = e W.

`sprites()` renders a dSprites-like image set with known factors (shape, scale, x, y) in numpy, offline.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from disentangle import models


def sample_factors(
    key: jax.Array, n: int, num_factors: int, rho: jax.Array | float = 0.0, corner: jax.Array | float = 0.0
) -> jax.Array:
    """[n, num_factors] factors in [0, 1]: independent U[0, 1] by default; correlated with pairwise correlation rho
    on the full box; or correlated on a support with two corners cut off each pair of factors (`corner` > 0).

    rho: each factor copies a shared uniform draw s with probability sqrt(rho) and is an independent uniform
    otherwise, so two factors coincide with probability rho: corr(e_i, e_j) = rho while every marginal stays U[0, 1]
    and the joint support stays the whole box (every combination of values, the corners included, still occurs).

    corner in (0, 1): factors (0, 1), (2, 3), ... are drawn uniformly on the unit square without its two
    off-diagonal corners {|u - v| > 1 - corner}, the band |u - v| <= w = 1 - corner (an odd last factor stays
    U[0, 1]): the factors are correlated and, unlike the rho case, the extreme combinations (u high with v low) never
    occur, the entangling condition of the paper's theory. Exact sampling: the offset d = u - v has density
    proportional to 1 - |d| on [-w, w] (the length of the square's diagonal line at offset d), drawn by inverting its
    distribution function; u is then uniform on that line.
    """
    k_s, k_u, k_c, k_d, k_sign, k_pos = jax.random.split(key, 6)
    p = jnp.sqrt(jnp.clip(jnp.asarray(rho, jnp.float32), 0.0, 1.0))
    shared = jax.random.uniform(k_s, (n, 1))
    own = jax.random.uniform(k_u, (n, num_factors))
    copy = jax.random.uniform(k_c, (n, num_factors)) < p
    e = jnp.where(copy, shared, own)
    pairs = num_factors // 2
    if pairs == 0:
        return e
    w = 1.0 - jnp.clip(jnp.asarray(corner, jnp.float32), 0.0, 1.0)
    q = jax.random.uniform(k_d, (n, pairs))
    t = 1.0 - jnp.sqrt(1.0 - 2.0 * q * (w - w * w / 2.0))  # |d|: density proportional to 1 - t on [0, w]
    d = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n, pairs)), t, -t)
    u = jnp.maximum(d, 0.0) + jax.random.uniform(k_pos, (n, pairs)) * (1.0 - jnp.abs(d))
    band = jnp.stack([u, u - d], axis=-1).reshape(n, 2 * pairs)
    band = jnp.concatenate([band, e[:, 2 * pairs :]], axis=1)
    return jnp.where(jnp.asarray(corner) > 0, band, e)


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

    Returns (images [N, size*size] float32 in [0, 1], factors [N, 4] float32 (shape index, scale index, x index,
    y index), factor names). Scales run from 0.5 to 1 of the largest half-width (size/6); positions are evenly spaced
    so every sprite lies inside the canvas. Each pixel is the covered fraction of a 4 x 4 subpixel grid
    (anti-aliased), so sprites that differ by less than a pixel still give different images.
    """
    sub = 4
    yy, xx = (np.mgrid[0 : size * sub, 0 : size * sub].astype(np.float32) + 0.5) / sub
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
                    images.append(m.reshape(size, sub, size, sub).mean((1, 3)).reshape(-1))
                    factors.append((si, ri, xi, yi))
    return (
        np.asarray(images, np.float32),
        np.asarray(factors, np.float32),
        ("shape", "scale", "x", "y"),
    )


class FactorDataUnavailable(Exception):
    """A tfds factor data set (dSprites, Shapes3D) is not available offline."""


_TFDS_FACTORS = {
    "dsprites": ("label_shape", "label_scale", "label_orientation", "label_x_position", "label_y_position"),
    "shapes3d": (
        "label_floor_hue",
        "label_wall_hue",
        "label_object_hue",
        "label_scale",
        "label_shape",
        "label_orientation",
    ),
}


def tfds_factor_images(
    name: str, image_size: int, max_images: int, data_dir: str | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, tuple]:
    """dSprites or Shapes3D from a prepared tfds directory: a random subset of `max_images` images, greyscaled and
    area-resized to image_size x image_size, flattened to [N, image_size^2] in [0, 1], with every ground-truth factor
    label [N, F]. Never downloads (`download=False`, and the set must be prepared first); raises
    FactorDataUnavailable when tensorflow-datasets or the prepared set is missing.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise FactorDataUnavailable(
            f"vae.dataset={name!r} needs tensorflow-datasets (pip install -e '.[data]'); use 'sprites' offline"
        ) from None
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or None
    try:
        prepared = tfds.builder(name, data_dir=data_dir).is_prepared()
    except (ModuleNotFoundError, OSError, AssertionError, KeyError) as e:  # builder needs TensorFlow, unreadable dir
        raise FactorDataUnavailable(f"tfds set {name!r} cannot be opened offline ({type(e).__name__})") from None
    if not prepared:
        raise FactorDataUnavailable(f"tfds set {name!r} is not prepared in {data_dir or 'the tfds default directory'}")
    source = tfds.data_source(name, split="train", data_dir=data_dir, download=False)
    n = len(source)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(max_images, n), replace=False))
    keys = _TFDS_FACTORS[name]
    images, factors = [], []
    for start in range(0, len(idx), 4096):
        for rec in source.__getitems__(idx[start : start + 4096].tolist()):
            img = np.asarray(rec["image"], np.float32)
            img = img.mean(-1) if img.ndim == 3 else img
            img = img / (255.0 if img.max() > 1.0 else 1.0)
            f = img.shape[0] // image_size
            img = img[: f * image_size, : f * image_size].reshape(image_size, f, image_size, f).mean((1, 3))
            images.append(img.reshape(-1))
            factors.append([float(rec[k]) for k in keys])
    return np.asarray(images, np.float32), np.asarray(factors, np.float32), tuple(k[6:] for k in keys)
