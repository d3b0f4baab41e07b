"""Metric files, atomic writes, progress reporting and finiteness checks."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging


def process_index() -> int:
    """This process's index in a multi-host run (0 on one host), read without starting the JAX backend."""
    try:
        from jax._src import distributed

        state = distributed.global_state
        if getattr(state, "client", None) is not None and state.process_id is not None:
            return int(state.process_id)
    except (ImportError, AttributeError):  # pragma: no cover - private API moved: fall back to the public one
        import jax

        return jax.process_index()
    return 0


def process_count() -> int:
    """How many processes a multi-host run has (1 on one host), read without starting the JAX backend."""
    try:
        from jax._src import distributed

        state = distributed.global_state
        if getattr(state, "client", None) is not None and state.num_processes is not None:
            return int(state.num_processes)
    except (ImportError, AttributeError):  # pragma: no cover
        import jax

        return jax.process_count()
    return 1


def is_writer() -> bool:
    """Process 0 alone writes files and logs in a multi-host run."""
    return process_index() == 0


class NonFiniteError(FloatingPointError):
    """A loss or metric became NaN or infinite; training stops at that step."""


def to_jsonable(obj: Any) -> Any:
    """Converts numpy/jax scalars and arrays (nested in dicts/lists) to JSON values.

    Non-finite floats become the strings "inf", "-inf" and "nan" so the file stays strict JSON.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        if arr.ndim == 0:
            return to_jsonable(arr.item())
        return [to_jsonable(v) for v in arr.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask(0) briefly affects every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: str, write, mode: str = "w") -> None:
    """Writes via a temporary file in the same directory, then os.replace: readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the mode an ordinary open() would (0666 less the umask).
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    """Writes `obj` (converted with to_jsonable) as indented JSON, atomically."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n"
    _atomic_write(path, lambda f: f.write(text))


def atomic_save_npy(path: str, array: Any) -> None:
    """Saves an array as .npy atomically (no pickle)."""
    arr = np.asarray(array)
    _atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False), mode="wb")


def atomic_savez(path: str, **arrays: Any) -> None:
    """Saves several arrays as one .npz atomically (no pickle)."""
    arrs = {k: np.asarray(v) for k, v in arrays.items()}
    _atomic_write(path, lambda f: np.savez(f, **arrs), mode="wb")


def read_json(path: str) -> Any:
    """Reads a JSON file written by atomic_write_json."""
    with open(path) as f:
        return json.load(f)


_LAST_STEP: list[int] = []  # the step of the last row any MetricWriter of this process wrote


def last_logged_step() -> int | None:
    """The step of the last metric row written in this process (None before the first): what Ctrl-C reports."""
    return _LAST_STEP[-1] if _LAST_STEP else None


TENSORBOARD_ENV = "GANGULI_JAX_TENSORBOARD"  # "off" stops the TensorBoard event files even with tensorboardX


def _tensorboard_module():
    """tensorboardX's SummaryWriter when it is installed (`pip install .[tensorboard]`) and not switched off."""
    if os.environ.get(TENSORBOARD_ENV, "").strip().lower() in ("off", "0", "false", "no"):
        return None
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def _is_scalar(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_, str)):
        return False
    if isinstance(v, (int, float, np.integer, np.floating)):
        return True
    return hasattr(v, "shape") and getattr(v, "shape", None) == () and np.issubdtype(np.asarray(v).dtype, np.number)


