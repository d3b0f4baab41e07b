"""Sweeps: many runs of one pure function as a single `jit(vmap(...))`, the runs axis sharded over every device.

A training run is a pure `train(key, hparams) -> (state, metrics)`; a sweep over seeds and scalar hyperparameters is

    g = sweep.grid(seeds=[0, 1], lr=[1e-3, 3e-3], label_noise=[0.0, 0.2])
    state, metrics = sweep.sweep(train, g.keys(), g.hparams)      # leading axis: g.size runs

The runs axis is padded to a multiple of the device count (padding repeats run 0 and is trimmed away) and placed with
`NamedSharding` on a one-axis `jax.make_mesh` with Auto axis types, so the same code uses one CPU, 8 TPU cores or every
device of a pod after `jax.distributed.initialize()` (inputs are assembled with `jax.make_array_from_callback`, which
works when every process passes the same host arrays).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

RUNS = "runs"


@dataclasses.dataclass(frozen=True)
class Grid:
    """The cartesian product of seeds and scalar hyperparameter values, one row per run (seed varies fastest last)."""

    seeds: np.ndarray  # int64 [R]
    hparams: dict[str, np.ndarray]  # name -> float32 [R]

    @property
    def size(self) -> int:
        return int(self.seeds.shape[0])

    def keys(self) -> jax.Array:
        """Typed PRNG keys, one per run: `jax.random.key(seed)`."""
        return jax.vmap(jax.random.key)(jnp.asarray(self.seeds, dtype=jnp.uint32))

    def rows(self) -> list[dict[str, float]]:
        """One dict per run: {'seed': ..., name: value, ...}."""
        out = []
        for i in range(self.size):
            row = {"seed": int(self.seeds[i])}
            row.update({k: float(v[i]) for k, v in self.hparams.items()})
            out.append(row)
        return out

    def index(self, **values: float) -> int:
        """The run index whose seed and hyperparameters equal `values` (names not given are unconstrained)."""
        mask = np.ones(self.size, bool)
        for k, v in values.items():
            col = self.seeds if k == "seed" else self.hparams[k]
            mask &= np.isclose(col, v)
        hits = np.flatnonzero(mask)
        if hits.size == 0:
            raise KeyError(f"no run with {values}")
        return int(hits[0])


def grid(seeds: Sequence[int], **axes: Sequence[float]) -> Grid:
    """Cartesian product of `seeds` and each hyperparameter axis (in the order given, seeds outermost)."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("grid needs at least one seed")
    names = list(axes)
    for name in names:
        if len(axes[name]) == 0:
            raise ValueError(f"grid axis {name!r} is empty")
    combos = list(itertools.product(seeds, *[list(axes[n]) for n in names]))
    seed_col = np.array([c[0] for c in combos], dtype=np.int64)
    hp = {n: np.array([c[i + 1] for c in combos], dtype=np.float32) for i, n in enumerate(names)}
    return Grid(seed_col, hp)


def runs_mesh() -> jax.sharding.Mesh:
    """A one-axis mesh named 'runs' over every device (all hosts), with Auto axis types."""
    return jax.make_mesh((jax.device_count(),), (RUNS,), axis_types=(AxisType.Auto,))


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _pad_runs(x: np.ndarray, total: int) -> np.ndarray:
    r = x.shape[0]
    if r == total:
        return x
    reps = np.repeat(x[:1], total - r, axis=0)
    return np.concatenate([x, reps], axis=0)


