"""Small classifiers as plain parameter pytrees with a pure `apply(params, x[B, D]) -> logits[B, C]`.

Inputs are flattened images, the form the cutting-plane estimator works in (x0 + θ M lives in R^D). `apply`
functions are module-level (or cached per image shape), so every model of one architecture and shape shares one
compilation of the estimator: the weights are traced arguments, never constants.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Params = list[dict[str, jax.Array]]


def _dense(key: jax.Array, n_in: int, n_out: int) -> dict[str, jax.Array]:
    """PyTorch-default uniform(±1/sqrt(fan_in)) weights and biases."""
    kw, kb = jax.random.split(key)
    bound = 1.0 / jnp.sqrt(n_in)
    return {
        "w": jax.random.uniform(kw, (n_in, n_out), minval=-bound, maxval=bound),
        "b": jax.random.uniform(kb, (n_out,), minval=-bound, maxval=bound),
    }


def init_mlp(key: jax.Array, sizes: Sequence[int]) -> Params:
    """An MLP with layer sizes `sizes` (input, hidden..., classes)."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [_dense(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def mlp_apply(params: Params, x: jax.Array) -> jax.Array:
    """Logits of the ReLU MLP on flattened inputs [B, D]."""
    h = x.reshape(x.shape[0], -1)
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h


def init_cnn(key: jax.Array, in_channels: int, channels: Sequence[int], num_classes: int) -> Params:
    """3x3 SAME convolutions with `channels`, global average pooling and a dense head."""
    keys = jax.random.split(key, len(channels) + 1)
    layers, c_in = [], in_channels
    for k, c in zip(keys[:-1], channels, strict=True):
        d = _dense(k, 9 * c_in, c)
        layers.append({"w": d["w"].reshape(3, 3, c_in, c), "b": d["b"]})
        c_in = c
    return layers + [_dense(keys[-1], c_in, num_classes)]


def _conv3x3(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-1 SAME 3x3 convolution as one matmul over the 9 shifted views (fast on CPU)."""
    _, h, wd, _ = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate([xp[:, i : i + h, j : j + wd, :] for i in range(3) for j in range(3)], axis=-1)
    return patches @ w.reshape(-1, w.shape[-1])


@functools.lru_cache(maxsize=8)
def cnn_apply(image_shape: tuple[int, int, int]):
    """`apply(params, x[B, D])` of the CNN for images of `image_shape` (H, W, C); one function per shape."""

    def apply(params: Params, x: jax.Array) -> jax.Array:
        h = x.reshape((x.shape[0], *image_shape))
        for layer in params[:-1]:
            h = jax.nn.relu(_conv3x3(h, layer["w"]) + layer["b"])
        return h.mean(axis=(1, 2)) @ params[-1]["w"] + params[-1]["b"]

    apply.__name__ = f"cnn_apply_{'x'.join(map(str, image_shape))}"
    return apply


@functools.lru_cache(maxsize=8)
def log_prob(apply):
    """`log_softmax ∘ apply`, one function object per `apply` (the estimator caches compilations on it)."""

    def f(params, x):
        return jax.nn.log_softmax(apply(params, x), axis=-1)

    f.__name__ = f"log_prob_{apply.__name__}"
    return f