class MetricWriter:
    """Appends one JSON object per logged step to a JSONL file (`step`, `run`, metric names).

    On resume, rows with a step beyond the restored step can be dropped with `truncate_after(step)` so a killed run
    that is restarted does not leave duplicated rows. In a multi-host run only process 0 opens and writes the file;
    on the others every method does nothing.

    With tensorboardX installed (the `[tensorboard]` extra), every scalar of a row is also written as a TensorBoard
    event beside the file, in `tensorboard/<run>/` (one TensorBoard run per sweep run): `tensorboard --logdir
    <workdir>/tensorboard`. After `truncate_after(step)` the events past `step` are purged as the rows are.
    Set GANGULI_JAX_TENSORBOARD=off to write none.
    """

    def __init__(self, path: str, *, tensorboard: bool = True):
        self.path = path
        self.active = is_writer()
        self._f = None
        self._tb_class = _tensorboard_module() if (tensorboard and self.active) else None
        self._tb: dict[str, Any] = {}
        self._tb_purge: dict[str | None, int] = {}  # run prefix (None: every run) -> first step to hide
        if self.active:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._f = open(path, "a")

    @property
    def tensorboard_dir(self) -> str | None:
        """Where the event files go (None when tensorboardX is not installed or switched off)."""
        if self._tb_class is None:
            return None
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), "tensorboard")

    def _tensorboard(self, step: int, run: Any, scalars: dict) -> None:
        values = {k: float(np.asarray(v)) for k, v in scalars.items() if _is_scalar(v)}
        # a NaN or inf (a barrier not defined at level 0, a diverged run) stays in the JSONL row; tensorboardX would
        # warn for each one and plot nothing
        values = {k: v for k, v in values.items() if np.isfinite(v)}
        if not values:
            return
        name = "all" if run is None else str(run).replace(os.sep, "/")
        writer = self._tb.get(name)
        if writer is None:
            logdir = os.path.join(self.tensorboard_dir, *[p for p in name.split("/") if p not in ("", ".", "..")])
            purge = [v for p, v in self._tb_purge.items() if p is None or str(run).startswith(p)]
            writer = self._tb[name] = self._tb_class(logdir=logdir, purge_step=min(purge, default=None), flush_secs=10)
        for k, v in values.items():
            writer.add_scalar(k, v, global_step=int(step))

    def _close_tensorboard(self) -> None:
        for writer in self._tb.values():
            writer.close()
        self._tb = {}

    def write(self, step: int, run: int | str | None = None, **scalars: Any) -> None:
        _LAST_STEP[:] = [int(step)]
        if not self.active:
            return
        row: dict[str, Any] = {"step": int(step)}
        if run is not None:
            row["run"] = run
        row.update(scalars)
        self._f.write(json.dumps(to_jsonable(row)) + "\n")
        self._f.flush()
        if self._tb_class is not None:
            self._tensorboard(step, run, scalars)

    def truncate_after(self, step: int, run_prefix: str | None = None) -> None:
        """Drops rows whose step is greater than `step` (used after restoring a checkpoint at `step`).

        With `run_prefix`, only rows whose `run` starts with it are dropped: an experiment that trains several
        sweeps into one file (each restarting at step 0) resumes one of them without touching the others' rows.
        """
        if not self.active:
            return
        self._f.close()

        def keep(row: dict) -> bool:
            if row.get("step", 0) <= step:
                return True
            return run_prefix is not None and not str(row.get("run", "")).startswith(run_prefix)

        with open(self.path) as f:
            rows = [line for line in f if line.strip() and keep(json.loads(line))]
        _atomic_write(self.path, lambda f: f.writelines(rows))
        self._f = open(self.path, "a")
        if self._tb_class is not None:  # new event files hide the old files' events from step + 1 on
            self._close_tensorboard()
            self._tb_purge[run_prefix] = int(step) + 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
        self._close_tensorboard()

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl(path: str) -> list[dict]:
    """Reads every row of a JSONL metrics file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}" if h else f"{m:d}:{sec:02d}"


class _LogProgress:
    """Progress as log lines (non-terminal output): at most one line per `every` seconds, with ETA."""

    def __init__(self, total: int, desc: str, every: float = 10.0):
        self.total, self.desc, self.every = max(int(total), 1), desc, every
        self.n = 0
        self.start = self._last = time.time()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.time()
        if now - self._last >= self.every or self.n >= self.total:
            self._last = now
            elapsed = now - self.start
            eta = elapsed / self.n * (self.total - self.n) if self.n else float("nan")
            logging.info(
                "%s: %d/%d (%.0f%%) elapsed %s eta %s",
                self.desc,
                self.n,
                self.total,
                100.0 * self.n / self.total,
                _fmt_seconds(elapsed),
                _fmt_seconds(eta) if math.isfinite(eta) else "?",
            )

    def close(self) -> None:
        pass


def progress(total: int, desc: str = "progress", *, every: float = 10.0):
    """A progress reporter with `.update(n)` and `.close()`: a tqdm bar on a terminal, log lines with ETA otherwise."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, dynamic_ncols=True)
    return _LogProgress(total, desc, every)


def check_finite(value: Any, what: str = "loss", step: int | None = None) -> None:
    """Raises NonFiniteError naming `what` and `step` if any entry of `value` is NaN or infinite."""
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        where = f" at step {step}" if step is not None else ""
        raise NonFiniteError(f"non-finite {what}{where} ({bad} of {arr.size} entries); stopping")
