"""common.train_loop: the one training driver, checked against a closed form, chunking, grouping, resume, compiles."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from common import checkpoint, metrics, nn, sweep, train_loop

D = 4
A = np.diag([1.0, 0.5, 0.25, 2.0]).astype(np.float32)  # the loss 0.5 (w - w*)ᵀ A (w - w*)
W_STAR = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
TX = nn.per_run_lr(optax.sgd)


def init_one(scale, steps, key, hp):
    w = scale * jax.random.normal(key, (D,))
    return {"w": w, "opt": TX.init(w)}


def chunk_one(scale, steps, state, hp, shared, start):
    """Full-batch GD on the quadratic (shared: A, w*), lr per run; one chunk of `steps` steps."""
    a, w_star = shared

    def step(st, t):
        loss, g = jax.value_and_grad(lambda w: 0.5 * (w - w_star) @ a @ (w - w_star))(st["w"])
        opt = nn.set_lr(st["opt"], hp["lr"])
        u, opt = TX.update(g, opt, st["w"])
        return {"w": optax.apply_updates(st["w"], u), "opt": opt}, loss

    state, losses, bad = checkpoint.guarded_scan(step, state, start, steps)
    return state, {"loss": losses[-1], "w0": state["w"][0], checkpoint.NONFINITE: bad}


def closed_form(w0, lr, t):
    """w_t = w* + (I - lr A)^t (w_0 - w*) for full-batch GD."""
    return W_STAR + np.diag(1 - lr * A) ** t * (w0 - W_STAR)


def _train(tmp_path=None, *, lrs=(0.1, 0.3, 0.5), steps=20, chunk=5, writer=None, **kw):
    keys = jax.vmap(jax.random.key)(jnp.arange(len(lrs), dtype=jnp.uint32))
    return train_loop.train(
        name="quad",
        init=init_one,
        chunk=chunk_one,
        static=(1.0, chunk),
        keys=keys,
        hparams={"lr": np.asarray(lrs, np.float32)},
        shared=(A, W_STAR),
        num_steps=steps,
        chunk_steps=chunk,
        workdir=None if tmp_path is None else str(tmp_path),
        writer=writer,
        labels=[{"lr": lr} for lr in lrs],
        **kw,
    )


def _w0(n):
    keys = jax.vmap(jax.random.key)(jnp.arange(n, dtype=jnp.uint32))
    return np.asarray(jax.vmap(lambda k: jax.random.normal(k, (D,)))(keys))


def test_final_state_matches_closed_form():
    lrs = (0.1, 0.3, 0.5)
    res = _train(lrs=lrs)
    w0 = _w0(3)
    for r, lr in enumerate(lrs):
        np.testing.assert_allclose(res.state["w"][r], closed_form(w0[r], lr, 20), rtol=1e-5, atol=1e-5)
    # the history: one entry per chunk, every run, the loss at the chunk's last step
    assert list(res.history["step"]) == [5, 10, 15, 20]
    assert res.history["loss"].shape == (4, 3)
    w19 = closed_form(w0[2], 0.5, 19)
    np.testing.assert_allclose(res.history["loss"][-1, 2], 0.5 * (w19 - W_STAR) @ A @ (w19 - W_STAR), rtol=1e-4)


def test_grouping_and_chunking_do_not_change_results():
    base = _train(lrs=(0.1, 0.2, 0.3, 0.4, 0.5))
    grouped = _train(lrs=(0.1, 0.2, 0.3, 0.4, 0.5), max_runs_per_call=2, chunk=10)
    np.testing.assert_allclose(grouped.state["w"], base.state["w"], rtol=1e-6)
    assert len(grouped.groups) == 3 and [len(g.runs) for g in grouped.groups] == [2, 2, 1]
    np.testing.assert_allclose(grouped.history["w0"][-1], base.history["w0"][-1], rtol=1e-6)


def test_on_chunk_sees_the_device_state_and_adds_to_rows(tmp_path):
    seen = []

    def on_chunk(ctx):
        w = ctx.to_host(ctx.state["w"])
        seen.append((ctx.step, list(ctx.runs)))
        assert w.shape == (len(ctx.runs), D)
        np.testing.assert_allclose(w[:, 0], ctx.metrics["w0"], rtol=1e-6)
        return {"dist": np.linalg.norm(w - W_STAR, axis=1)}

    with metrics.MetricWriter(str(tmp_path / "metrics.jsonl")) as writer:
        res = _train(writer=writer, on_chunk=on_chunk, max_runs_per_call=2)
    assert seen[:2] == [(5, [0, 1]), (5, [2])]
    rows = [json.loads(x) for x in open(writer.path)]
    assert len(rows) == 4 * 3 and {r["run"] for r in rows} == {"quad/0", "quad/1", "quad/2"}
    assert all("dist" in r and "lr" in r and checkpoint.NONFINITE not in r for r in rows)
    np.testing.assert_allclose(res.history["dist"][-1], np.linalg.norm(res.state["w"] - W_STAR, axis=1), rtol=1e-5)


def test_compiles_once_across_chunks_and_calls():
    _train(lrs=(0.1, 0.2), steps=10, chunk=5)  # warm: init + chunk compiled for this shape
    before = sweep.compile_count()
    _train(lrs=(0.3, 0.4), steps=15, chunk=5)
    _train(lrs=(0.5, 0.6), steps=10, chunk=5)
    assert sweep.compile_count() == before, "a second call with the same static arguments and shapes recompiled"
    _train(lrs=(0.1, 0.2), steps=12, chunk=6)  # a new static argument: init and chunk compiled once more each
    assert sweep.compile_count() == before + 2


def test_killed_run_resumes_to_the_same_result(tmp_path):
    full = _train(lrs=(0.1, 0.4))

    def die(ctx):
        if ctx.step == 15:
            raise KeyboardInterrupt
        return None

    with metrics.MetricWriter(str(tmp_path / "metrics.jsonl")) as writer, pytest.raises(KeyboardInterrupt):
        _train(tmp_path, lrs=(0.1, 0.4), writer=writer, on_chunk=die)
    assert checkpoint.Checkpointer(os.path.join(tmp_path, "checkpoints", "quad"), save_every=5).steps()[-1] == 10
    calls = []
    with metrics.MetricWriter(str(tmp_path / "metrics.jsonl")) as writer:
        res = _train(tmp_path, lrs=(0.1, 0.4), writer=writer, on_chunk=lambda ctx: calls.append(ctx.step))
    assert calls == [15, 20], "the resumed sweep must start after the last checkpoint (step 10)"
    np.testing.assert_allclose(res.state["w"], full.state["w"], rtol=1e-6)
    with metrics.MetricWriter(str(tmp_path / "metrics.jsonl")) as writer:  # a finished sweep: restored, not redone
        again = _train(tmp_path, lrs=(0.1, 0.4), writer=writer, on_chunk=lambda ctx: calls.append(ctx.step))
    assert calls == [15, 20]
    np.testing.assert_allclose(again.state["w"], full.state["w"], rtol=1e-6)
    np.testing.assert_allclose(again.history["loss"], full.history["loss"], rtol=1e-5)
    steps = [json.loads(x)["step"] for x in open(writer.path)]
    assert sorted(steps) == sorted([5, 10, 15, 20] * 2), "each step logged exactly once per run"
    assert list(res.history["step"]) == [5, 10, 15, 20]
    np.testing.assert_allclose(res.history["loss"], full.history["loss"], rtol=1e-5)


def test_initial_state_continues_from_a_given_state():
    """Ten steps, then ten more from the host state: the closed form at twenty (init is not called)."""
    lrs = (0.1, 0.3, 0.5)
    first = _train(lrs=lrs, steps=10)
    keys = jax.vmap(jax.random.key)(jnp.arange(3, dtype=jnp.uint32))

    def continue_from(state):
        return train_loop.train(
            name="quad",
            init=None,
            chunk=chunk_one,
            static=(1.0, 5),
            keys=keys,
            hparams={"lr": np.asarray(lrs, np.float32)},
            shared=(A, W_STAR),
            num_steps=10,
            chunk_steps=5,
            initial_state=state,
        )

    more = continue_from(first.state)
    w0 = _w0(3)
    for r, lr in enumerate(lrs):
        np.testing.assert_allclose(more.state["w"][r], closed_form(w0[r], lr, 20), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="initial_state"):
        continue_from(jax.tree.map(lambda x: x[:2], first.state))


def _copy_run0_at_10(done, group):
    """Between chunks, at step 10 only: every run takes run 0's parameters (a change that spans runs)."""
    if done != 10:
        return group.state
    w = group.state["w"]
    return {**group.state, "w": jnp.broadcast_to(w[:1], w.shape)}


