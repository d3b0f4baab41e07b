"""Small classifiers as plain parameter pytrees with a pure `apply(params, x[B, D]) -> logits[B, C]`.

Inputs are flattened images, the form the cutting-plane estimator works in (x0 + θ M lives in R^D). The apply
functions are module-level functions or frozen dataclasses (equal when their shapes are equal), so every model of
one architecture and shape shares one compilation of the estimator: the weights are traced arguments, never
constants. Initialisation and the convolution come from `common.nn` (PyTorch's defaults).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from common import nn

Params = list[dict[str, jax.Array]]


def init_mlp(key: jax.Array, sizes: Sequence[int]) -> Params:
    """An MLP with layer sizes `sizes` (input, hidden..., classes), PyTorch-default uniform init."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [nn.dense_init(k, a, b, kernel="w", bias="b") for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def mlp_apply(params: Params, x: jax.Array) -> jax.Array:
    """Logits of the ReLU MLP on flattened inputs [B, D]."""
    h = x.reshape(x.shape[0], -1)
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h


def init_cnn(key: jax.Array, in_channels: int, channels: Sequence[int], num_classes: int) -> Params:
    """3x3 convolutions with `channels` (ReLU), global average pooling and a dense head."""
    keys = jax.random.split(key, len(channels) + 1)
    layers, c_in = [], in_channels
    for k, c in zip(keys[:-1], channels, strict=True):
        conv = nn.conv_init(k, 3, 3, c_in, c)
        layers.append({"w": conv["kernel"], "b": conv["bias"]})
        c_in = c
    return layers + [nn.dense_init(keys[-1], c_in, num_classes, kernel="w", bias="b")]


@dataclasses.dataclass(frozen=True)
class CNN:
    """`apply(params, x[B, D])` of the CNN for images of `image_shape` (H, W, C)."""

    image_shape: tuple[int, int, int]

    def __call__(self, params: Params, x: jax.Array) -> jax.Array:
        h = x.reshape((x.shape[0], *self.image_shape))
        for layer in params[:-1]:
            h = jax.nn.relu(nn.conv2d(h, layer["w"]) + layer["b"])
        return h.mean(axis=(1, 2)) @ params[-1]["w"] + params[-1]["b"]


def group_norm(h: jax.Array, p: dict[str, jax.Array], groups: int = 8, eps: float = 1e-5) -> jax.Array:
    """GroupNorm of one batch [B, H, W, C] (statistics per example and group of channels; no batch statistics, so
    the apply stays a pure function of (params, x)), then the per-channel scale and bias."""
    b, hh, ww, c = h.shape
    g = math.gcd(groups, c)
    z = h.reshape(b, hh, ww, g, c // g)
    mean = z.mean(axis=(1, 2, 4), keepdims=True)
    var = jnp.mean(jnp.square(z - mean), axis=(1, 2, 4), keepdims=True)
    z = ((z - mean) * jax.lax.rsqrt(var + eps)).reshape(h.shape)
    return z * p["scale"] + p["bias"]


def _gn(c: int) -> dict[str, jax.Array]:
    return {"scale": jnp.ones((c,)), "bias": jnp.zeros((c,))}


@dataclasses.dataclass(frozen=True)
class ResNet:
    """CIFAR ResNet-(6n+2) and WideResNet-(6n+4)-k as `apply(params, x[B, D])`: a 3x3 stem, three stages of `blocks`
    = n basic blocks of widths (w, 2w, 4w) (stride 2 at the start of stages 2 and 3, with a 1x1 convolution
    shortcut), global average pooling, a dense head. ResNet-20: n = 3, w = 16; WideResNet-16-4: n = 2, w = 64
    (16·k). GroupNorm instead of BatchNorm, so the function has no batch statistics (one image's logits do not
    depend on the others' in the batch, as the estimator needs)."""

    image_shape: tuple[int, int, int]
    blocks: int = 3
    width: int = 16

    def widths(self) -> tuple[int, int, int]:
        return (self.width, 2 * self.width, 4 * self.width)

    def init(self, key: jax.Array, num_classes: int) -> dict:
        keys = iter(jax.random.split(key, 2 + 3 * 3 * self.blocks))
        w0 = self.width
        stem = nn.conv_init(next(keys), 3, 3, self.image_shape[-1], w0, bias=False)["kernel"]
        params: dict = {"stem": {"w": stem, "gn": _gn(w0)}, "blocks": []}
        c_in = w0
        for s, c in enumerate(self.widths()):
            for b in range(self.blocks):
                blk = {
                    "conv1": {"w": nn.conv_init(next(keys), 3, 3, c_in, c, bias=False)["kernel"], "gn": _gn(c)},
                    "conv2": {"w": nn.conv_init(next(keys), 3, 3, c, c, bias=False)["kernel"], "gn": _gn(c)},
                }
                if s > 0 and b == 0:
                    blk["short"] = {"w": nn.conv_init(next(keys), 1, 1, c_in, c, bias=False)["kernel"], "gn": _gn(c)}
                params["blocks"].append(blk)
                c_in = c
        params["head"] = nn.dense_init(next(keys), c_in, num_classes, kernel="w", bias="b")
        return params

    def __call__(self, params: dict, x: jax.Array) -> jax.Array:
        h = x.reshape((x.shape[0], *self.image_shape))
        h = jax.nn.relu(group_norm(nn.conv2d(h, params["stem"]["w"]), params["stem"]["gn"]))
        for blk in params["blocks"]:
            stride = 2 if "short" in blk else 1
            z = jax.nn.relu(group_norm(nn.conv2d(h, blk["conv1"]["w"], stride), blk["conv1"]["gn"]))
            z = group_norm(nn.conv2d(z, blk["conv2"]["w"]), blk["conv2"]["gn"])
            sc = group_norm(nn.conv2d(h, blk["short"]["w"], stride), blk["short"]["gn"]) if "short" in blk else h
            h = jax.nn.relu(z + sc)
        return h.mean(axis=(1, 2)) @ params["head"]["w"] + params["head"]["b"]


@dataclasses.dataclass(frozen=True)
class LogProb:
    """`log_softmax ∘ apply`: the estimator's log_prob_fn for a model's apply (equal for equal applies)."""

    apply: Callable

    def __call__(self, params, x: jax.Array) -> jax.Array:
        return jax.nn.log_softmax(self.apply(params, x), axis=-1)
