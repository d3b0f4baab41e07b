"""The package's models as pure functions of plain dict pytrees, each with its declared rate vector Λ.

A model here is `f(params, x) -> outputs` on a whole batch `x` (BatchNorm uses the statistics of the batch it is
given, so f is a function of the batch, as in full-batch training). Parameters are plain dicts because the paper's
object of study is the rate of each individual parameter (the Λ of Eq. 1); `rates` is a dict of the same structure
whose leaves are the rates λ (scalars, broadcast over the leaf).

Two kinds:
  - hand-written toys (`linear`, `toy_quasi_homogeneous`) with their declared rates;
  - standard stacks described by a tuple of layers (`Dense`, `ReLU`, `Residual`, `BatchNorm`, `LayerNorm`), with
    `init_stack` / `apply_stack`; `margin.quasi_homogeneous.infer_rates` derives Λ from the same description.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

Params = dict[str, Any]
BN_EPS = 1e-12  # tiny: BatchNorm stays scale-invariant to float32 precision (the rate-0 property of its inputs)


# --- hand-written toys -------------------------------------------------------------------------------------------


def linear(params: Params, x: jax.Array) -> jax.Array:
    """f(w; x) = w·x: homogeneous of order 1, Λ = I (its max-margin program is the hard-margin SVM)."""
    return x @ params["w"]


LINEAR_RATES = {"w": 1.0}


def toy_quasi_homogeneous(params: Params, x: jax.Array) -> jax.Array:
    """f(w, u, v; x) = w x_1 + u v x_2 on 2-D inputs: Λ = diag(1, 1/2, 1/2), so only w is in the Λ-seminorm."""
    return params["w"] * x[:, 0] + params["u"] * params["v"] * x[:, 1]


TOY_RATES = {"w": 1.0, "u": 0.5, "v": 0.5}


def toy_predictor(name: str, params: Params) -> jax.Array:
    """The effective linear predictor β(θ) with f(θ; x) = β·x of the two toys."""
    if name == "linear":
        return params["w"]
    if name == "toy_quasi_homogeneous":
        return jnp.stack([params["w"], params["u"] * params["v"]])
    raise KeyError(name)


# --- standard stacks ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Dense:
    """y = x W (+ b). Parameters `<name>/w` [in, out] and, with `bias`, `<name>/b` [out]."""

    name: str
    features: int
    bias: bool = True


@dataclasses.dataclass(frozen=True)
class ReLU:
    """Elementwise max(x, 0): positively homogeneous of order 1, so it passes the rate of its input through."""


@dataclasses.dataclass(frozen=True)
class Residual:
    """x + branch(x); the branch must keep the width."""

    layers: tuple


@dataclasses.dataclass(frozen=True)
class BatchNorm:
    """(x - mean_batch) / std_batch per feature, no affine parameters: invariant to any rescaling of its input."""


@dataclasses.dataclass(frozen=True)
class LayerNorm:
    """(x - mean_features) / std_features per example, no affine parameters."""


def _dense_names(layers: Sequence) -> list[str]:
    out = []
    for layer in layers:
        if isinstance(layer, Dense):
            out.append(layer.name)
        elif isinstance(layer, Residual):
            out += _dense_names(layer.layers)
    return out


def init_stack(key: jax.Array, layers: Sequence, in_dim: int, scale: float = 1.0, bias_scale: float = 0.0) -> Params:
    """He-normal weights (times `scale`) and biases bias_scale·N(0, 1) for every Dense layer (one compiled call)."""
    return _init_stack(key, tuple(layers), int(in_dim), float(scale), float(bias_scale))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _init_stack(key: jax.Array, layers: tuple, in_dim: int, scale: float, bias_scale: float) -> Params:
    names = _dense_names(layers)
    if len(set(names)) != len(names):
        raise ValueError(f"Dense layer names must be unique, got {names}")
    params: Params = {}
    keys = iter(jax.random.split(key, max(2 * len(names), 1)))

    def walk(layers, width):
        for layer in layers:
            if isinstance(layer, Dense):
                w = jax.random.normal(next(keys), (width, layer.features), jnp.float32)
                params[layer.name] = {"w": scale * w * jnp.sqrt(2.0 / width)}
                if layer.bias:
                    params[layer.name]["b"] = bias_scale * jax.random.normal(next(keys), (layer.features,), jnp.float32)
                width = layer.features
            elif isinstance(layer, Residual):
                out = walk(layer.layers, width)
                if out != width:
                    raise ValueError(f"a residual branch must keep the width {width}, got {out}")
        return width

    walk(layers, in_dim)
    return params


def _batchnorm(h: jax.Array) -> jax.Array:
    mean = jnp.mean(h, axis=0, keepdims=True)
    var = jnp.mean(jnp.square(h - mean), axis=0, keepdims=True)
    return (h - mean) * jax.lax.rsqrt(var + BN_EPS)


def _layernorm(h: jax.Array) -> jax.Array:
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(h - mean), axis=-1, keepdims=True)
    return (h - mean) * jax.lax.rsqrt(var + BN_EPS)


def apply_stack(params: Params, layers: Sequence, x: jax.Array, *, return_features: bool = False):
    """Applies `layers` to the batch `x` [n, in]; with `return_features` also returns the last Dense layer's input."""
    features = None

    def walk(layers, h):
        nonlocal features
        for layer in layers:
            if isinstance(layer, Dense):
                features = h
                h = h @ params[layer.name]["w"]
                if layer.bias:
                    h = h + params[layer.name]["b"]
            elif isinstance(layer, ReLU):
                h = jax.nn.relu(h)
            elif isinstance(layer, Residual):
                h = h + walk(layer.layers, h)
            elif isinstance(layer, BatchNorm):
                h = _batchnorm(h)
            elif isinstance(layer, LayerNorm):
                h = _layernorm(h)
            else:
                raise TypeError(f"unknown layer {layer!r}")
        return h

    out = walk(layers, x)
    return (out, features) if return_features else out


