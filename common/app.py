"""The entry point of every `<pkg>/main.py`: flags, workdir, config.json first, results.json last.

    python -m <pkg>.main --config=<pkg>/configs/default.py[:variant] [--workdir=DIR] [--config.key=value ...]

An experiment is a module (or any object) with
  - `run(config, workdir) -> dict` (required): does the work and returns the results,
  - `validate(config) -> None` (optional): raises ConfigError for impossible values,
  - `report(results) -> list[dict]` (optional): headline numbers for common.reproduce.

Bad configs (unknown key, wrong type, impossible value) exit with status 2 and one line naming the key, before
anything is written. Bad user input found while running (raise UserError) exits 2 too and removes a workdir the run
created. A finished run (results.json present) is reported, not redone, unless `config.overwrite` is True.
`--help` / `-h` print the config's fields with their values and the config file's comments, and exit 0. The workdir
is checked (not a file, writable) before anything runs. Ctrl-C stops with one line naming the step and exit 130; the
same command resumes. config.json and results.json carry `provenance` (code version, library versions, devices,
date, command line); `provenance` is not part of the config a resumed run is compared with.

Single-process CLI runs use JAX's persistent compilation cache (`enable_compilation_cache`), so a second run of a
config loads its compiled programs instead of compiling them again.
"""

from __future__ import annotations

import datetime
import glob
import logging as py_logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from absl import app as absl_app
from absl import flags, logging
from ml_collections import ConfigDict, config_flags

from common import metrics
from common.config_help import (  # noqa: F401  (part of this module's API)
    _HELP_ARGS,
    ROOT,
    _config_arg,
    _diagnose,
    _LoadError,
    _package_of,
    _short,
    _with_resolved_config,
    config_comments,
    config_name,
    help_text,
    load_config,
    resolve_config_path,
)

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
_OWNED = ("config.json", "results.json", "metrics.jsonl", "log.txt", "figures", "checkpoints", "tensorboard")

# Keys config.json holds besides the config itself; they never make a resumed run look like another config.
_META_KEYS = ("provenance", "resumed")

# The environment variable that moves (a path) or disables ("off", "0" or empty) the persistent compilation cache.
CACHE_ENV = "GANGULI_JAX_COMPILATION_CACHE"


class ConfigError(ValueError):
    """An impossible config value. `key` is the dotted config field."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


class UserError(Exception):
    """Bad user input found while running (unreadable file, non-finite data...): one line, exit 2."""


class WorkdirError(UserError):
    """The workdir cannot be used (a file, not writable): one line naming --workdir, exit 2, nothing written."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message names the last logged step and how to resume."""


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
        if prefix == "" and (k == "overwrite" or k in _META_KEYS):
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


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out


def provenance(argv: list[str] | None = None) -> dict:
    """What produced a run: code version (git commit and whether the tree had uncommitted changes, or the installed
    package version), library versions, JAX's devices, the UTC date and the command line."""
    import importlib.metadata as md

    import jax

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    # .git is a folder in a clone and a file in a worktree or a submodule
    commit = _git("rev-parse", "HEAD") if os.path.exists(os.path.join(ROOT, ".git")) else None
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    devices = jax.devices()
    return {
        "commit": commit.strip() if commit else None,
        "dirty": bool(status.strip()) if status is not None else None,
        "package_version": version("ganguli-jax"),
        "versions": {
            d: version(d) for d in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "ml-collections")
        },
        "python": sys.version.split()[0],
        "devices": {
            "platform": devices[0].platform,
            "kind": devices[0].device_kind,
            "count": len(devices),
            "process_count": jax.process_count(),
        },
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "argv": _command_line() if argv is None else list(argv),
    }


