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


@pytest.mark.parametrize(
    "error",
    [MemoryError("cannot allocate"), RuntimeError("RESOURCE_EXHAUSTED: Out of memory while restoring")],
)
def test_resource_errors_while_restoring_are_re_raised_not_treated_as_corrupt(tmp_path, error):
    d = str(tmp_path / "c")
    with checkpoint.Checkpointer(d, save_every=10, keep=3) as ck:
        ck.save(10, _state(10))
        ck.save(20, _state(20))
    with checkpoint.Checkpointer(d, save_every=10, keep=3) as ck:

        def fail(*a, **k):
            raise error

        ck._manager.restore = fail
        with pytest.raises(type(error)):
            ck.restore_latest_or(_state(0))
        assert ck.steps() == [10, 20]  # nothing discarded


def test_structure_or_shape_mismatch_raises_checkpoint_mismatch(tmp_path):
    d = str(tmp_path / "c")
    with checkpoint.Checkpointer(d, save_every=10) as ck:
        ck.save(10, _state(10))
    other = {"w": jnp.zeros(4), "key": jax.random.key(0), "n": jnp.int32(0)}
    with checkpoint.Checkpointer(d, save_every=10) as ck:
        with pytest.raises(checkpoint.CheckpointMismatch, match=r"w is shape \(3,\) float32 in the checkpoint"):
            ck.restore_latest_or(other)
        extra = {**_state(0), "extra": jnp.zeros(2)}
        with pytest.raises(checkpoint.CheckpointMismatch, match="extra is absent in the checkpoint"):
            ck.restore_latest_or(extra)


def test_guarded_scan_stops_updating_at_the_first_non_finite_step():
    def step(x, t):
        bad = jnp.where(t >= 13, jnp.nan, 0.0)
        return x + 1.0 + bad, jnp.sum(x) + bad

    x, outs, first = jax.jit(lambda x, s: checkpoint.guarded_scan(step, x, s, 10))(jnp.zeros(2), jnp.int32(10))
    assert int(first) == 13
    np.testing.assert_array_equal(x, np.full(2, 3.0))  # steps 10, 11, 12 applied; 13 onwards not
    assert np.isfinite(outs[:3]).all() and np.isnan(outs[3:]).all()
    # Vmapped: one first step per run, -1 where every step is finite.
    xs, _, firsts = jax.vmap(lambda s: checkpoint.guarded_scan(step, jnp.zeros(2), s, 5))(jnp.array([0, 10, 12]))
    np.testing.assert_array_equal(firsts, [-1, 13, 13])
    np.testing.assert_array_equal(xs[:, 0], [5.0, 3.0, 1.0])


def test_run_chunked_raises_at_the_reported_step_without_saving(tmp_path):
    def step(x, t):
        return x * 1.5, jnp.where(t == 23, jnp.inf, jnp.sum(x))

    @jax.jit
    def chunk(x, start):
        x, losses, bad = checkpoint.guarded_scan(step, x, start, 5)
        return x, {"loss": losses, checkpoint.NONFINITE: bad}

    with checkpoint.Checkpointer(str(tmp_path / "c"), save_every=10) as ck:
        with pytest.raises(
            checkpoint.metrics.NonFiniteError, match="at step 23 of train.*last good checkpoint is step 20"
        ):
            checkpoint.run_chunked(chunk, jnp.ones(2), num_steps=50, chunk_steps=5, checkpointer=ck)
        assert ck.steps() == [10, 20]


def test_run_chunked_with_checkpoint_dir_resumes_where_it_stopped(tmp_path):
    calls = []

    @jax.jit
    def _chunk(x, start):
        return jax.lax.scan(lambda c, i: (c * 0.9 + jnp.sin(i.astype(jnp.float32)), c), x, start + jnp.arange(5))

    def chunk(x, start):
        calls.append(int(start))
        if len(calls) == 3 and stop_early:
            raise KeyboardInterrupt  # a kill after two chunks (steps 0-9 done and saved)
        return _chunk(x, start)

    ref, _ = jax.lax.scan(lambda c, i: (c * 0.9 + jnp.sin(i.astype(jnp.float32)), c), jnp.ones(4), jnp.arange(20))
    d = str(tmp_path / "c")
    stop_early = True
    with pytest.raises(KeyboardInterrupt):
        checkpoint.run_chunked(chunk, jnp.ones(4), num_steps=20, chunk_steps=5, checkpoint_dir=d)
    assert _steps(d) == [5, 10]  # saved every chunk, keep=2; the checkpointer was closed on the way out
    stop_early, calls[:] = False, []
    out = checkpoint.run_chunked(chunk, jnp.ones(4), num_steps=20, chunk_steps=5, checkpoint_dir=d)
    assert calls == [10, 15]
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    with pytest.raises(ValueError, match="not both"):
        with checkpoint.Checkpointer(d, save_every=5) as ck:
            checkpoint.run_chunked(chunk, jnp.ones(4), num_steps=20, chunk_steps=5, checkpointer=ck, checkpoint_dir=d)


def test_save_refuses_zero_size_leaves_by_name(tmp_path):
    with checkpoint.Checkpointer(str(tmp_path / "c"), save_every=1) as ck:
        with pytest.raises(ValueError, match="zero-size.*masks/b"):
            ck.save(1, {"w": jnp.ones(3), "masks": {"b": jnp.zeros((2, 0))}})
        assert ck.save(1, {"w": jnp.ones(3)})
