"""The per-cluster stage split over two processes joined by jax.distributed (127.0.0.1): the same command with the
common --coordinator_address / --num_processes / --process_id flags gives outputs identical to one process."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from dedup import pipeline, semdedup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = ["-m", "dedup.main", "--config=dedup/configs/default.py:smoke", "--config.figures=False"]
EPS = (0.02, 0.05, 0.1, 0.3)  # the smoke config's


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="1")
    env.pop("XLA_FLAGS", None)
    return env


def _outputs(workdir):
    out = {}
    for e in EPS:
        d = os.path.join(workdir, pipeline.eps_name(e))
        for f in ("kept_ids", "removed_ids", "duplicate_of", "similarity"):
            out[(e, f)] = np.load(os.path.join(d, f + ".npy"))
    return out


@pytest.mark.slow
def test_two_processes_split_the_dedup_stage_and_match_one_process(tmp_path):
    ref = str(tmp_path / "ref")
    p = subprocess.run(
        [sys.executable, *ARGS, f"--workdir={ref}"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]

    work = str(tmp_path / "multi")
    port = _port()
    procs = []
    for i in range(2):
        log = open(tmp_path / f"p{i}.log", "w")
        cmd = [
            sys.executable,
            *ARGS,
            f"--workdir={work}",
            f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2",
            f"--process_id={i}",
        ]
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT), log))
    codes = []
    for proc, log in procs:
        codes.append(proc.wait(timeout=300))
        log.close()
    logs = [(tmp_path / f"p{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]

    a, b = _outputs(ref), _outputs(work)
    for k in a:
        np.testing.assert_array_equal(b[k], a[k], err_msg=str(k))
    with open(os.path.join(work, "results.json")) as f:
        r = json.load(f)
    # the split is real: process 0 ran exactly its share of the units (the size-balanced split of the plan), so
    # the others, which select found complete, were written by process 1
    pipe = os.path.join(work, "pipeline")
    sizes = np.diff(np.load(os.path.join(pipe, "cluster", "offsets.npy")))
    plan = pipeline.plan_units(
        [c for c in range(sizes.size) if sizes[c] > 0], sizes, semdedup.bucket_sizes(int(sizes.max())), 4, 32
    )
    owner = pipeline.split_units(plan, sizes, 2)
    assert 0 < (owner == 0).sum() < len(plan)
    assert r["dedup_units"]["units_run"] == (owner == 0).sum() and r["dedup_units"]["process"] == "0 of 2"
    assert len(os.listdir(os.path.join(pipe, "dedup", "units"))) == len(plan)
