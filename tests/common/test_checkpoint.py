"""common.checkpoint: resume after SIGKILL is bit-for-bit; a corrupt latest checkpoint falls back to the previous."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cmd(workdir, *args):
    return [
        sys.executable,
        "-m",
        "tests.common.fake_main",
        "--config=tests/common/fake_config.py",
        f"--workdir={workdir}",
        *args,
    ]


def _steps(ckpt_dir):
    if not os.path.isdir(ckpt_dir):
        return []
    return sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())


def test_sigkill_and_resume_gives_identical_results(tmp_path):
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    ref = tmp_path / "ref"
    proc = subprocess.run(_cmd(ref), cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr

    work = tmp_path / "killed"
    p = subprocess.Popen(
        _cmd(work, "--config.sleep=0.5"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and max(_steps(work / "checkpoints"), default=0) < 60:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = max(_steps(work / "checkpoints"), default=0)
    assert 60 <= killed_at < 200, f"kill landed at step {killed_at}; the test needs it mid-run"
    assert not (work / "results.json").exists()

    # Started again with the same workdir (and the same config): resumes and ends identically.
    proc = subprocess.run(
        _cmd(work, "--config.sleep=0.5"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "resumed from checkpoint at step" in proc.stderr
    a = json.loads((ref / "results.json").read_text())
    b = json.loads((work / "results.json").read_text())
    assert a["params"] == b["params"] and a["error"] == b["error"]  # bit-for-bit: JSON floats round-trip exactly
    steps = [json.loads(x)["step"] for x in (work / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(20, 201, 20))  # no duplicated or lost rows


def _state(v):
    return {"w": jnp.full((3,), float(v)), "key": jax.random.key(v), "n": jnp.int32(v)}


def test_restore_latest_keep_and_typed_keys(tmp_path):
    with checkpoint.Checkpointer(str(tmp_path / "c"), save_every=10, keep=2) as ck:
        assert ck.restore_latest_or(_state(0))[1] == 0
        assert not ck.save(5, _state(5))  # not on the interval
        for s in (10, 20, 30):
            assert ck.save(s, _state(s))
        ck.wait()
        assert ck.steps() == [20, 30]
        state, step = ck.restore_latest_or(_state(0))
    assert step == 30
    np.testing.assert_array_equal(state["w"], np.full(3, 30.0))
    assert int(state["n"]) == 30
    np.testing.assert_array_equal(jax.random.key_data(state["key"]), jax.random.key_data(jax.random.key(30)))


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, caplog):
    d = str(tmp_path / "c")
    with checkpoint.Checkpointer(d, save_every=10, keep=3) as ck:
        ck.save(10, _state(10))
        ck.save(20, _state(20))
    # Corrupt every data file of step 20 (as a half-written or damaged checkpoint would be).
    for root, _, files in os.walk(os.path.join(d, "20")):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"\x00garbage")
    with checkpoint.Checkpointer(d, save_every=10, keep=3) as ck:
        with caplog.at_level("WARNING"):
            state, step = ck.restore_latest_or(_state(0))
    assert step == 10
    np.testing.assert_array_equal(state["w"], np.full(3, 10.0))
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_run_chunked_matches_one_long_scan(tmp_path):
    def body(x, i):
        return x * 0.9 + jnp.sin(i.astype(jnp.float32)), x

    @jax.jit
    def chunk(x, start):
        return jax.lax.scan(body, x, start + jnp.arange(5))

    ref, _ = jax.lax.scan(body, jnp.ones(4), jnp.arange(30))
    with checkpoint.Checkpointer(str(tmp_path / "c"), save_every=10) as ck:
        out = checkpoint.run_chunked(chunk, jnp.ones(4), num_steps=30, chunk_steps=5, checkpointer=ck)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        checkpoint.run_chunked(chunk, jnp.ones(4), num_steps=31, chunk_steps=5)