@dataclasses.dataclass(frozen=True)
class Stack:
    """f(params, x) of a stack of layers, hashable (a static argument of compiled training code); `squeeze` drops
    a trailing output axis of size 1 (binary classifiers)."""

    layers: tuple
    squeeze: bool = False

    def __call__(self, params: Params, x: jax.Array) -> jax.Array:
        out = apply_stack(params, self.layers, x)
        return out[:, 0] if self.squeeze else out


def stack_fn(layers: Sequence, squeeze: bool = False) -> Stack:
    """f(params, x) for the stack (a hashable `Stack`)."""
    return Stack(tuple(layers), squeeze)


@dataclasses.dataclass(frozen=True)
class StackInit:
    """init(key) -> params of a stack (`init_stack`), hashable."""

    layers: tuple
    in_dim: int
    scale: float = 1.0
    bias_scale: float = 0.0

    def __call__(self, key: jax.Array) -> Params:
        return init_stack(key, self.layers, self.in_dim, self.scale, self.bias_scale)


def residual_net(hidden: int, bias: bool = True) -> tuple:
    """Dense(hidden) -> ReLU -> x + ReLU(Dense(hidden)) -> Dense(1): biases and a residual connection."""
    return (
        Dense("in", hidden, bias),
        ReLU(),
        Residual((Dense("block", hidden, bias), ReLU())),
        Dense("out", 1, bias),
    )


def plain_net(hidden: int) -> tuple:
    """The homogeneous twin of `residual_net`: the same three Dense layers, no biases, no skip (Λ = I/3)."""
    return (Dense("in", hidden, False), ReLU(), Dense("block", hidden, False), ReLU(), Dense("out", 1, False))


def unconstrained_features(num_examples: int, dim: int, num_classes: int) -> tuple:
    """Free features z_i (a Dense layer on one-hot inputs) -> BatchNorm -> linear classifier (W, b)."""
    del num_examples
    return (Dense("features", dim, False), BatchNorm(), Dense("classifier", num_classes, True))


def bn_mlp(hidden: Sequence[int], dim: int, num_classes: int) -> tuple:
    """An MLP with BatchNorm: [Dense -> BatchNorm -> ReLU] per hidden width, Dense(dim) -> BatchNorm -> (W, b)."""
    layers: list = []
    for i, h in enumerate(hidden):
        layers += [Dense(f"hidden{i}", h, False), BatchNorm(), ReLU()]
    layers += [Dense("features", dim, False), BatchNorm(), Dense("classifier", num_classes, True)]
    return tuple(layers)


def plain_mlp(hidden: Sequence[int], dim: int, num_classes: int) -> tuple:
    """`bn_mlp` without its normalisations or the classifier bias: a homogeneous ReLU net (Λ = I/L), the control
    whose features nothing constrains to the BatchNorm moments."""
    layers: list = []
    for i, h in enumerate(hidden):
        layers += [Dense(f"hidden{i}", h, False), ReLU()]
    layers += [Dense("features", dim, False), ReLU(), Dense("classifier", num_classes, False)]
    return tuple(layers)
