"""Sweeps: many runs of one pure function as a single `jit(vmap(...))`, the runs axis sharded over the devices.

A training run is a pure `train(key, hparams) -> (state, metrics)`; a sweep over seeds and scalar hyperparameters is

    g = sweep.grid(seeds=[0, 1], lr=[1e-3, 3e-3], label_noise=[0.0, 0.2])
    state, metrics = sweep.sweep(train, g.keys(), g.hparams)      # host numpy, leading axis: g.size runs

A chunked training loop keeps its state on the devices between calls:

    hp = sweep.put(g.hparams, g.size)                             # placed once: padded, sharded over runs
    init = sweep.vmapped(init_fn)                                 # init_fn(key, hp) -> state
    chunk = sweep.vmapped(chunk_fn, in_axes=(0, 0, None), donate_argnums=(0,))
    state = init(g.keys(), hp)
    for start in range(0, num_steps, chunk_steps):
        state, m = chunk(state, hp, start)                        # no host round trip of the state
        loss = sweep.to_numpy(m["loss"], g.size)                  # only the (small) metrics come to the host

How runs meet devices. For R runs on N devices every device computes L = ceil(R / min(N, R)) runs; the mesh takes the
fewest devices that still give every device L runs (k = ceil(R / L), rounded up to a multiple of the process count
on multi-host runs, each process giving the same number), so at most L - 1 runs of padding are computed in all (3
runs on a 16-core host use 3 devices; 6 runs on 4 devices use 3). Padding repeats run 0 and stays inside the device
arrays: a vmapped function's outputs carry `padded_size(R)` runs, sharded over the runs axis (`P('runs')`), and are
trimmed to the R real runs only where results come to the host (`to_numpy(tree, R)`, `trim`), or ignored with
`mask(R)`. Inputs that are already `jax.Array`s with exactly the sharding the call expects (the outputs of an
earlier call) are passed straight through; host arrays are padded and placed (`put`); `donate_argnums` donates the
state a loop feeds back. Across hosts (after `jax.distributed.initialize()`) the same code runs unchanged: host
inputs are assembled with `jax.make_array_from_callback`, which works when every process passes the same arrays,
and `to_numpy` all-gathers.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import warnings
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


# ----------------------------------------------------------------------------------------------------------------
# runs <-> devices


def _num_devices(n_runs: int) -> int:
    """How many devices a sweep of `n_runs` uses (see the module docstring)."""
    if n_runs <= 0:
        raise ValueError(f"a sweep needs at least one run, got {n_runs}")
    n_dev = jax.device_count()
    per_device = -(-n_runs // min(n_dev, n_runs))
    k = -(-n_runs // per_device)
    nproc = jax.process_count()
    if nproc > 1:
        k = min(n_dev, -(-k // nproc) * nproc)
    return k


def padded_size(n_runs: int) -> int:
    """The leading axis of a sweep's device arrays: `n_runs` rounded up to a multiple of the devices it uses."""
    k = _num_devices(n_runs)
    return -(-n_runs // k) * k


_MESHES: dict[int, jax.sharding.Mesh] = {}


def runs_mesh(n_runs: int | None = None) -> jax.sharding.Mesh:
    """The one-axis mesh named 'runs' a sweep of `n_runs` runs uses (every device when `n_runs` is None).

    Devices are taken in equal numbers from every process, in process order; axis type Auto.
    """
    k = jax.device_count() if n_runs is None else _num_devices(n_runs)
    if k not in _MESHES:
        if k == jax.device_count():
            devices = jax.devices()
        else:
            per_proc: dict[int, list] = {}
            for d in jax.devices():
                per_proc.setdefault(d.process_index, []).append(d)
            m = k // len(per_proc)
            devices = [d for p in sorted(per_proc) for d in per_proc[p][:m]]
        _MESHES[k] = jax.make_mesh((k,), (RUNS,), axis_types=(AxisType.Auto,), devices=devices)
    return _MESHES[k]


def run_sharding(n_runs: int | None = None) -> NamedSharding:
    """The sharding of a sweep's run-mapped arrays: the leading axis split over `runs_mesh(n_runs)`."""
    return NamedSharding(runs_mesh(n_runs), P(RUNS))


def mask(n_runs: int) -> np.ndarray:
    """Boolean [padded_size(n_runs)]: True for the real runs, False for the padding."""
    return np.arange(padded_size(n_runs)) < n_runs


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _host(x: Any) -> np.ndarray:
    if isinstance(x, jax.Array):
        if not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))  # an explicit transfer
    return np.asarray(x)


