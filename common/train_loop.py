"""The one training driver: a sweep of runs trained chunk by chunk as compiled, checkpointed, resumable calls.

Every training package goes through `train`:

    res = train_loop.train(
        name="grid", init=init_one, chunk=chunk_one, static=(task, chunk_steps),
        keys=grid.keys(), hparams=grid.hparams, shared=(x, y),
        num_steps=5000, chunk_steps=500, workdir=workdir, writer=writer, labels=grid.rows(),
    )
    res.state                      # the final state, host numpy, leading axis R
    res.history["loss"]            # [chunks logged, R]: every per-run scalar the chunks reported

`init(*static, key, hp) -> state` and `chunk(*static, state, hp, shared, start_step) -> (state, metrics)` describe ONE
run; the driver vmaps them over the runs axis (sharded over the devices, `common.sweep`), places the hyperparameters
and the shared data once, donates the state to each chunk, and feeds the returned (still sharded) state back with no
host round trip. `static` holds the hashable arguments that fix shapes (a model description, the chunk length); with
the two module-level functions it keys the compile cache, so a second call with the same static arguments and
shapes compiles nothing.

After each chunk the metrics come to the host through `sweep.to_numpy` (correct across processes), every per-run
scalar or small array is written as one row per run to `metrics.jsonl` (`run="<name>/<r>"`, plus the run's
`labels`), `checkpoint.NONFINITE` stops the sweep naming the run and its labels, and `on_chunk(ctx)` may add more
per-run values (an accuracy on held-out data, a statistic of the parameters: `ctx.state` is the device state).
Checkpoints go to `<workdir>/checkpoints/<name>` through `common.checkpoint.run_chunked`: a killed sweep resumes from
its last checkpoint, and rows past it are dropped.

`max_runs_per_call=k` trains the runs in groups of at most k, one compiled call per group per chunk (same program,
each group's activations alone in memory); the groups' states stay on the devices between chunks. The results do
not depend on the grouping.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from common import checkpoint, metrics, sweep


@dataclasses.dataclass
class ChunkContext:
    """What `on_chunk` sees after each chunk, for one group of runs."""

    step: int  # steps done after this chunk
    state: Any  # the group's state on the devices (padded, run-sharded); read it, do not keep it
    metrics: dict[str, np.ndarray]  # the chunk's metrics on the host, real runs only
    runs: np.ndarray  # the global run indices of this group
    hparams: Any  # the group's hyperparameters as placed on the devices
    shared: Any  # the shared inputs as placed on the devices

    def to_host(self, tree: Any) -> Any:
        """Host numpy of a run-sharded tree of this group (padding dropped; all-gathered across processes)."""
        return sweep.to_numpy(tree, len(self.runs))


@dataclasses.dataclass
class Group:
    """One group of runs after training: its run indices and its device-resident state and inputs."""

    runs: np.ndarray
    state: Any
    hparams: Any
    shared: Any


@dataclasses.dataclass
class Result:
    state: Any  # host numpy, leading axis R
    history: dict[str, np.ndarray]  # "step" [T] and each logged metric [T, R, ...]
    groups: list[Group]  # device-resident, for evaluation without a host round trip (`evaluate`)

    def evaluate(self, fn: Callable, *, static: tuple = (), shared: Any = None, map_batch: int = 0) -> Any:
        """`fn(*static, state, hp, shared)` for every run (vmapped per group); host numpy with leading axis R.

        `shared` defaults to the training's shared inputs; pass other arrays (held-out data) to evaluate on them.
        """
        ev = sweep.vmapped(fn, in_axes=(0, 0, None), static=static, map_batch=map_batch)
        parts = []
        for g in self.groups:
            data = g.shared if shared is None else sweep.put_shared(shared, len(g.runs))
            parts.append(sweep.to_numpy(ev(g.state, g.hparams, data), len(g.runs)))
        return _concat(parts)


def _part(tree: Any, part: slice, n_runs: int) -> Any:
    """Runs `part` of a state with leading axis R (host or device; a device state may carry padding)."""

    def leaf(x):
        if np.shape(x)[:1] not in ((n_runs,), (sweep.padded_size(n_runs),)):
            raise ValueError(
                f"initial_state has a leaf of shape {np.shape(x)}; its leading axis must be the {n_runs} runs"
            )
        if not isinstance(x, jax.Array):
            return np.asarray(x)[part]
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(sweep.to_numpy(x)[part], impl=jax.random.key_impl(x))
        return sweep.to_numpy(x)[part]

    return jax.tree.map(leaf, tree)


def _concat(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)


def _groups(n_runs: int, per_call: int) -> list[np.ndarray]:
    per_call = per_call or n_runs
    return [np.arange(a, min(a + per_call, n_runs)) for a in range(0, n_runs, per_call)]


def _row_values(m: Mapping[str, np.ndarray], r: int, max_entries: int) -> dict[str, Any]:
    """The per-run values of run r worth a metric row: scalars and arrays of at most `max_entries` entries."""
    out: dict[str, Any] = {}
    for k, v in m.items():
        if k == checkpoint.NONFINITE:
            continue
        x = np.asarray(v)[r]
        if x.ndim == 0:
            out[k] = x.item()
        elif x.size <= max_entries:
            out[k] = x.tolist()
    return out


def _validate(name, keys, hparams, labels, num_steps, chunk_steps, max_runs_per_call) -> int:
    if not name or "/" in name:
        raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
    n_runs = int(np.shape(keys)[0]) if np.ndim(keys) else 0
    if n_runs < 1:
        raise ValueError("keys must hold one PRNG key per run (at least one)")
    for k, v in hparams.items():
        if np.shape(v)[:1] != (n_runs,):
            raise ValueError(f"hparams[{k!r}] has shape {np.shape(v)}; its leading axis must be the {n_runs} runs")
    if labels is not None and len(labels) != n_runs:
        raise ValueError(f"labels has {len(labels)} entries for {n_runs} runs")
    if chunk_steps <= 0 or num_steps < 0 or num_steps % chunk_steps:
        raise ValueError(f"num_steps ({num_steps}) must be a non-negative multiple of chunk_steps ({chunk_steps})")
    if max_runs_per_call < 0:
        raise ValueError(f"max_runs_per_call must be >= 0, got {max_runs_per_call}")
    return n_runs


def train(
    *,
    name: str,
    init: Callable,
    chunk: Callable,
    keys: jax.Array,
    hparams: Mapping[str, Any],
    num_steps: int,
    chunk_steps: int,
    static: tuple = (),
    shared: Any = None,
    workdir: str | None = None,
    checkpoint_dir: str | None = None,
    writer: metrics.MetricWriter | None = None,
    labels: Sequence[Mapping[str, Any]] | None = None,
    on_chunk: Callable[[ChunkContext], Mapping[str, Any] | None] | None = None,
    max_runs_per_call: int = 0,
    map_batch: int = 0,
    save_every: int | None = None,
    max_row_entries: int = 64,
    initial_state: Any = None,
    after_chunk: Callable[[int, Group], Any] | None = None,
) -> Result:
    """Trains every run to `num_steps` steps; returns the final state (host), the logged history and the groups.

    See the module docstring. `save_every` (default: every chunk) is the checkpoint interval in steps;
    `max_row_entries` bounds the size of an array metric written to a row (bigger ones are left out of the rows).
    Checkpoints go to `checkpoint_dir` when given, else to `<workdir>/checkpoints/<name>`, else nowhere.
    `initial_state` (leading axis R, host or device) starts the runs from a given state instead of `init` (which may
    then be None). `after_chunk(step, group) -> state` changes a group's state between chunks, where the change
    spans runs or needs the host (pruning and rewinding at the end of an IMP level, a gather between runs): it gets
    the steps done and the group (`group.state` is the chunk's output, on the devices) and returns the new state of
    the same structure, which is what gets checkpointed, handed to `on_chunk` and trained next.
    """
    hparams = {k: np.asarray(v) if not isinstance(v, jax.Array) else v for k, v in hparams.items()}
    n_runs = _validate(name, keys, hparams, labels, num_steps, chunk_steps, max_runs_per_call)
    if init is None and initial_state is None:
        raise ValueError("init is None: give an init function or an initial_state")
    chunk_v = sweep.vmapped(chunk, in_axes=(0, 0, None, None), static=static, donate_argnums=(0,), map_batch=map_batch)
    groups = []
    for runs in _groups(n_runs, max_runs_per_call):
        part = slice(int(runs[0]), int(runs[-1]) + 1)
        hp = sweep.put({k: v[part] for k, v in hparams.items()}, len(runs))
        if initial_state is None:
            state = sweep.vmapped(init, in_axes=(0, 0), static=static)(keys[part], hp)
        else:
            state = sweep.put(_part(initial_state, part, n_runs), len(runs))
        groups.append(Group(runs, state, hp, sweep.put_shared(shared, len(runs))))
    loop = _Loop(name, groups, chunk_v, chunk_steps, writer, labels, on_chunk, max_row_entries, after_chunk)
    ckpt_dir = checkpoint_dir or (os.path.join(workdir, "checkpoints", name) if workdir else None)
    states = checkpoint.run_chunked(
        loop.chunk,
        tuple(g.state for g in groups),
        num_steps=num_steps,
        chunk_steps=chunk_steps,
        checkpoint_dir=ckpt_dir,
        save_every=save_every if ckpt_dir else None,
        on_chunk=loop.after,
        metric_writer=writer,
        metric_run_prefix=f"{name}/",
        desc=name,
        describe_run=lambda r: _describe(r, labels),
    )
    for g, st in zip(groups, states, strict=True):  # a restored finished sweep runs no chunk
        g.state = st
    state = _concat([sweep.to_numpy(g.state, len(g.runs)) for g in groups])
    logging.info("%s: %d runs trained to step %d", name, n_runs, num_steps)
    return Result(state=state, history=_history(writer, name, n_runs, loop.logged), groups=groups)


class _Loop:
    """The per-chunk work of `train`: every group's compiled chunk, then metric rows and `on_chunk`."""

    def __init__(self, name, groups, chunk_v, chunk_steps, writer, labels, on_chunk, max_row_entries, after_chunk):
        self.name, self.groups, self.chunk_v, self.chunk_steps, self.writer = name, groups, chunk_v, chunk_steps, writer
        self.labels, self.on_chunk, self.max_row_entries = labels, on_chunk, max_row_entries
        self.after_chunk = after_chunk
        self.logged: dict[int, dict[str, np.ndarray]] = {}

    def chunk(self, states: tuple, start: int) -> tuple[tuple, dict[str, np.ndarray]]:
        """Advances every group by one chunk (the state stays on the devices); the metrics come to the host."""
        parts = []
        for g, st in zip(self.groups, states, strict=True):
            g.state, m = self.chunk_v(st, g.hparams, g.shared, np.int32(start))
            parts.append(sweep.to_numpy(m, len(g.runs)))
            if self.after_chunk is not None:
                g.state = self.after_chunk(start + self.chunk_steps, g)
        return tuple(g.state for g in self.groups), _concat(parts)

    def after(self, step: int, host: dict[str, np.ndarray]) -> None:
        """Calls `on_chunk` per group, keeps the step's values for the history and writes one row per run."""
        merged = dict(host)
        if self.on_chunk is not None:
            extra = []
            for g in self.groups:
                part = {k: np.asarray(v)[g.runs] for k, v in host.items()}
                extra.append(dict(self.on_chunk(ChunkContext(step, g.state, part, g.runs, g.hparams, g.shared)) or {}))
            if any(extra):
                merged.update(_concat(extra))
        merged.pop(checkpoint.NONFINITE, None)
        self.logged[step] = merged
        if self.writer is None:
            return
        n_runs = sum(len(g.runs) for g in self.groups)
        for r in range(n_runs):
            row = dict(self.labels[r]) if self.labels is not None else {}
            row.update(_row_values(merged, r, self.max_row_entries))
            self.writer.write(step, run=f"{self.name}/{r}", **row)


def _describe(run: int, labels: Sequence[Mapping[str, Any]] | None) -> str:
    """'run 3 (seed=1, lr=0.1)': how a stop names a run."""
    if labels is None:
        return f"run {run}"
    return f"run {run}: " + ", ".join(f"{k}={v}" for k, v in labels[run].items())


def _history(writer, name: str, n_runs: int, logged: dict[int, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every logged step's per-run values: rows of `metrics.jsonl` (earlier invocations) and this invocation's."""
    by_step: dict[int, dict[str, list]] = {}
    if writer is not None and writer.active and os.path.exists(writer.path):
        with open(writer.path) as f:
            for line in f:
                row = json.loads(line) if line.strip() else {}
                run = str(row.get("run", ""))
                if not run.startswith(f"{name}/") or row["step"] in logged:
                    continue
                r = int(run.split("/", 1)[1])
                by_step.setdefault(row["step"], {}).setdefault(r, row)
    steps = sorted(set(by_step) | set(logged))
    if not steps:
        return {"step": np.zeros(0, np.int64)}
    names = None
    table: dict[str, list] = {}
    for s in steps:
        if s in logged:
            vals = {k: np.asarray(v) for k, v in logged[s].items()}
        else:
            rows = by_step[s]
            if len(rows) != n_runs:
                continue
            common_keys = set.intersection(*(set(rows[r]) for r in range(n_runs))) - {"step", "run"}
            vals = {}
            for k in common_keys:
                try:
                    vals[k] = np.asarray([metrics_value(rows[r][k]) for r in range(n_runs)], dtype=float)
                except (TypeError, ValueError):
                    continue
        names = set(vals) if names is None else names & set(vals)
        table[s] = vals
    out = {"step": np.asarray(list(table), np.int64)}
    for k in sorted(names or ()):
        try:
            out[k] = np.stack([np.asarray(table[s][k], float) for s in table])
        except (TypeError, ValueError):
            continue
    return out


def metrics_value(v: Any) -> Any:
    """A metric row's value as a number: the strings "nan", "inf" and "-inf" (strict JSON) back to floats."""
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, list):
        return [metrics_value(x) for x in v]
    return v