def test_after_chunk_changes_the_state_across_runs_and_a_resume_does_not_redo_it(tmp_path):
    lrs = (0.1, 0.4)
    seen = {}

    def record(ctx):
        seen[ctx.step] = ctx.to_host(ctx.state["w"])

    res = _train(lrs=lrs, after_chunk=_copy_run0_at_10, on_chunk=record)
    w0 = _w0(2)
    w10 = closed_form(w0[0], lrs[0], 10)  # run 0 at step 10, copied to every run
    np.testing.assert_allclose(seen[10], np.stack([w10, w10]), rtol=1e-5, atol=1e-6)  # on_chunk sees the new state
    for r, lr in enumerate(lrs):
        np.testing.assert_allclose(res.state["w"][r], closed_form(w10, lr, 10), rtol=1e-5, atol=1e-5)

    def die(ctx):
        if ctx.step == 15:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, lrs=lrs, after_chunk=_copy_run0_at_10, on_chunk=die)
    again = _train(tmp_path, lrs=lrs, after_chunk=_copy_run0_at_10)  # resumes from step 10: the copied state
    np.testing.assert_allclose(again.state["w"], res.state["w"], rtol=1e-6)


def test_nonfinite_names_the_run_and_its_labels():
    with pytest.raises(metrics.NonFiniteError, match=r"run 1: lr=5000"):
        _train(lrs=(0.1, 5000.0), steps=400, chunk=100)