class _Vmapped:
    """jit(vmap(fn)) over a sharded runs axis; compiled once per input structure (see `vmapped`)."""

    def __init__(self, fn: Callable, in_axes: int | tuple):
        self.fn = fn
        self.in_axes = in_axes
        self._compiled: dict[Any, Callable] = {}

    def _build(self, treedef, key_impls, in_axes):
        fn = self.fn
        mesh = runs_mesh()

        def wrapped(*flat_args):
            leaves = []
            for leaf, impl in zip(flat_args, key_impls, strict=True):
                leaves.append(jax.random.wrap_key_data(leaf, impl=impl) if impl is not None else leaf)
            args = jax.tree.unflatten(treedef, leaves)
            return fn(*args)

        def unflat_vmap(*flat_args):
            return jax.vmap(wrapped, in_axes=in_axes)(*flat_args)

        out = jax.jit(unflat_vmap, out_shardings=NamedSharding(mesh, P(RUNS)))
        return out, mesh

    def __call__(self, *args):
        n_args = len(args)
        axes = (self.in_axes,) * n_args if isinstance(self.in_axes, int) else tuple(self.in_axes)
        if len(axes) != n_args:
            raise ValueError(f"in_axes has {len(axes)} entries for {n_args} arguments")
        # Flatten every argument; remember which leaves are mapped and which are typed keys.
        flat, leaf_axes = [], []
        for a, ax in zip(args, axes, strict=True):
            if ax not in (0, None):
                raise ValueError("in_axes entries must be 0 (mapped over runs) or None (shared)")
            leaves = jax.tree.leaves(a)
            flat += leaves
            leaf_axes += [ax] * len(leaves)
        treedef = jax.tree.structure(tuple(args))
        key_impls = tuple(jax.random.key_impl(x) if _is_key(x) else None for x in flat)
        mapped = [x for x, ax in zip(flat, leaf_axes, strict=True) if ax == 0]
        if not mapped:
            raise ValueError("at least one argument must be mapped over runs (in_axes=0)")
        n_runs = int(np.shape(mapped[0])[0])
        for x in mapped:
            if np.shape(x)[0] != n_runs:
                raise ValueError(f"every mapped input needs the same leading runs axis: {np.shape(x)[0]} != {n_runs}")
        sig = (
            treedef,
            key_impls,
            tuple(leaf_axes),
            tuple((np.shape(x), str(jnp.result_type(x) if not _is_key(x) else "key")) for x in flat),
        )
        if sig not in self._compiled:
            self._compiled[sig] = self._build(treedef, key_impls, tuple(leaf_axes))
        jitted, mesh = self._compiled[sig]
        n_dev = mesh.devices.size
        total = -(-n_runs // n_dev) * n_dev
        run_sharding = NamedSharding(mesh, P(RUNS))
        shared_sharding = NamedSharding(mesh, P())
        placed = []
        for x, ax, impl in zip(flat, leaf_axes, key_impls, strict=True):
            host = np.asarray(jax.random.key_data(x)) if impl is not None else np.asarray(x)
            if ax == 0:
                placed.append(_to_global(_pad_runs(host, total), run_sharding))
            else:
                placed.append(_to_global(host, shared_sharding))
        out = jitted(*placed)
        if total == n_runs:
            return out
        return jax.tree.map(lambda y: y[:n_runs], out)


_CACHE: dict[Any, _Vmapped] = {}


def vmapped(fn: Callable, in_axes: int | tuple = 0) -> Callable:
    """Returns `jit(vmap(fn))` whose runs axis is padded to a multiple of the device count and sharded over all devices.

    `in_axes` is 0 (every positional argument has a leading runs axis) or a tuple with 0 or None per positional
    argument (None: shared by every run, replicated). Outputs keep the runs axis, trimmed back to the real run count.
    Repeated calls with inputs of the same structure and shapes do not recompile.
    """
    key = (fn, in_axes)
    if key not in _CACHE:
        _CACHE[key] = _Vmapped(fn, in_axes)
    return _CACHE[key]


def sweep(train: Callable, keys: jax.Array, hparams: dict[str, Any]) -> Any:
    """Runs `train(key, hparams)` for every run as one sharded `jit(vmap(train))`; returns its stacked outputs."""
    return vmapped(train)(keys, {k: np.asarray(v) for k, v in hparams.items()})


def to_numpy(tree: Any) -> Any:
    """Brings sweep outputs to host numpy on every process (all-gathers across hosts when there are several)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)
