"""The entry point of every `<pkg>/main.py`: flags, workdir, config.json first, results.json last.

    python -m <pkg>.main --config=<pkg>/configs/default.py[:variant] [--workdir=DIR] [--config.key=value ...]

An experiment is a module (or any object) with
  - `run(config, workdir) -> dict` (required): does the work and returns the results,
  - `validate(config) -> None` (optional): raises ConfigError for impossible values,
  - `report(results) -> list[dict]` (optional): headline numbers for common.reproduce.

Bad configs (unknown key, wrong type, impossible value) exit with status 2 and one line naming the key, before
anything is written. Bad user input found while running (raise UserError) exits 2 too and removes a workdir the run
created. A finished run (results.json present) is reported, not redone, unless `config.overwrite` is True.
"""

from __future__ import annotations

import glob
import logging as py_logging
import os
import shutil
import sys
import time
from typing import Any

from absl import app as absl_app
from absl import flags, logging
from ml_collections import ConfigDict, config_flags

from common import metrics

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, optionally with ':variant'.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default runs/<pkg>/<config-name>).")
_DISTRIBUTED = flags.DEFINE_bool(
    "jax_distributed",
    False,
    "Join a multi-host run with jax.distributed.initialize() before anything touches the backend. On a TPU pod "
    "slice or under SLURM this flag alone is enough; elsewhere add --coordinator_address, --num_processes and "
    "--process_id. Every process runs the same command; process 0 alone writes files and logs.",
)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (implies --jax_distributed).")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "How many processes the run has (with --coordinator_address)."
)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes - 1.")

# Files and folders an experiment owns inside its workdir; `overwrite` removes exactly these.
_OWNED = ("config.json", "results.json", "metrics.jsonl", "log.txt", "figures", "checkpoints")


class ConfigError(ValueError):
    """An impossible config value. `key` is the dotted config field."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


class UserError(Exception):
    """Bad user input found while running (unreadable file, non-finite data...): one line, exit 2."""


def _package_of(experiment: Any) -> str:
    name = getattr(experiment, "__name__", None) or type(experiment).__module__
    return name.split(".")[0]


def _config_name(spec: str) -> str:
    """'icl/configs/default.py:smoke' -> 'default_smoke'."""
    path, _, arg = spec.partition(":")
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{stem}_{arg.replace(',', '_').replace('=', '-')}" if arg else stem


def validate_common(config: ConfigDict) -> None:
    """Checks the fields every config has: seed (int >= 0) and overwrite (bool)."""
    if "seed" not in config:
        raise ConfigError("seed", "every config needs an integer seed")
    if not isinstance(config.seed, int) or isinstance(config.seed, bool) or config.seed < 0:
        raise ConfigError("seed", f"must be a non-negative integer, got {config.seed!r}")
    if "overwrite" in config and not isinstance(config.overwrite, bool):
        raise ConfigError("overwrite", f"must be True or False, got {config.overwrite!r}")


def validate(experiment: Any, config: ConfigDict) -> None:
    """Runs the common checks and the experiment's own `validate` hook."""
    validate_common(config)
    hook = getattr(experiment, "validate", None)
    if hook is not None:
        hook(config)


def _config_dict(config: ConfigDict) -> dict:
    return metrics.to_jsonable(config.to_dict())


