"""IMP on a user's Flax model: adapters to the model protocol `imp.Setup` expects.

`imp.Setup(model=...)` takes any object with

    init(key) -> (params, stats)                       # trainable parameters, and everything else (BatchNorm...)
    apply(params, stats, x, train) -> (logits, stats)  # stats updated in training mode

and prunes the leaves `masks.is_kernel` picks (dense / convolution kernels, named kernel / w / weight, ndim >= 2).
The two adapters wrap Flax models without touching them:

    model = adapters.Linen(MyLinenNet(), input_shape=(8, 8, 1))                # train flag: train_kwarg="train"
    model = adapters.NNX(lambda rngs: MyNNXNet(rngs=rngs), input_shape=(8, 8, 1))
    setup = imp.Setup(model=model, batch_size=32, steps=600, num_levels=10, optimizer=optax.adam)
    sweep = imp.Sweep(setup, imp.make_runs(...), chunk_steps=150)

Any optax optimizer taking `learning_rate` goes in `Setup.optimizer` (its other arguments in
`Setup.optimizer_kwargs`); IMP wraps it in `masks.masked` and re-initialises it at every rewind. The output layer
is found by `masks.prune_rates` (under a key "head", else the last kernel in structural order).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

_PLACEHOLDER = "placeholder"  # a model without state still carries one array (checkpoints refuse empty trees)


def _placeholder():
    return {_PLACEHOLDER: jnp.zeros((), jnp.float32)}


@dataclasses.dataclass(frozen=True, eq=False)
class Linen:
    """A Flax linen module. Collections other than "params" (batch_stats...) are the stats, mutable in training;
    `train_kwarg` names the module's train/eval flag if it has one (passed as True in training)."""

    module: Any
    input_shape: tuple[int, ...]
    train_kwarg: str | None = None

    def _kw(self, train: bool) -> dict[str, bool]:
        return {self.train_kwarg: train} if self.train_kwarg else {}

    def init(self, key: jax.Array) -> tuple[Any, Any]:
        variables = dict(self.module.init(key, jnp.zeros((1, *self.input_shape)), **self._kw(False)))
        params = variables.pop("params")
        return params, (variables or _placeholder())

    def apply(self, params, stats, x, train: bool = False):
        if _PLACEHOLDER in stats:
            return self.module.apply({"params": params}, x, **self._kw(train)), stats
        if train:
            logits, new = self.module.apply({"params": params, **stats}, x, mutable=list(stats), **self._kw(True))
            return logits, dict(new)
        return self.module.apply({"params": params, **stats}, x, **self._kw(False)), stats


@dataclasses.dataclass(frozen=True, eq=False)
class NNX:
    """A Flax NNX module built by `make(rngs)`. Its `nnx.Param` variables are the parameters, every other variable
    (BatchNorm statistics...) the stats; `train()` / `eval()` set the mode."""

    make: Callable[[Any], Any]
    input_shape: tuple[int, ...]

    @functools.cached_property
    def _graphdef(self):
        from flax import nnx

        abstract = nnx.eval_shape(lambda: self.make(nnx.Rngs(0)))
        return nnx.split(abstract, nnx.Param, ...)[0]

    def init(self, key: jax.Array) -> tuple[Any, Any]:
        from flax import nnx

        _, params, rest = nnx.split(self.make(nnx.Rngs(key)), nnx.Param, ...)
        return params, (rest if jax.tree.leaves(rest) else _placeholder())

    def apply(self, params, stats, x, train: bool = False):
        from flax import nnx

        rest = nnx.State({}) if isinstance(stats, dict) and _PLACEHOLDER in stats else stats
        model = nnx.merge(self._graphdef, params, rest, copy=True)  # never mutate the caller's state
        model.train() if train else model.eval()
        logits = model(x)
        if rest is not stats:
            return logits, stats
        return logits, nnx.split(model, nnx.Param, ...)[2]
