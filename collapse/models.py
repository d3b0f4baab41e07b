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

Layers = list[dict[str, jax.Array]]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    # Every activation here has sigma(0) = 0, which is what makes vanishing neurons invariant.
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "linear": lambda z: z,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Returns the activation function called ``name`` (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def init_mlp(key: jax.Array, sizes: Sequence[int]) -> Layers:
    """He-uniform (PyTorch-default-like) initialisation of an MLP with layer widths ``sizes``."""
    layers = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (n_in, n_out) in zip(keys, zip(sizes[:-1], sizes[1:], strict=True), strict=True):
        kw, kb = jax.random.split(k)
        bound = 1.0 / jnp.sqrt(n_in)
        w = jax.random.uniform(kw, (n_in, n_out), minval=-bound, maxval=bound)
        b = jax.random.uniform(kb, (n_out,), minval=-bound, maxval=bound)
        layers.append({"w": w, "b": b})
    return layers


def init_cnn(key: jax.Array, in_channels: int, channels: Sequence[int], num_classes: int, *, kernel: int = 3) -> Layers:
    """Initialises a CNN: ``len(channels)`` 3x3 convolutions, global average pooling, one dense head."""
    layers = []
    keys = jax.random.split(key, len(channels) + 1)
    c_in = in_channels
    for k, c_out in zip(keys[:-1], channels, strict=True):
        kw, kb = jax.random.split(k)
        bound = 1.0 / jnp.sqrt(c_in * kernel * kernel)
        w = jax.random.uniform(kw, (kernel, kernel, c_in, c_out), minval=-bound, maxval=bound)
        b = jax.random.uniform(kb, (c_out,), minval=-bound, maxval=bound)
        layers.append({"w": w, "b": b})
        c_in = c_out
    kw, kb = jax.random.split(keys[-1])
    bound = 1.0 / jnp.sqrt(c_in)
    layers.append(
        {
            "w": jax.random.uniform(kw, (c_in, num_classes), minval=-bound, maxval=bound),
            "b": jax.random.uniform(kb, (num_classes,), minval=-bound, maxval=bound),
        }
    )
    return layers


def conv2d_same(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-1 SAME convolution ``[B, H, W, C] * [kh, kw, C, O] -> [B, H, W, O]`` as patches @ kernel.

    One matmul over the ``kh * kw`` shifted views (im2col): XLA's CPU convolution is far slower inside the
    training scan for these small images. Equal to ``lax.conv_general_dilated`` with SAME padding (tested).
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
