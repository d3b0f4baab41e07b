"""The classifiers pruned here, as plain pytrees: an MLP (the digits runs) and ResNet-20 with BatchNorm (CIFAR-10).

A model is a `Model` with `init(key) -> (params, stats)` and `apply(params, stats, x, train) -> (logits, stats)`.
`stats` holds BatchNorm running statistics (a 0-d placeholder for the MLP). Kernels are the leaves named "kernel"
(dense [in, out], convolutions HWIO), the leaves `masks.is_kernel` prunes; biases and BatchNorm scales/offsets are
not pruned. The output layer is the leaf under "head".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from common import nn


def is_output(path, leaf) -> bool:
    """The output layer's kernel: a leaf below a key named "head"."""
    return any(getattr(k, "key", None) == "head" for k in path)


def _dense_init(key: jax.Array, n_in: int, n_out: int) -> dict[str, jax.Array]:
    return nn.dense_init(key, n_in, n_out)


@dataclasses.dataclass(frozen=True)
class MLP:
    """Fully connected ReLU network `in - widths... - num_classes` on flattened inputs (LeNet-300-100 shape)."""

    input_dim: int
    widths: tuple[int, ...]
    num_classes: int

    def init(self, key: jax.Array) -> tuple[dict[str, Any], jax.Array]:
        """PyTorch's nn.Linear default (uniform in +-1/sqrt(fan_in)), every leaf cut from one uniform draw (one
        random-bits kernel to compile instead of one per leaf)."""
        sizes = (self.input_dim, *self.widths, self.num_classes)
        shapes = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            shapes += [(a, b), (b,)]
        total = sum(int(np.prod(s)) for s in shapes)
        flat = jax.random.uniform(key, (total,), minval=-1.0, maxval=1.0)
        leaves, offset = [], 0
        for i, shp in enumerate(shapes):
            n = int(np.prod(shp))
            fan_in = sizes[i // 2]
            leaves.append(flat[offset : offset + n].reshape(shp) / np.sqrt(fan_in))
            offset += n
        layers = [{"kernel": leaves[2 * i], "bias": leaves[2 * i + 1]} for i in range(len(sizes) - 1)]
        return {"hidden": layers[:-1], "head": layers[-1]}, jnp.zeros((), jnp.float32)

    def apply(self, params, stats, x, train: bool = False):
        h = x.reshape(x.shape[0], -1)
        for layer in params["hidden"]:
            h = jax.nn.relu(h @ layer["kernel"] + layer["bias"])
        return h @ params["head"]["kernel"] + params["head"]["bias"], stats


@dataclasses.dataclass(frozen=True)
class CNN:
    """A small all-convolutional network: 3x3 convolutions (no bias, Kaiming-normal fan-in init) with ReLU, the
    given `widths` and `strides`, global average pooling, and a dense head (PyTorch-default init). Without
    normalisation (the default) large early learning rates make it unstable to SGD noise at initialisation (the
    digits runs); `batchnorm=True` puts a BatchNorm after every convolution, as in the paper's ResNets."""

    widths: tuple[int, ...] = (8, 16, 16)
    strides: tuple[int, ...] = (1, 2, 2)
    num_classes: int = 10
    in_channels: int = 1
    batchnorm: bool = False  # BatchNorm (scale 1, bias 0; not pruned) after every convolution, before the ReLU

    def init(self, key: jax.Array) -> tuple[dict[str, Any], Any]:
        keys = jax.random.split(key, len(self.widths) + 1)
        convs, stats, c_in = [], [], self.in_channels
        for k, c in zip(keys[:-1], self.widths, strict=True):
            convs.append({"kernel": jax.random.normal(k, (3, 3, c_in, c)) * np.sqrt(2.0 / (9 * c_in))})
            if self.batchnorm:
                convs[-1]["bn"], st = nn.batch_norm_init(c)
                stats.append({"bn": st})
            c_in = c
        params = {"convs": convs, "head": _dense_init(keys[-1], c_in, self.num_classes)}
        return params, (stats if self.batchnorm else jnp.zeros((), jnp.float32))

    def apply(self, params, stats, x, train: bool = False):
        h, new = x, []
        for i, (layer, s) in enumerate(zip(params["convs"], self.strides, strict=True)):
            h = nn.conv2d(h, layer["kernel"], s)
            if self.batchnorm:
                h, bn = nn.batch_norm(h, layer["bn"], stats[i]["bn"], train)
                new.append({"bn": bn})
            h = jax.nn.relu(h)
        logits = h.mean(axis=(1, 2)) @ params["head"]["kernel"] + params["head"]["bias"]
        return logits, (new if self.batchnorm else stats)


def _conv(x: jax.Array, w: jax.Array, stride: int) -> jax.Array:
    return nn.conv2d(x, w, stride)


def _bn_params(c: int) -> dict[str, jax.Array]:
    return nn.batch_norm_init(c)[0]


def _bn_stats(c: int) -> dict[str, jax.Array]:
    return nn.batch_norm_init(c)[1]


def _batch_norm(h, p, s, train: bool):
    return nn.batch_norm(h, p, s, train)


@dataclasses.dataclass(frozen=True)
class ResNet:
    """CIFAR ResNet-(6n+2) as in open_lth's cifar_resnet: 3x3 stem, three stages of n BasicBlocks (widths w, 2w, 4w,
    stride 2 at the start of stages 2 and 3 with a 1x1 conv + BatchNorm shortcut), ReLU, global average pooling,
    dense head. ResNet-20: n = 3, w = 16 (~272k parameters). Convolutions: Kaiming-normal (fan-in), no bias."""

    blocks: int = 3
    width: int = 16
    num_classes: int = 10
    in_channels: int = 3

    def widths(self) -> Sequence[int]:
        return (self.width, 2 * self.width, 4 * self.width)

    def init(self, key: jax.Array) -> tuple[dict[str, Any], dict[str, Any]]:
        keys = iter(jax.random.split(key, 3 + 3 * 3 * self.blocks))

        def conv(k, kh, cin, cout):
            return jax.random.normal(k, (kh, kh, cin, cout)) * np.sqrt(2.0 / (kh * kh * cin))

        w0 = self.widths()[0]
        params: dict[str, Any] = {"stem": {"kernel": conv(next(keys), 3, self.in_channels, w0), "bn": _bn_params(w0)}}
        stats: dict[str, Any] = {"stem": {"bn": _bn_stats(w0)}}
        blocks, bstats = [], []
        c_in = w0
        for s, c in enumerate(self.widths()):
            for b in range(self.blocks):
                blk = {
                    "conv1": {"kernel": conv(next(keys), 3, c_in, c), "bn": _bn_params(c)},
                    "conv2": {"kernel": conv(next(keys), 3, c, c), "bn": _bn_params(c)},
                }
                st = {"conv1": {"bn": _bn_stats(c)}, "conv2": {"bn": _bn_stats(c)}}
                if s > 0 and b == 0:
                    blk["short"] = {"kernel": conv(next(keys), 1, c_in, c), "bn": _bn_params(c)}
                    st["short"] = {"bn": _bn_stats(c)}
                blocks.append(blk)
                bstats.append(st)
                c_in = c
        params["blocks"], stats["blocks"] = blocks, bstats
        params["head"] = _dense_init(next(keys), c_in, self.num_classes)
        return params, stats

    def apply(self, params, stats, x, train: bool = False):
        new: dict[str, Any] = {}
        h, bn = _batch_norm(_conv(x, params["stem"]["kernel"], 1), params["stem"]["bn"], stats["stem"]["bn"], train)
        new["stem"] = {"bn": bn}
        h = jax.nn.relu(h)
        new_blocks = []
        for i, (blk, st) in enumerate(zip(params["blocks"], stats["blocks"], strict=True)):
            stride = 2 if "short" in blk else 1
            ns: dict[str, Any] = {}
            z, bn1 = _batch_norm(_conv(h, blk["conv1"]["kernel"], stride), blk["conv1"]["bn"], st["conv1"]["bn"], train)
            z, bn2 = _batch_norm(
                _conv(jax.nn.relu(z), blk["conv2"]["kernel"], 1), blk["conv2"]["bn"], st["conv2"]["bn"], train
            )
            ns["conv1"], ns["conv2"] = {"bn": bn1}, {"bn": bn2}
            if "short" in blk:
                sc, bns = _batch_norm(
                    _conv(h, blk["short"]["kernel"], stride), blk["short"]["bn"], st["short"]["bn"], train
                )
                ns["short"] = {"bn": bns}
            else:
                sc = h
            h = jax.nn.relu(z + sc)
            new_blocks.append(ns)
            del i
        new["blocks"] = new_blocks
        logits = h.mean(axis=(1, 2)) @ params["head"]["kernel"] + params["head"]["bias"]
        return logits, new