def _place(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _pad_runs(x: np.ndarray, total: int) -> np.ndarray:
    r = x.shape[0]
    if r == total:
        return x
    if r > total:
        raise ValueError(f"an input has {r} runs, more than the padded size {total}")
    return np.concatenate([x, np.repeat(x[:1], total - r, axis=0)], axis=0)


# Host-to-device bytes placed by the last vmapped call (what a chunked loop pays per chunk for its inputs).
last_call_host_bytes = 0


def _put_leaf(x: Any, sharding: NamedSharding, total: int | None) -> tuple[jax.Array, int]:
    """Places one leaf with `sharding` (padded to `total` runs when mapped); returns it and the host bytes moved."""
    if isinstance(x, jax.Array) and x.sharding == sharding and (total is None or x.shape[0] == total):
        return x, 0
    if _is_key(x):
        impl = jax.random.key_impl(x)
        data, moved = _put_leaf(jax.random.key_data(x), sharding, total)
        return jax.random.wrap_key_data(data, impl=impl), moved
    if isinstance(x, jax.Array) and jax.process_count() == 1 and (total is None or (x.ndim and x.shape[0] == total)):
        return jax.device_put(x, sharding), 0  # device to device
    host = _host(x)
    if total is not None:
        host = _pad_runs(host, total)
    return _place(host, sharding), int(host.nbytes)


def put(tree: Any, n_runs: int) -> Any:
    """Places every leaf of `tree` (leading axis: `n_runs` runs) on the devices once: padded and run-sharded.

    Pass the result to every call of a vmapped chunk (hyperparameters, per-run data) so that no call copies it again.
    Leaves that are already placed this way are returned as they are.
    """
    sharding, total = run_sharding(n_runs), padded_size(n_runs)
    return jax.tree.map(lambda x: _put_leaf(x, sharding, total)[0], tree)


def put_shared(tree: Any, n_runs: int) -> Any:
    """Places every leaf of `tree` once, replicated on the devices a sweep of `n_runs` uses (in_axes=None inputs).

    A shared input passed as a host array is copied to the devices on every call; placed once it is not.
    """
    sharding = NamedSharding(runs_mesh(n_runs), P())
    return jax.tree.map(lambda x: _put_leaf(x, sharding, None)[0], tree)


def trim(tree: Any, n_runs: int) -> Any:
    """The first `n_runs` entries of every leaf (drops the padding; the result is no longer run-sharded)."""
    return jax.tree.map(lambda y: y[:n_runs], tree)


class _Vmapped:
    """jit(vmap(fn)) over a sharded runs axis; compiled once per input structure and run count (see `vmapped`)."""

    def __init__(self, fn: Callable, in_axes: int | tuple, donate_argnums: tuple[int, ...], map_batch: int):
        self.fn = fn
        self.in_axes = in_axes
        self.donate_argnums = tuple(donate_argnums)
        self.map_batch = int(map_batch)
        self._compiled: dict[Any, Callable] = {}

    def _build(self, treedef, leaf_axes, leaf_donate, n_runs):
        fn = self.fn
        mesh = runs_mesh(n_runs)
        mapped_s, shared_s = run_sharding(n_runs), NamedSharding(mesh, P())

        def flat_fn(*flat_args):
            return fn(*jax.tree.unflatten(treedef, list(flat_args)))

        in_shardings = tuple(mapped_s if ax == 0 else shared_s for ax in leaf_axes)
        donate = tuple(i for i, d in enumerate(leaf_donate) if d)
        if self.map_batch <= 0:
            body = jax.vmap(flat_fn, in_axes=tuple(leaf_axes))
        else:
            # Each device loops over its own runs, `map_batch` of them vectorised at a time (lax.map inside
            # shard_map: a scan over a sharded axis would otherwise gather the runs onto every device).
            mapped_pos = [i for i, ax in enumerate(leaf_axes) if ax == 0]
            batch = self.map_batch

            def local(*flat_args):
                def one(mapped):
                    args = list(flat_args)
                    for i, x in zip(mapped_pos, mapped, strict=True):
                        args[i] = x
                    return flat_fn(*args)

                return jax.lax.map(one, [flat_args[i] for i in mapped_pos], batch_size=batch)

            body = jax.shard_map(
                local,
                mesh=mesh,
                in_specs=tuple(P(RUNS) if ax == 0 else P() for ax in leaf_axes),
                out_specs=P(RUNS),
                check_vma=False,
            )
        return jax.jit(body, in_shardings=in_shardings, out_shardings=mapped_s, donate_argnums=donate)

    def __call__(self, *args):
        global last_call_host_bytes
        n_args = len(args)
        axes = (self.in_axes,) * n_args if isinstance(self.in_axes, int) else tuple(self.in_axes)
        if len(axes) != n_args:
            raise ValueError(f"in_axes has {len(axes)} entries for {n_args} arguments")
        flat, leaf_axes, leaf_donate = [], [], []
        for i, (a, ax) in enumerate(zip(args, axes, strict=True)):
            if ax not in (0, None):
                raise ValueError("in_axes entries must be 0 (mapped over runs) or None (shared)")
            leaves = jax.tree.leaves(a)
            flat += leaves
            leaf_axes += [ax] * len(leaves)
            leaf_donate += [i in self.donate_argnums] * len(leaves)
        treedef = jax.tree.structure(tuple(args))
        mapped = [x for x, ax in zip(flat, leaf_axes, strict=True) if ax == 0]
        if not mapped:
            raise ValueError("at least one argument must be mapped over runs (in_axes=0)")
        # Host inputs carry the real run count; device arrays from an earlier call carry the padded one.
        lengths = {int(np.shape(x)[0]) for x in mapped}
        n_runs = min(lengths)
        total = padded_size(n_runs)
        if any(n not in (n_runs, total) for n in lengths) or (len(lengths) > 1 and max(lengths) != total):
            raise ValueError(f"every mapped input needs the same leading runs axis, got {sorted(lengths)}")
        mapped_s, shared_s = run_sharding(n_runs), NamedSharding(runs_mesh(n_runs), P())
        placed, moved = [], 0
        for x, ax in zip(flat, leaf_axes, strict=True):
            y, b = _put_leaf(x, mapped_s, total) if ax == 0 else _put_leaf(x, shared_s, None)
            placed.append(y)
            moved += b
        last_call_host_bytes = moved
        sig = (
            treedef,
            tuple(leaf_axes),
            tuple(leaf_donate),
            n_runs,
            tuple((x.shape, str(x.dtype)) for x in placed),
        )
        if sig not in self._compiled:
            self._compiled[sig] = self._build(treedef, tuple(leaf_axes), tuple(leaf_donate), n_runs)
        with warnings.catch_warnings():
            # Outputs of another shape than a donated input cannot reuse its buffer; XLA says so once per compile.
            warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
            return self._compiled[sig](*placed)


_CACHE: dict[Any, _Vmapped] = {}


def vmapped(
    fn: Callable,
    in_axes: int | tuple = 0,
    *,
    static: tuple = (),
    donate_argnums: Sequence[int] = (),
    map_batch: int = 0,
) -> Callable:
    """Returns `jit(vmap(fn))` with the runs axis padded and sharded over the devices (see the module docstring).

    `in_axes` is 0 (every positional argument has a leading runs axis) or a tuple with 0 or None per positional
    argument (None: shared by every run, replicated). `donate_argnums` names the positional arguments whose buffers
    the call may reuse (the state a loop feeds back: do not use it after the call). Outputs are `jax.Array`s with
    `padded_size(R)` runs, sharded over runs; bring them to the host with `to_numpy(out, R)`. Repeated calls with
    inputs of the same structure and shapes do not recompile.

    `static` are hashable arguments passed to `fn` before the mapped ones (`fn(*static, *args)`): a model
    description, a chunk length. The compiled function is cached on `(fn, static, in_axes, donate_argnums,
    map_batch)` for the life of the process, so pass a module-level function and its static arguments, never a fresh
    lambda or `functools.partial` per call (each would be a new cache entry and compile again).

    `map_batch` = 0 vectorises all of a device's runs (one batched program, the right choice on GPU/TPU); k > 0
    loops over each device's runs with `lax.map`, k runs vectorised at a time. On CPU a batched matmul of small
    per-run matrices can be slower than the same matrices one after another, so measure both before choosing. Each
    run computes the same function either way; the float rounding of a batched and an unbatched matmul differ, and
    a long training run amplifies that difference.
    """
    if int(map_batch) < 0:
        raise ValueError(f"map_batch must be >= 0, got {map_batch}")
    static = tuple(static)
    try:
        hash(static)
    except TypeError as e:
        raise TypeError(f"static arguments must be hashable (they key the compile cache): {e}") from None
    key = (fn, static, in_axes, tuple(donate_argnums), int(map_batch))
    if key not in _CACHE:
        _warn_if_rebuilt(fn)
        bound = functools.partial(fn, *static) if static else fn
        _CACHE[key] = _Vmapped(bound, in_axes, tuple(donate_argnums), int(map_batch))
    return _CACHE[key]


_WARNED: set = set()


def _warn_if_rebuilt(fn: Callable) -> None:
    """Warns once when the same code arrives as a 4th distinct function object (a lambda or partial made per call)."""
    code = getattr(getattr(fn, "func", fn), "__code__", None)
    if code is None or code in _WARNED:
        return
    same = {id(k[0]) for k in _CACHE if getattr(getattr(k[0], "func", k[0]), "__code__", None) is code}
    if len(same | {id(fn)}) >= 4:
        _WARNED.add(code)
        warnings.warn(
            f"sweep.vmapped: {code.co_name} ({code.co_filename}:{code.co_firstlineno}) arrived as a new function "
            "object 4 times, so each compiles again; pass a module-level function and its static= arguments",
            stacklevel=3,
        )


def compile_count() -> int:
    """How many distinct programs every `vmapped` function has compiled so far in this process (for tests)."""
    return sum(len(v._compiled) for v in _CACHE.values())


def sweep(train: Callable, keys: jax.Array, hparams: dict[str, Any]) -> Any:
    """Runs `train(key, hparams)` for every run as one sharded `jit(vmap(train))`; returns its outputs on the host.

    The outputs are numpy arrays with the real runs only (leading axis `len(keys)`), on every process.
    """
    n_runs = int(keys.shape[0])
    return to_numpy(vmapped(train)(keys, {k: np.asarray(v) for k, v in hparams.items()}), n_runs)


_SYNC_TIMEOUT_MS = 60 * 60 * 1000
_syncs = itertools.count()


def _wait_for_other_processes(tree: Any) -> None:
    """Before an all-gather, every process waits at a coordination-service barrier (no collective, long timeout).

    The first collective on a set of devices sets up its CPU (gloo) context with a fixed 30 s deadline; a process
    still compiling or restoring a checkpoint for longer (a loaded machine, a cold compilation cache) would make the
    others fail. The barrier lets them wait instead. No-op on one process or when every leaf is addressable.
    """
    if jax.process_count() == 1:
        return
    if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in jax.tree.leaves(tree)):
        return
    from jax._src import distributed

    client = distributed.global_state.client
    if client is not None:
        client.wait_at_barrier(f"common.sweep.to_numpy/{next(_syncs)}", _SYNC_TIMEOUT_MS)


def to_numpy(tree: Any, n_runs: int | None = None) -> Any:
    """Brings sweep outputs to host numpy on every process (all-gathering across hosts), keeping the first `n_runs`.

    Typed PRNG keys come back as their raw key data. On several processes every process must call it with the same
    tree (it is collective).
    """
    _wait_for_other_processes(tree)

    def leaf(x):
        if _is_key(x):
            x = jax.random.key_data(x)
        y = _host(x)
        return y[:n_runs] if n_runs is not None and y.ndim else y

    return jax.tree.map(leaf, tree)