def test_evaluate_on_device_groups():
    res = _train(lrs=(0.1, 0.2, 0.3), max_runs_per_call=2)
    out = res.evaluate(_dist)
    np.testing.assert_allclose(out, np.linalg.norm(res.state["w"] - W_STAR, axis=1), rtol=1e-5)
    other = np.zeros(D, np.float32)  # other shared inputs: the distance to the origin
    out = res.evaluate(_dist, shared=(A, other))
    np.testing.assert_allclose(out, np.linalg.norm(res.state["w"], axis=1), rtol=1e-5)


def _dist(state, hp, shared):
    return jnp.linalg.norm(state["w"] - shared[1])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"name": "a/b"}, "name"),
        ({"hparams": {"lr": np.zeros(2)}}, "hparams"),
        ({"labels": [{}]}, "labels"),
        ({"num_steps": 7}, "num_steps"),
        ({"max_runs_per_call": -1}, "max_runs_per_call"),
    ],
)
def test_bad_arguments_are_named(kw, match):
    args = dict(
        name="quad",
        init=init_one,
        chunk=chunk_one,
        static=(1.0, 5),
        keys=jax.vmap(jax.random.key)(jnp.arange(3, dtype=jnp.uint32)),
        hparams={"lr": np.ones(3, np.float32)},
        shared=(A, W_STAR),
        num_steps=10,
        chunk_steps=5,
    )
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        train_loop.train(**args)


def test_vmapped_static_is_part_of_the_cache_key():
    f1 = sweep.vmapped(_scaled, static=(2.0,))
    assert sweep.vmapped(_scaled, static=(2.0,)) is f1
    f3 = sweep.vmapped(_scaled, static=(3.0,))
    np.testing.assert_allclose(sweep.to_numpy(f1(np.ones(3, np.float32)), 3), 2.0)
    np.testing.assert_allclose(sweep.to_numpy(f3(np.ones(3, np.float32)), 3), 3.0)
    with pytest.raises(TypeError, match="hashable"):
        sweep.vmapped(_scaled, static=([1.0],))


def _scaled(c, x):
    return c * x
