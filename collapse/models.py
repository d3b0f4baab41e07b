"""Plain-pytree MLP and CNN models with a declared layer structure.

A network is a list of layers ``[{"w": ..., "b": ...}, ...]``. Dense weights are ``[in, out]``; convolution
kernels are ``[kh, kw, in, out]`` (HWIO, stride 1, SAME padding). The activation is applied after every layer
but the last. A dense layer that follows a convolution sees the channels-last flattening of the feature map
(or its global average, ``pool="mean"``), so channel ``c`` feeds dense rows ``c, c + C, c + 2C, ...``. This list
*is* the layer structure that :mod:`collapse.invariant_sets` reads: any user model whose parameters can be
written this way (see :func:`layers_from_tree`) can be analysed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from common import nn

Layers = list[dict[str, jax.Array]]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    # Every activation here has sigma(0) = 0, which is what makes vanishing neurons invariant.
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Returns the activation function called ``name`` (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def init_mlp(key: jax.Array, sizes: Sequence[int]) -> Layers:
    """PyTorch-default (uniform in +-1/sqrt(fan_in), :func:`common.nn.dense_init`) MLP with layer widths ``sizes``."""
    keys = jax.random.split(key, len(sizes) - 1)
    pairs = zip(sizes[:-1], sizes[1:], strict=True)
    return [nn.dense_init(k, n_in, n_out, kernel="w", bias="b") for k, (n_in, n_out) in zip(keys, pairs, strict=True)]


def init_cnn(key: jax.Array, in_channels: int, channels: Sequence[int], num_classes: int, *, kernel: int = 3) -> Layers:
    """Initialises a CNN: ``len(channels)`` 3x3 convolutions, global average pooling, one dense head."""
    layers = []
    keys = jax.random.split(key, len(channels) + 1)
    c_in = in_channels
    for k, c_out in zip(keys[:-1], channels, strict=True):
        conv = nn.conv_init(k, kernel, kernel, c_in, c_out)
        layers.append({"w": conv["kernel"], "b": conv["bias"]})
        c_in = c_out
    return [*layers, nn.dense_init(keys[-1], c_in, num_classes, kernel="w", bias="b")]


def conv2d_same(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-1 SAME convolution ``[B, H, W, C] * [kh, kw, C, O] -> [B, H, W, O]`` as patches @ kernel.

    One matmul over the ``kh * kw`` shifted views (im2col): XLA's CPU convolution is far slower inside the
    training scan for these small images. Equal to ``lax.conv_general_dilated`` with SAME padding (tested), also
    for even kernels (padding ``(k - 1) // 2`` before, ``k // 2`` after), which :func:`common.nn.conv2d` (PyTorch's
    symmetric padding, used by the ResNet) does not keep at the input size.
    """
    kh, kw, c, o = w.shape
    _, hh, ww, _ = x.shape
    pad = ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0))
    xp = jnp.pad(x, pad)
    patches = jnp.concatenate([xp[:, i : i + hh, j : j + ww, :] for i in range(kh) for j in range(kw)], axis=-1)
    return patches @ w.reshape(kh * kw * c, o)


def apply(
    layers: Layers,
    x: jax.Array,
    *,
    act: str = "gelu",
    pool: str = "mean",
    maxpool_after: Sequence[int] = (),
) -> jax.Array:
    """Forward pass of an MLP/CNN in the list-of-layers form.

    Args:
      layers: the network (see module docstring).
      x: inputs, ``[B, D]`` for an MLP or ``[B, H, W, C]`` for a CNN.
      act: hidden activation.
      pool: how a convolution output enters a following dense layer, "mean" (global average) or "flatten".
      maxpool_after: indices of convolution layers followed (after the activation) by 2x2 max pooling (VGG).

    Returns:
      Outputs ``[B, out]`` (logits for classification).
    """
    sigma = activation(act)
    h = x
    for i, layer in enumerate(layers):
        w, b = layer["w"], layer["b"]
        if w.ndim == 4:
            h = conv2d_same(h, w) + b
        else:
            if h.ndim == 4:
                h = h.mean(axis=(1, 2)) if pool == "mean" else h.reshape(h.shape[0], -1)
            h = h @ w + b
        if i < len(layers) - 1:
            h = sigma(h)
        if i in maxpool_after:
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return h


def num_params(layers: Layers) -> int:
    """Total number of scalar parameters."""
    return int(sum(x.size for x in jax.tree.leaves(layers)))


def layers_from_tree(tree: Any, paths: Sequence[tuple[Sequence[str], Sequence[str]]]) -> Layers:
    """Declares the layer structure of a user model held as a nested dict (e.g.
    ``nnx.to_pure_dict``).

    Args:
      tree: nested mapping of parameters.
      paths: for each layer in order, ``(path_to_kernel, path_to_bias)`` as key sequences. Kernels must be
        ``[in, out]`` or HWIO ``[kh, kw, in, out]`` (Flax's layout).

    Returns:
      The list-of-layers form read by :mod:`collapse.invariant_sets`.
    """

    def get(path):
        node = tree
        for k in path:
            node = node[k]
        return jnp.asarray(node)

    return [{"w": get(pw), "b": get(pb)} for pw, pb in paths]


# ----------------------------------------------------------------------------------------------------------
# CIFAR-style ResNet (BasicBlocks, BatchNorm), the paper's second deep-net setting.
#
# params = {"stem": {"w": HWIO, "bn": {"scale", "bias"}},
#           "stages": [[block, ...], ...],   block = {"conv1", "bn1", "conv2", "bn2"[, "short", "short_bn"]}
#           "head": {"w": [C, classes], "b": [classes]}}
# stats  = the same nesting with every {"scale", "bias"} replaced by running {"mean", "var"}.
# The first block of every stage but the first has stride 2 and a 1x1 projection shortcut (conv + BN); convs
# have no bias (BatchNorm follows each), as in torchvision's resnet18 that the released code uses with a 3x3
# stride-1 stem, no max pooling and GELU in place of ReLU.


