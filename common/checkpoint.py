"""Checkpoints with orbax: save every N steps, keep K, restore the latest good one, resume a chunked loop.

    state = checkpoint.run_chunked(chunk_fn, init_state, num_steps=10_000, chunk_steps=500,
                                   checkpoint_dir=os.path.join(workdir, "checkpoints"), save_every=1000)

(`run_chunked` opens and closes the `Checkpointer` itself; pass `checkpointer=` instead to manage one yourself.)

`chunk_fn(state, start_step) -> (state, metrics)` is a jitted function that advances `chunk_steps` steps (a
`lax.scan`); everything it needs to continue (params, optimizer state, PRNG keys, data cursors) lives in `state`, so a
run killed at any moment and started again resumes from the last checkpoint and ends bit-for-bit where an
uninterrupted run ends (on CPU). Typed PRNG keys in the state are stored as their raw key data and re-wrapped.
"""

from __future__ import annotations

import errno
import logging as logging_stdlib
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from common import metrics
from common.app import UserError


class _QuietOrbax(logging_stdlib.Filter):
    """Drops orbax's INFO chatter (several lines per save) from the console and log.txt; keeps its warnings."""

    def filter(self, record: logging_stdlib.LogRecord) -> bool:
        return record.levelno >= logging_stdlib.WARNING or "/orbax/" not in record.pathname.replace("\\", "/")