def _command_line() -> list[str]:
    """sys.argv as typed: `python -m icl.main ...` rather than the path of icl/main.py."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is not None and main_spec.name and sys.argv:
        return ["python", "-m", main_spec.name.removesuffix(".__main__"), *sys.argv[1:]]
    return list(sys.argv)


def check_workdir(workdir: str, *, flag: str = "workdir") -> None:
    """Raises WorkdirError (naming `flag`) when `workdir` is a file, lies below a file, or cannot be written."""
    name = f"--{flag}={workdir}" if flag else f"workdir {workdir}"
    if os.path.lexists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"{name}: exists and is not a directory")
    existing = os.path.abspath(workdir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise WorkdirError(f"{name}: {existing} is a file, not a directory")
    try:  # try it: os.access says yes to root even on a read-only file system
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".write-test."))
    except OSError as e:
        target = "is not writable" if existing == os.path.abspath(workdir) else f"cannot be created in {existing}"
        raise WorkdirError(f"{name}: {target} ({e.strerror or e})") from None


def _last_step(workdir: str) -> int:
    """The step of the last metric row this process wrote (0 before the first one)."""
    return metrics.last_logged_step() or 0


def _to_log_file(handler: py_logging.Handler | None, level: int, message: str) -> None:
    """Writes one line to log.txt only (the console gets the CLI's own one-line message)."""
    if handler is not None:
        handler.handle(py_logging.LogRecord("common.app", level, __file__, 0, message, None, None))


def _refuse_another_config(workdir: str, new_cfg: dict) -> dict | None:
    """The config.json of an earlier run in `workdir` (None if there is none); ConfigError if it differs from
    `new_cfg` (naming the first differing key and both values)."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        return None
    old_cfg = metrics.read_json(config_path)
    diff = _differences(old_cfg, new_cfg)
    if diff:
        key, a, b = diff[0]
        state = "finished" if os.path.exists(os.path.join(workdir, "results.json")) else "unfinished"
        raise ConfigError(
            key,
            f"is {a!r} in the {state} run in {workdir} but {b!r} in this config; name another --workdir for a "
            "fresh run, or pass --config.overwrite=True to replace that one",
        )
    return old_cfg


def _write_config(experiment: Any, workdir: str, new_cfg: dict, old_cfg: dict | None, overwrite: bool) -> None:
    """Removes what the experiment owns (overwrite), then writes config.json with its provenance: a resumed run
    keeps who started it and adds this start under `resumed`."""
    if overwrite:
        for p in _owned_paths(experiment, workdir):
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.unlink(p)
    os.makedirs(workdir, exist_ok=True)
    started = provenance()
    if old_cfg is not None and "provenance" in old_cfg:
        meta = {"provenance": old_cfg["provenance"], "resumed": [*old_cfg.get("resumed", []), started]}
    else:
        meta = {"provenance": started}
    metrics.atomic_write_json(os.path.join(workdir, "config.json"), {**new_cfg, **meta})


def _log_file(workdir: str) -> py_logging.Handler:
    """Copies the absl log into workdir/log.txt."""
    handler = py_logging.FileHandler(os.path.join(workdir, "log.txt"))
    handler.setFormatter(py_logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.get_absl_logger().addHandler(handler)
    return handler


def execute(experiment: Any, config: ConfigDict, workdir: str) -> dict:
    """Validates `config`, runs `experiment.run(config, workdir)` and writes config.json / results.json.

    Returns the results dict (read back from results.json if the run had already finished); results.json also holds
    `provenance`, which is not part of the returned dict.
    Raises ConfigError before writing anything when the config is invalid, WorkdirError when `workdir` is a file or
    cannot be written, Interrupted (a KeyboardInterrupt naming the step) on Ctrl-C.
    """
    validate(experiment, config)
    results_path = os.path.join(workdir, "results.json")
    overwrite = bool(config.get("overwrite", False))
    new_cfg = _config_dict(config)

    if os.path.lexists(workdir) and not os.path.isdir(workdir):
        check_workdir(workdir, flag="")
    old_cfg = None if overwrite else _refuse_another_config(workdir, new_cfg)
    if os.path.exists(results_path) and not overwrite:
        logging.info("finished run found in %s; not redone (pass --config.overwrite=True to redo)", workdir)
        return _without_provenance(metrics.read_json(results_path))

    if is_writer():  # only process 0 writes into the workdir
        check_workdir(workdir, flag="")
    created = not os.path.exists(workdir)
    _barrier("workdir checked")  # every process has looked before process 0 creates anything
    writer = is_writer()
    if writer:
        _write_config(experiment, workdir, new_cfg, old_cfg, overwrite)
    _barrier("config written")
    handler = _log_file(workdir) if writer else None
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
    except metrics.NonFiniteError as e:
        _to_log_file(handler, py_logging.ERROR, f"stopped: {e}")
        raise
    except KeyboardInterrupt:
        message = f"interrupted at step {_last_step(workdir)}; run the same command to resume"
        _to_log_file(handler, py_logging.WARNING, message)
        raise Interrupted(message) from None
    finally:
        if handler is not None:
            logging.get_absl_logger().removeHandler(handler)
            handler.close()
    if not isinstance(results, dict):
        raise TypeError(f"{_package_of(experiment)}.experiment.run must return a dict, got {type(results).__name__}")
    results = dict(results)
    results.setdefault("runtime_seconds", round(time.time() - start, 2))
    if writer:
        metrics.atomic_write_json(results_path, {**results, "provenance": provenance()})
        logging.info("results written to %s", results_path)
    return metrics.to_jsonable(results)


def _without_provenance(results: dict) -> dict:
    return {k: v for k, v in results.items() if k != "provenance"}


def _fail(prefix: str, err: BaseException | str, code: int) -> None:
    message = " ".join(str(err).split())  # one line
    sys.stderr.write(f"{prefix}: {message}\n" if prefix else f"{message}\n")
    sys.stderr.flush()
    sys.exit(code)


def _parse_flags(argv: list[str], experiment: Any = None) -> list[str]:
    """Parses flags; a bad flag or config (unknown key, wrong type, unloadable file) is one line and exit 2.
    `-h` / `--help` print `help_text` and exit 0."""
    given, argv = argv, _with_resolved_config(argv)
    if any(a in _HELP_ARGS for a in argv[1:]) and experiment is not None:
        rest = [a for a in argv if a not in _HELP_ARGS]
        found = _config_arg([a for a in given if a not in _HELP_ARGS])
        config = None
        try:
            FLAGS(rest)
            if found is not None:
                config = FLAGS.config
                _ = "seed" in config
        except Exception:  # noqa: BLE001 - help is shown for the file as it is when an override is bad
            config = None
        try:
            sys.stdout.write(help_text(experiment, found[1] if found else None, config))
        except _LoadError as e:
            _fail("config error", e, 2)
        sys.stdout.flush()
        sys.exit(0)
    try:
        rest = FLAGS(argv)
        if FLAGS["config"].present or FLAGS["config"].value is not None:
            _ = "seed" in FLAGS.config  # the file is loaded lazily: surface its errors here
        return rest
    except Exception as e:  # noqa: BLE001 - flags.Error, and errors raised while loading the config file
        _fail("config error", _diagnose(given, e), 2)
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


def compilation_cache_dir() -> str | None:
    """Where `enable_compilation_cache` puts JAX's persistent compilation cache: $GANGULI_JAX_COMPILATION_CACHE if
    set (None when it is "off", "0" or empty), else `$XDG_CACHE_HOME/ganguli-jax/jax` (default `~/.cache/...`)."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "false", "no") else os.path.expanduser(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ganguli-jax", "jax")


