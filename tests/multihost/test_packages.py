"""Every training package on two processes joined by jax.distributed (127.0.0.1) gives the results of one process.

Each process has 2 CPU devices (4 in all); the single-process reference has 4, so every run meets the same number of
devices and the same padding. Each package runs its `:smoke` config cut to seconds of training (`PACKAGES`). Two of
them are also killed (SIGKILL, both processes) after their first checkpoint and resumed. Run with
`make test-multihost` (not part of `make test`); the compiled programs are shared through a persistent compilation
cache in the test's own directory.
"""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.multihost

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# package -> overrides of its :smoke config that keep the training to seconds
PACKAGES = {
    "icl": [
        "--config.sweep.batch_sizes=(16,)",
        "--config.train.num_steps=400",
        "--config.train.chunk_steps=50",
        "--config.eval.num_prompts=64",
    ],
    "collapse": [],
    "disentangle": [],
    "manifolds": [],
    "margin": [],
    # IMP with a companion (a gather between runs at every level transition); compilation dominates, so the
    # instability and flatness sweeps (more programs) are left out
    "pruning": [
        "--config.imp.runs=('imp','twin')",
        "--config.imp.num_levels=2",
        "--config.instability.rewind_steps=()",
        "--config.flatness.levels=()",
    ],
}
# package -> further overrides for the kill-and-resume test: enough chunks after the first checkpoint that the kill
# lands before the end
RESUMED = {"icl": ["--config.train.num_steps=1600"], "collapse": []}
IGNORED = ("runtime_seconds", "provenance", "workdir")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, cache: str) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices))
    env.pop("XLA_FLAGS", None)
    env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return env


def _cmd(pkg: str, workdir, extra=()) -> list[str]:
    config = f"--config={pkg}/configs/default.py:smoke"
    return [sys.executable, "-m", f"{pkg}.main", config, *PACKAGES[pkg], *extra, f"--workdir={workdir}"]


def _single(pkg, workdir, cache, extra=()):
    cmd = _cmd(pkg, workdir, extra)
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(4, cache), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _launch_pair(pkg, workdir, log_dir, tag, cache, extra=()):
    port = _port()
    procs = []
    for i in range(2):
        cmd = _cmd(pkg, workdir, extra) + [
            f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2",
            f"--process_id={i}",
        ]
        log = open(os.path.join(log_dir, f"{tag}_{i}.log"), "w")
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=_env(2, cache), stdout=log, stderr=subprocess.STDOUT), log))
    return procs


def _wait(procs, timeout):
    deadline = time.time() + timeout
    for p, log in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.time()))
        finally:
            log.close()
    return [p.returncode for p, _ in procs]


def _read(path):
    with open(path) as f:
        return f.read()


def _leaves(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, x


def _number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    if isinstance(v, str):
        return float(v) if v in ("nan", "inf", "-inf") else None
    return float(v)


def assert_same_results(a: dict, b: dict, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Every leaf of two results.json trees equal: numbers to rtol/atol (NaN equals NaN), everything else exactly."""
    la = {k: v for k, v in _leaves(a) if not any(s in k for s in IGNORED)}
    lb = {k: v for k, v in _leaves(b) if not any(s in k for s in IGNORED)}
    assert la.keys() == lb.keys(), sorted(la.keys() ^ lb.keys())[:10]
    bad = []
    for k, x in la.items():
        y = lb[k]
        nx, ny = _number(x), _number(y)
        if nx is None or ny is None:
            if x != y:
                bad.append((k, x, y))
        elif not (math.isnan(nx) and math.isnan(ny)) and not math.isclose(nx, ny, rel_tol=rtol, abs_tol=atol):
            bad.append((k, x, y))
    assert not bad, f"{len(bad)} of {len(la)} results differ, first: {bad[:5]}"


def _ckpt_steps(workdir):
    root = os.path.join(workdir, "checkpoints")
    steps = []
    for dirpath, dirnames, _ in os.walk(root):
        steps += [int(d) for d in dirnames if d.isdigit() and os.listdir(os.path.join(dirpath, d))]
    return steps


@pytest.mark.parametrize("pkg", sorted(PACKAGES))
def test_two_processes_equal_one(pkg, tmp_path):
    cache = str(tmp_path / "cache")
    _single(pkg, tmp_path / "one", cache)
    procs = _launch_pair(pkg, tmp_path / "two", tmp_path, "pair", cache)
    codes = _wait(procs, 900)
    logs = [_read(tmp_path / f"pair_{i}.log") for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "multi-host: process 0 of 2" in logs[0]
    assert not os.path.exists(tmp_path / "two" / "results.json.tmp")
    one = json.loads(_read(tmp_path / "one" / "results.json"))
    two = json.loads(_read(tmp_path / "two" / "results.json"))
    assert_same_results(one, two)


@pytest.mark.parametrize("pkg", sorted(RESUMED))
def test_killed_pair_resumes_to_the_same_results(pkg, tmp_path):
    cache, extra = str(tmp_path / "cache"), RESUMED[pkg]
    _single(pkg, tmp_path / "one", cache, extra)
    work = tmp_path / "two"
    procs = _launch_pair(pkg, work, tmp_path, "first", cache, extra)
    deadline = time.time() + 600
    while time.time() < deadline and not _ckpt_steps(work) and all(p.poll() is None for p, _ in procs):
        time.sleep(0.02)
    for p, _ in procs:
        p.send_signal(signal.SIGKILL)
    _wait(procs, 60)
    assert _ckpt_steps(work), _read(tmp_path / "first_0.log")[-2000:]
    assert not os.path.exists(work / "results.json"), "the kill landed after the end: nothing was resumed"

    procs = _launch_pair(pkg, work, tmp_path, "second", cache, extra)
    codes = _wait(procs, 900)
    logs = [_read(tmp_path / f"second_{i}.log") for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "resumed from checkpoint at step" in logs[0]
    assert_same_results(json.loads(_read(tmp_path / "one" / "results.json")), json.loads(_read(work / "results.json")))
    rows = [json.loads(x) for x in _read(work / "metrics.jsonl").splitlines() if x.strip()]
    seen = {}
    for r in rows:
        if "run" in r:
            key = (r["run"], r["step"])
            seen[key] = seen.get(key, 0) + 1
    assert seen and max(seen.values()) == 1, "a resumed run logged a step twice"
