"""Checkpoints with orbax: save every N steps, keep K, restore the latest good one, resume a chunked loop.

    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), save_every=1000, keep=2)
    state = checkpoint.run_chunked(chunk_fn, init_state, num_steps=10_000, chunk_steps=500, checkpointer=ckpt)

`chunk_fn(state, start_step) -> (state, metrics)` is a jitted function that advances `chunk_steps` steps (a
`lax.scan`); everything it needs to continue (params, optimizer state, PRNG keys, data cursors) lives in `state`, so a
run killed at any moment and started again resumes from the last checkpoint and ends bit-for-bit where an
uninterrupted run ends (on CPU). Typed PRNG keys in the state are stored as their raw key data and re-wrapped.
"""

from __future__ import annotations

import logging as logging_stdlib
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging

from common import metrics


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
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        """Steps with a finalized checkpoint, oldest first."""
        return sorted(self._manager.all_steps())

    def restore_latest_or(self, init_state: Any) -> tuple[Any, int]:
        """Returns (state, step) from the newest readable checkpoint, or (init_state, 0) when there is none.

        `init_state` gives the structure, dtypes and shardings. A checkpoint that cannot be read (corrupt or half
        written) is skipped with a warning and the previous one is used.
        """
        self._manager.reload()
        template = _strip_keys(init_state)
        abstract = {"state": _abstract(template)}
        for step in reversed(self.steps()):
            try:
                restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
            except Exception as e:  # noqa: BLE001 - any failure to read means this checkpoint is unusable
                logging.warning(
                    "checkpoint at step %d in %s is unreadable (%s); trying the previous one",
                    step,
                    self.directory,
                    " ".join(str(e).split())[:200],
                )
                continue
            logging.info("resumed from checkpoint at step %d (%s)", step, self.directory)
            return _restore_keys(init_state, restored["state"]), int(step)
        return init_state, 0

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Saves `state` at `step` if step is a multiple of save_every (or `force`); returns whether it saved."""
        if not force and step % self.save_every != 0:
            return False
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


def run_chunked(
    chunk_fn: Callable[[Any, int], tuple[Any, Any]],
    init_state: Any,
    *,
    num_steps: int,
    chunk_steps: int,
    checkpointer: Checkpointer | None = None,
    on_chunk: Callable[[int, Any], None] | None = None,
    metric_writer: metrics.MetricWriter | None = None,
    metric_run_prefix: str | None = None,
    desc: str = "train",
) -> Any:
    """Advances `init_state` to `num_steps` steps in chunks of `chunk_steps`, checkpointing and resuming.

    `chunk_fn(state, start_step)` must advance exactly `chunk_steps` steps. After each chunk `on_chunk(end_step,
    metrics)` is called (log, check finiteness) and the checkpointer saves when its interval is reached; the final state
    is always saved. On resume, rows of `metric_writer` past the restored step are dropped so none are duplicated
    (only rows whose `run` starts with `metric_run_prefix`, when given: several sweeps can share one file).
    """
    if chunk_steps <= 0 or num_steps < 0 or num_steps % chunk_steps != 0:
        raise ValueError(f"num_steps ({num_steps}) must be a non-negative multiple of chunk_steps ({chunk_steps})")
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
