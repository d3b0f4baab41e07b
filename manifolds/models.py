"""Small classifiers as plain parameter pytrees with a pure `apply(params, x[B, D]) -> logits[B, C]`.

Inputs are flattened images, the form the cutting-plane estimator works in (x0 + θ M lives in R^D). The apply
functions are module-level functions or frozen dataclasses (equal when their shapes are equal), so every model of
one architecture and shape shares one compilation of the estimator: the weights are traced arguments, never
constants. Initialisation and the convolution come from `common.nn` (PyTorch's defaults).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax

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


@dataclasses.dataclass(frozen=True)
class LogProb:
    """`log_softmax ∘ apply`: the estimator's log_prob_fn for a model's apply (equal for equal applies)."""

    apply: Callable

    def __call__(self, params, x: jax.Array) -> jax.Array:
        return jax.nn.log_softmax(self.apply(params, x), axis=-1)