logging.get_absl_logger().addFilter(_QuietOrbax())


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _strip_keys(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _restore_keys(template: Any, tree: Any) -> Any:
    return jax.tree.map(
        lambda t, x: jax.random.wrap_key_data(x, impl=jax.random.key_impl(t)) if _is_key(t) else x,
        template,
        tree,
    )


def _abstract(tree: Any) -> Any:
    def leaf(x):
        x = jnp.asarray(x) if not hasattr(x, "shape") else x
        sharding = getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(leaf, tree)


class CheckpointMismatch(UserError):
    """A checkpoint whose structure or shapes differ from what this config builds (exit 2 through the CLI)."""


def _path_name(path: tuple) -> str:
    """'opt/0/mu' for a key path, the same whether a node is a namedtuple (attribute) or a dict (as orbax stores it)."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def _leaf_specs(tree: Any) -> dict[str, tuple]:
    """{path: (shape, dtype)} of every array leaf of a state tree or of orbax's stored metadata tree."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = getattr(leaf, "shape", None)
        dtype = getattr(leaf, "dtype", None)
        out[_path_name(path)] = (
            tuple(shape) if shape is not None else None,
            str(jnp.dtype(dtype)) if dtype is not None else None,
        )
    return out


def _mismatch_message(directory: str, step: int, stored: dict, wanted: dict) -> str:
    for path in sorted(set(stored) | set(wanted)):
        a, b = stored.get(path), wanted.get(path)
        if a != b:

            def fmt(x):
                return "absent" if x is None else f"shape {x[0]} {x[1]}"

            return (
                f"the checkpoint at step {step} in {directory} does not match this config: "
                f"{path.removeprefix('state/')} is "
                f"{fmt(a)} in the checkpoint, {fmt(b)} here; use another --workdir or --config.overwrite=True"
            )
    return f"the checkpoint at step {step} in {directory} does not match this config"


_RESOURCE_MARKERS = ("RESOURCE_EXHAUSTED", "out of memory", "Out of memory", "OOM", "No space left")


def _is_resource_error(e: BaseException) -> bool:
    """Out of memory or out of disk: worth re-raising rather than discarding a good checkpoint."""
    if isinstance(e, MemoryError):
        return True
    if isinstance(e, OSError) and e.errno in (errno.ENOMEM, errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e)
    return any(m in text for m in _RESOURCE_MARKERS) or (e.__cause__ is not None and _is_resource_error(e.__cause__))


class Checkpointer:
    """An orbax CheckpointManager: `save` every `save_every` steps, keeping the `keep` most recent checkpoints."""

    def __init__(self, directory: str, *, save_every: int, keep: int = 2):
        if save_every <= 0:
            raise ValueError(f"save_every must be positive, got {save_every}")
        if keep <= 0:
            raise ValueError(f"keep must be positive, got {keep}")
        self.directory = os.path.abspath(directory)
        self.save_every = int(save_every)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=True)
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
        )

    def steps(self) -> list[int]:
        """Steps with a finalized checkpoint, oldest first."""
        return sorted(self._manager.all_steps())

    def restore_latest_or(self, init_state: Any) -> tuple[Any, int]:
        """Returns (state, step) from the newest readable checkpoint, or (init_state, 0) when there is none.

        `init_state` gives the structure, dtypes and shardings. Three kinds of failure are told apart:
        - a half-written or corrupt step (its metadata or data cannot be read) is skipped with a warning and the
          previous one is used;
        - a checkpoint whose structure, shapes or dtypes differ from `init_state` raises `CheckpointMismatch` (the
          CLI exits 2: the workdir holds a run of another config or another version of the code);
        - resource errors while restoring (out of memory, no space) are re-raised as they are.
        """
        self._manager.reload()
        template = _strip_keys(init_state)
        abstract = {"state": _abstract(template)}
        for step in reversed(self.steps()):
            try:
                stored = self._manager.item_metadata(step)
                stored = _leaf_specs(stored)
            except Exception as e:  # noqa: BLE001 - unreadable metadata: a damaged or half-written step
                if _is_resource_error(e):
                    raise
                self._warn_unreadable(step, e)
                continue
            wanted = _leaf_specs(abstract)
            if stored != wanted:
                raise CheckpointMismatch(_mismatch_message(self.directory, step, stored, wanted))
            try:
                restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
            except Exception as e:  # noqa: BLE001 - metadata matched, so a failure here means damaged data
                if _is_resource_error(e):
                    raise
                self._warn_unreadable(step, e)
                continue
            logging.info("resumed from checkpoint at step %d (%s)", step, self.directory)
            return _restore_keys(init_state, restored["state"]), int(step)
        return init_state, 0

    def _warn_unreadable(self, step: int, e: BaseException) -> None:
        logging.warning(
            "checkpoint at step %d in %s is unreadable (%s); trying the previous one",
            step,
            self.directory,
            " ".join(str(e).split())[:200],
        )

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Saves `state` at `step` if step is a multiple of save_every (or `force`); returns whether it saved.

        Zero-size arrays are refused with a ValueError naming the leaf (orbax can hang writing them): leave empty
        entries out of the state or give them a dummy length.
        """
        if not force and step % self.save_every != 0:
            return False
        empty = [p for p, (shape, _) in _leaf_specs({"state": _strip_keys(state)}).items() if shape and 0 in shape]
        if empty:
            raise ValueError(f"cannot checkpoint zero-size arrays (orbax does not write them): {', '.join(empty)}")
        if step in self._manager.all_steps():
            return False
        return bool(
            self._manager.save(int(step), args=ocp.args.StandardSave({"state": _strip_keys(state)}), force=True)
        )

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _select(pred: jax.Array, a: Any, b: Any) -> Any:
    if _is_key(a):
        impl = jax.random.key_impl(a)
        return jax.random.wrap_key_data(jnp.where(pred, jax.random.key_data(a), jax.random.key_data(b)), impl=impl)
    return jnp.where(pred, a, b)


NONFINITE = "first_nonfinite"  # the metrics key through which a chunk reports its first non-finite step


def guarded_scan(
    step_fn: Callable[[Any, jax.Array], tuple[Any, Any]],
    state: Any,
    start_step: Any,
    length: int,
    *,
    watch: Callable[[Any], Any] | None = None,
) -> tuple[Any, Any, jax.Array]:
    """`lax.scan` of `step_fn(state, step) -> (state, out)` over steps start_step .. start_step+length-1 that stops.

    At the first step whose watched outputs (`watch(out)`, default every floating leaf of `out`) hold a NaN or an
    infinity, the state stops being updated: it stays the state before that step for the rest of the chunk. Returns
    `(state, outs, first_nonfinite)` with `outs` stacked over the chunk's steps and `first_nonfinite` the int32
    global step number at which it happened (-1 when every step was finite). Put it in the chunk's metrics under
    `checkpoint.NONFINITE`: `run_chunked` then stops the run there, naming the step, without saving the bad state.
    Works unchanged under `vmap` (one first_nonfinite per run).
    """
    watch = watch or (lambda out: out)

    def body(carry, i):
        st, bad = carry
        step = jnp.asarray(start_step, jnp.int32) + i
        new, out = step_fn(st, step)
        leaves = [jnp.asarray(x) for x in jax.tree.leaves(watch(out))]
        leaves = [x for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
        ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)
        keep = (bad < 0) & ok
        st = jax.tree.map(lambda a, b: _select(keep, a, b), new, st)
        bad = jnp.where((bad < 0) & ~ok, step, bad)
        return (st, bad), out

    (state, bad), outs = jax.lax.scan(body, (state, jnp.array(-1, jnp.int32)), jnp.arange(length, dtype=jnp.int32))
    return state, outs, bad


def _stop_if_nonfinite(
    chunk_metrics: Any, checkpointer: Checkpointer | None, desc: str, describe_run: Callable[[int], str] | None = None
) -> None:
    """Raises NonFiniteError naming the first non-finite step a chunk reported under NONFINITE (see guarded_scan)."""
    if not isinstance(chunk_metrics, Mapping) or NONFINITE not in chunk_metrics:
        return
    from common import sweep  # a sweep's metrics may span several hosts

    bad = np.atleast_1d(sweep.to_numpy(chunk_metrics[NONFINITE])).reshape(-1)
    hits = np.flatnonzero(bad >= 0)
    if hits.size == 0:
        return
    first = int(bad[hits].min())
    run = int(hits[np.argmin(bad[hits])])
    where = f" (run {run})" if bad.size > 1 else ""
    if describe_run is not None:
        where = f" ({describe_run(run)})"
    kept = ""
    if checkpointer is not None:
        checkpointer.wait()
        steps = checkpointer.steps()
        kept = f"; the last good checkpoint is step {steps[-1]}" if steps else "; no checkpoint was written"
    raise metrics.NonFiniteError(f"non-finite loss at step {first}{where} of {desc}; stopping{kept}")


def run_chunked(
    chunk_fn: Callable[[Any, int], tuple[Any, Any]],
    init_state: Any,
    *,
    num_steps: int,
    chunk_steps: int,
    checkpointer: Checkpointer | None = None,
    checkpoint_dir: str | None = None,
    save_every: int | None = None,
    on_chunk: Callable[[int, Any], None] | None = None,
    metric_writer: metrics.MetricWriter | None = None,
    metric_run_prefix: str | None = None,
    desc: str = "train",
    describe_run: Callable[[int], str] | None = None,
) -> Any:
    """Advances `init_state` to `num_steps` steps in chunks of `chunk_steps`, checkpointing and resuming.

    `chunk_fn(state, start_step)` must advance exactly `chunk_steps` steps. After each chunk `on_chunk(end_step,
    metrics)` is called (log, check finiteness) and the checkpointer saves when its interval is reached; the final state
    is always saved. On resume, rows of `metric_writer` past the restored step are dropped so none are duplicated
    (only rows whose `run` starts with `metric_run_prefix`, when given: several sweeps can share one file).

    A non-finite stop names the run by `describe_run(run_index)` when given (e.g. its hyperparameters).

    Checkpoints go either to a `Checkpointer` you own (`checkpointer=`) or to `checkpoint_dir`, for which one is
    opened here (saving every `save_every` steps, default every chunk) and closed before returning or raising.
    Neither: nothing is saved and a restart begins at step 0.
    """
    if chunk_steps <= 0 or num_steps < 0 or num_steps % chunk_steps != 0:
        raise ValueError(f"num_steps ({num_steps}) must be a non-negative multiple of chunk_steps ({chunk_steps})")
    if checkpoint_dir is not None:
        if checkpointer is not None:
            raise ValueError("pass checkpointer= or checkpoint_dir=, not both")
        with Checkpointer(checkpoint_dir, save_every=save_every or chunk_steps) as owned:
            return run_chunked(
                chunk_fn,
                init_state,
                num_steps=num_steps,
                chunk_steps=chunk_steps,
                checkpointer=owned,
                on_chunk=on_chunk,
                metric_writer=metric_writer,
                metric_run_prefix=metric_run_prefix,
                desc=desc,
                describe_run=describe_run,
            )
    if save_every is not None and checkpointer is None:
        raise ValueError("save_every needs checkpoint_dir=")
    state, step = checkpointer.restore_latest_or(init_state) if checkpointer else (init_state, 0)
    if step > num_steps:
        raise ValueError(f"checkpoint at step {step} is beyond num_steps={num_steps}: wrong workdir?")
    if step % chunk_steps != 0:
        raise ValueError(f"checkpoint at step {step} is not on a chunk boundary of {chunk_steps}")
    if metric_writer is not None:
        metric_writer.truncate_after(step, run_prefix=metric_run_prefix)
    bar = metrics.progress(num_steps, desc)
    bar.update(step)
    try:
        while step < num_steps:
            state, chunk_metrics = chunk_fn(state, step)
            _stop_if_nonfinite(chunk_metrics, checkpointer, desc, describe_run)
            step += chunk_steps
            if on_chunk is not None:
                on_chunk(step, chunk_metrics)
            if checkpointer is not None:
                checkpointer.save(step, state, force=step == num_steps)
            bar.update(chunk_steps)
    finally:
        bar.close()
        if checkpointer is not None:
            checkpointer.wait()
    return state