def _differences(old: dict, new: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every field that differs, in sorted key order (`overwrite` ignored)."""
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        if prefix == "" and k == "overwrite":
            continue
        a, b = old.get(k, _ABSENT), new.get(k, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, prefix + k + ".")
        elif a != b:
            out.append((prefix + k, a, b))
    return out


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


def _owned_paths(experiment: Any, workdir: str) -> list[str]:
    """Every path in `workdir` the experiment owns: the standard outputs and its declared `OUTPUTS` patterns."""
    patterns = list(_OWNED) + list(getattr(experiment, "OUTPUTS", ()))
    paths = []
    for pattern in patterns:
        if os.path.isabs(pattern) or ".." in pattern.split("/"):
            raise ValueError(f"OUTPUTS entries are patterns inside the workdir, got {pattern!r}")
        paths += glob.glob(os.path.join(glob.escape(workdir), pattern))
    return sorted(set(paths))


def is_writer() -> bool:
    """Whether this process writes files and logs (process 0 of a multi-host run; always True on one host)."""
    return metrics.is_writer()


def _barrier(name: str) -> None:
    """All processes of a multi-host run wait here (no-op on one host)."""
    if metrics.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def execute(experiment: Any, config: ConfigDict, workdir: str) -> dict:
    """Validates `config`, runs `experiment.run(config, workdir)` and writes config.json / results.json.

    Returns the results dict (read back from results.json if the run had already finished).
    Raises ConfigError before writing anything when the config is invalid.
    """
    validate(experiment, config)
    results_path = os.path.join(workdir, "results.json")
    config_path = os.path.join(workdir, "config.json")
    overwrite = bool(config.get("overwrite", False))
    new_cfg = _config_dict(config)

    if os.path.exists(config_path) and not overwrite:
        diff = _differences(metrics.read_json(config_path), new_cfg)
        if diff:
            key, a, b = diff[0]
            state = "finished" if os.path.exists(results_path) else "unfinished"
            raise ConfigError(
                key,
                f"is {a!r} in the {state} run in {workdir} but {b!r} in this config; name another --workdir for a "
                "fresh run, or pass --config.overwrite=True to replace that one",
            )
    if os.path.exists(results_path) and not overwrite:
        logging.info("finished run found in %s; not redone (pass --config.overwrite=True to redo)", workdir)
        return metrics.read_json(results_path)

    created = not os.path.exists(workdir)
    _barrier("workdir checked")  # every process has looked before process 0 creates anything
    writer = is_writer()
    if writer:
        if overwrite:
            for p in _owned_paths(experiment, workdir):
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                elif os.path.lexists(p):
                    os.unlink(p)
        os.makedirs(workdir, exist_ok=True)
        metrics.atomic_write_json(config_path, new_cfg)
    _barrier("config written")
    handler = None
    if writer:
        handler = py_logging.FileHandler(os.path.join(workdir, "log.txt"))
        handler.setFormatter(py_logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.get_absl_logger().addHandler(handler)
    start = time.time()
    try:
        results = experiment.run(config, workdir)
    except (UserError, ConfigError):
        if created and writer:
            if handler is not None:
                logging.get_absl_logger().removeHandler(handler)
                handler.close()
                handler = None
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        if handler is not None:
            logging.get_absl_logger().removeHandler(handler)
            handler.close()
    if not isinstance(results, dict):
        raise TypeError(f"{_package_of(experiment)}.experiment.run must return a dict, got {type(results).__name__}")
    results = dict(results)
    results.setdefault("runtime_seconds", round(time.time() - start, 2))
    if writer:
        metrics.atomic_write_json(results_path, results)
        logging.info("results written to %s", results_path)
    return metrics.to_jsonable(results)


def _fail(prefix: str, err: BaseException, code: int) -> None:
    message = " ".join(str(err).split())  # one line
    sys.stderr.write(f"{prefix}: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def _short(err: BaseException) -> str:
    """The informative last line of an error whose message may hold a whole traceback."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    if len(lines) > 1 and any(ln.startswith("Traceback") for ln in lines):
        return lines[-1]
    return " ".join(lines)


def _unknown_override(argv: list[str], err: BaseException) -> str | None:
    """Names the --config.<key> override that failed because the key does not exist, if that was the error."""
    text = str(err)
    for arg in argv[1:]:
        if arg.startswith("--config."):
            key = arg[2:].split("=", 1)[0]
            if repr(key.split(".")[-1]) in text and "could not convert" not in text:
                return key
    return None


def _parse_flags(argv: list[str]) -> list[str]:
    """Parses flags; a bad flag or config (unknown key, wrong type, unloadable file) is one line and exit 2."""
    try:
        rest = FLAGS(argv)
        if FLAGS["config"].present or FLAGS["config"].value is not None:
            _ = "seed" in FLAGS.config  # the file is loaded lazily: surface its errors here
        return rest
    except Exception as e:  # flags.Error, and errors raised while loading the config file itself
        key = _unknown_override(argv, e)
        if key is not None:
            _fail("config error", ValueError(f"{key}: unknown key"), 2)
        if isinstance(e, OSError) and "Failed loading config file" in str(e):
            attempted = [a for a in argv[1:] if a.startswith("--config=")]
            _fail(
                "config error",
                ValueError(f"cannot load {attempted[-1] if attempted else '--config'}: {_short(e.__cause__ or e)}"),
                2,
            )
        _fail("config error", ValueError(_short(e)), 2)
    return []  # unreachable


def use_cores_as_devices() -> int | None:
    """On a CPU host, exposes one XLA CPU device per core, so `common.sweep` shards a sweep's runs over the cores.

    XLA runs a small vmapped program on one CPU device mostly on one core; with one device per core the runs of a
    sweep execute side by side (one large computation still uses every core: the thread pool is shared). On GPU/TPU
    hosts only the CPU backend, which the sweeps do not use, gets the extra devices (the accelerator stays the
    default backend). Does nothing when the user already chose a count
    (`XLA_FLAGS=--xla_force_host_platform_device_count=N` or `JAX_NUM_CPU_DEVICES`) or once JAX has started.
    Returns the count it set, or None.
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") or os.environ.get(
        "JAX_NUM_CPU_DEVICES"
    ):
        return None
    import jax

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        jax.config.update("jax_num_cpu_devices", cores)
    except RuntimeError:  # the backend is already up: keep what it has
        return None
    return cores


def initialize_distributed(
    enabled: bool = False,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Calls `jax.distributed.initialize` when asked (or when a coordinator address is given); returns whether it did.

    Must run before anything touches the JAX backend. With no address, JAX detects the cluster (TPU pod slices,
    SLURM, Open MPI); otherwise all three of address, process count and process id are needed. Processes other
    than 0 log warnings and errors only.
    """
    explicit = [coordinator_address, num_processes, process_id]
    if not enabled and all(v is None for v in explicit):
        return False
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
        raise ConfigError(
            "coordinator_address",
            "--coordinator_address, --num_processes and --process_id go together (or pass --jax_distributed alone "
            "on a TPU pod slice or under SLURM)",
        )
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ConfigError("process_id", f"must be in [0, {num_processes}), got {process_id}")
    import jax

    kwargs = {}
    if coordinator_address is not None:
        kwargs = dict(coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id)
    jax.distributed.initialize(**kwargs)
    if not metrics.is_writer():
        logging.set_verbosity(logging.WARNING)
    return True


def run(experiment: Any) -> None:
    """Runs `experiment` from the command line (see the module docstring)."""

    def main(argv: list[str]) -> None:
        try:
            distributed = initialize_distributed(
                _DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
            )
        except ConfigError as e:
            _fail("config error", e, 2)
        cores = use_cores_as_devices()
        if len(argv) > 1:
            _fail("config error", ValueError(f"unexpected arguments {argv[1:]}"), 2)
        if _CONFIG.value is None:
            _fail(
                "config error",
                ValueError("--config is required, e.g. --config=<pkg>/configs/default.py"),
                2,
            )
        spec = config_flags.get_config_filename(FLAGS["config"])
        workdir = _WORKDIR.value or os.path.join("runs", _package_of(experiment), _config_name(spec))
        logging.info("config %s -> workdir %s", spec, workdir)
        if cores is not None:
            logging.info("CPU: one XLA device per core (%d)", cores)
        if distributed:
            logging.info("multi-host: process %d of %d", metrics.process_index(), metrics.process_count())
        try:
            execute(experiment, _CONFIG.value, workdir)
        except ConfigError as e:
            _fail("config error", e, 2)
        except UserError as e:
            _fail("error", e, 2)
        except metrics.NonFiniteError as e:
            _fail("stopped", e, 1)

    absl_app.run(main, flags_parser=_parse_flags)
