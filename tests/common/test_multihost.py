"""Two processes joined by jax.distributed run a real package's CLI, are killed mid-run, resume, and agree with one.

Each process has 2 CPU devices (4 in all); the single-process reference has 4 devices, so the runs meet the same
number of devices. The icl smoke sweep (3 runs, one batch size) trains in 8 checkpointed chunks. The restarted pair
reuses the killed pair's compiled programs through JAX's persistent compilation cache (the test's own directory).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVERRIDES = [
    "--config=icl/configs/default.py:smoke",
    "--config.sweep.batch_sizes=(16,)",
    "--config.train.num_steps=400",
    "--config.train.chunk_steps=50",
    "--config.eval.num_prompts=64",
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, cache: str | None = None) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices))
    env.pop("XLA_FLAGS", None)
    if cache:
        env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return env


def _launch_pair(workdir, log_dir, tag):
    port = _port()
    procs = []
    for i in range(2):
        cmd = [
            sys.executable,
            "-m",
            "icl.main",
            *OVERRIDES,
            f"--workdir={workdir}",
            f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2",
            f"--process_id={i}",
        ]
        log = open(os.path.join(log_dir, f"{tag}_{i}.log"), "w")
        env = _env(2)
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    return procs


def _wait(procs, timeout):
    deadline = time.time() + timeout
    for p, log in procs:
        p.wait(timeout=max(1.0, deadline - time.time()))
        log.close()
    return [p.returncode for p, _ in procs]


def _ckpt_steps(workdir):
    root = os.path.join(workdir, "checkpoints")
    steps = []
    for sub in os.listdir(root) if os.path.isdir(root) else []:
        d = os.path.join(root, sub)
        steps += [int(x) for x in os.listdir(d) if x.isdigit()] if os.path.isdir(d) else []
    return steps


def _read(path):
    with open(path) as f:
        return f.read()


def test_two_processes_killed_mid_run_resume_and_match_one_process(tmp_path):
    ref = tmp_path / "ref"
    proc = subprocess.run(
        [sys.executable, "-m", "icl.main", *OVERRIDES, f"--workdir={ref}"],
        cwd=ROOT,
        env=_env(4),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    work = str(tmp_path / "multi")
    procs = _launch_pair(work, tmp_path, "first")
    deadline = time.time() + 300
    while time.time() < deadline and not _ckpt_steps(work) and all(p.poll() is None for p, _ in procs):
        time.sleep(0.02)
    for p, _ in procs:
        p.send_signal(signal.SIGKILL)
    _wait(procs, 60)
    killed_at = max(_ckpt_steps(work), default=0)
    assert 50 <= killed_at < 400, f"kill landed at step {killed_at}: {_read(tmp_path / 'first_0.log')[-2000:]}"
    assert not os.path.exists(os.path.join(work, "results.json"))

    procs = _launch_pair(work, tmp_path, "second")
    codes = _wait(procs, 400)
    logs = [_read(tmp_path / f"second_{i}.log") for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "resumed from checkpoint at step" in logs[0]

    # Process 0 alone wrote the files; the numbers equal the single-process run's.
    a = json.loads(_read(ref / "results.json"))
    b = json.loads(_read(os.path.join(work, "results.json")))
    for key in ("loss_true", "loss_pretrain", "dist_ridge", "dist_dmmse"):
        np.testing.assert_allclose(np.asarray(b[key], float), np.asarray(a[key], float), rtol=1e-5, err_msg=key)
    rows = [json.loads(x) for x in _read(os.path.join(work, "metrics.jsonl")).splitlines()]
    per_run = {}
    for r in rows:
        if "loss" in r:
            per_run.setdefault(r["run"], []).append(r["step"])
    assert per_run and all(s == list(range(50, 401, 50)) for s in per_run.values()), per_run  # no duplicates
    assert "multi-host: process 0 of 2" in logs[0]