def enable_compilation_cache(distributed: bool = False) -> str | None:
    """Turns on JAX's persistent compilation cache for a single-process run; returns its directory or None.

    A second run of a config (or a resumed one) loads its compiled XLA programs from disk instead of compiling them.
    Off for multi-process runs (every process would write the same entries to a directory that may not be shared)
    and when $GANGULI_JAX_COMPILATION_CACHE is "off"; a directory the user already gave JAX
    (JAX_COMPILATION_CACHE_DIR or jax.config) is kept. Programs that compile in under a second are not stored.
    """
    import jax

    if distributed:
        return None
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    path = compilation_cache_dir()
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:  # an unwritable home: run without the cache rather than fail
        logging.warning("compilation cache disabled: cannot create %s (%s)", path, e.strerror)
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    return path


def _quiet_startup_logs() -> None:
    """JAX logs at INFO that it looked for a TPU on every CPU host ("Unable to initialize backend 'tpu'")."""
    py_logging.getLogger("jax._src.xla_bridge").setLevel(py_logging.WARNING)


def run(experiment: Any) -> None:
    """Runs `experiment` from the command line (see the module docstring)."""

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            _fail("config error", f"unexpected arguments {argv[1:]}", 2)
        if _CONFIG.value is None:
            _fail("config error", "--config is required, e.g. --config=<pkg>/configs/default.py (see --help)", 2)
        spec = config_flags.get_config_filename(FLAGS["config"])
        workdir = _WORKDIR.value or os.path.join("runs", _package_of(experiment), config_name(spec))
        if not os.path.exists(os.path.join(workdir, "results.json")):  # a finished run is reported read-only
            try:
                check_workdir(workdir, flag="workdir")
            except WorkdirError as e:
                _fail("error", e, 2)
        _quiet_startup_logs()
        try:
            distributed = initialize_distributed(
                _DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
            )
        except ConfigError as e:
            _fail("config error", e, 2)
        cores = use_cores_as_devices()
        cache = enable_compilation_cache(distributed or metrics.process_count() > 1)
        logging.info("config %s -> workdir %s", spec, workdir)
        if cores is not None:
            logging.info("CPU: one XLA device per core (%d)", cores)
        if cache:
            logging.info("compilation cache: %s (%s=off disables it)", cache, CACHE_ENV)
        if distributed:
            logging.info("multi-host: process %d of %d", metrics.process_index(), metrics.process_count())
        try:
            execute(experiment, _CONFIG.value, workdir)
        except ConfigError as e:
            _fail("config error", e, 2)
        except WorkdirError as e:
            _fail("error", str(e).replace("workdir ", "--workdir=", 1), 2)
        except UserError as e:
            _fail("error", e, 2)
        except metrics.NonFiniteError as e:
            _fail("stopped", e, 1)
        except Interrupted as e:
            _fail("", e, 130)
        except KeyboardInterrupt:
            _fail("", "interrupted before training started; run the same command to start again", 130)

    absl_app.run(main, flags_parser=lambda argv: _parse_flags(argv, experiment))