def is_resnet(params: Any) -> bool:
    """True for a parameter tree in the ResNet form above."""
    return isinstance(params, dict) and "stages" in params


def init_resnet(
    key: jax.Array, in_channels: int, widths: Sequence[int], num_classes: int, *, blocks: int = 2
) -> dict[str, Any]:
    """Initialises a CIFAR ResNet: 3x3 stem to ``widths[0]``, ``blocks`` BasicBlocks per stage of width
    ``widths[s]`` (ResNet-18: widths 64-128-256-512, 2 blocks), global average pooling, dense head.

    torchvision's scheme: Kaiming-normal (fan-out) convolutions, BatchNorm scale 1 / bias 0, PyTorch-default
    uniform dense head. All kernels come from one normal draw (one random-bits kernel to compile, not one per
    shape).
    """
    kernels: list[tuple[int, int, int, int]] = [(3, 3, in_channels, widths[0])]
    layout = []  # per block: (stage, block, c_in, c_out, has_shortcut)
    c_in = widths[0]
    for s, c in enumerate(widths):
        for b in range(blocks):
            short = _has_shortcut(s, b, c_in, c)
            layout.append((s, b, short))
            kernels += [(3, 3, c_in, c), (3, 3, c, c)] + ([(1, 1, c_in, c)] if short else [])
            c_in = c
    k_conv, k_head_w, k_head_b = jax.random.split(key, 3)
    sizes = [int(np.prod(k)) for k in kernels]
    flat = jax.random.normal(k_conv, (sum(sizes),))
    offsets = np.cumsum([0, *sizes])
    # torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"): std sqrt(2 / (out * kh * kw))
    ws = iter(
        flat[o : o + n].reshape(k) * np.sqrt(2.0 / (k[3] * k[0] * k[1]))
        for o, n, k in zip(offsets[:-1], sizes, kernels, strict=True)
    )
    params: dict[str, Any] = {
        "stem": {"w": next(ws), "bn": nn.batch_norm_init(widths[0])[0]},
        "stages": [[] for _ in widths],
    }
    for s, _, short in layout:
        c = widths[s]
        block = {"conv1": next(ws), "bn1": nn.batch_norm_init(c)[0], "conv2": next(ws), "bn2": nn.batch_norm_init(c)[0]}
        if short:
            block["short"] = next(ws)
            block["short_bn"] = nn.batch_norm_init(c)[0]
        params["stages"][s].append(block)
    bound = 1.0 / np.sqrt(c_in)
    params["head"] = {
        "w": jax.random.uniform(k_head_w, (c_in, num_classes), minval=-bound, maxval=bound),
        "b": jax.random.uniform(k_head_b, (num_classes,), minval=-bound, maxval=bound),
    }
    return params


def _has_shortcut(stage: int, block: int, c_in: int, c_out: int) -> bool:
    return block == 0 and (stage > 0 or c_in != c_out)


def _stride(stage: int, block: int) -> int:
    return 2 if stage > 0 and block == 0 else 1


def init_resnet_stats(params: dict[str, Any]) -> dict[str, Any]:
    """Running BatchNorm statistics (mean 0, variance 1) mirroring ``params``."""

    def stats(bn):
        return {"mean": jnp.zeros_like(bn["scale"]), "var": jnp.ones_like(bn["scale"])}

    out: dict[str, Any] = {"stem": stats(params["stem"]["bn"]), "stages": []}
    for stage in params["stages"]:
        out["stages"].append(
            [{k: stats(v) for k, v in blk.items() if k.endswith("bn") or k[:2] == "bn"} for blk in stage]
        )
    return out


def apply_resnet(
    params: dict[str, Any], x: jax.Array, stats: dict[str, Any], *, train: bool, act: str = "gelu"
) -> tuple[jax.Array, dict[str, Any]]:
    """Forward pass of the ResNet. Returns ``(logits [B, classes], new running stats)``.

    ``train=True`` normalises with the minibatch's statistics (and updates the running ones); ``train=False``
    uses the running statistics (evaluation). Under ``vmap`` over runs each run normalises over its own
    minibatch and keeps its own running statistics.
    """
    sigma = activation(act)
    new: dict[str, Any] = {"stages": []}
    h, new["stem"] = nn.batch_norm(nn.conv2d(x, params["stem"]["w"]), params["stem"]["bn"], stats["stem"], train)
    h = sigma(h)
    for s, stage in enumerate(params["stages"]):
        new_stage = []
        for b, blk in enumerate(stage):
            st = stats["stages"][s][b]
            ns = {}
            stride = _stride(s, b)
            z, ns["bn1"] = nn.batch_norm(nn.conv2d(h, blk["conv1"], stride), blk["bn1"], st["bn1"], train)
            z, ns["bn2"] = nn.batch_norm(nn.conv2d(sigma(z), blk["conv2"]), blk["bn2"], st["bn2"], train)
            if "short" in blk:
                short, ns["short_bn"] = nn.batch_norm(
                    nn.conv2d(h, blk["short"], stride), blk["short_bn"], st["short_bn"], train
                )
            else:
                short = h
            h = sigma(z + short)
            new_stage.append(ns)
        new["stages"].append(new_stage)
    return h.mean(axis=(1, 2)) @ params["head"]["w"] + params["head"]["b"], new
