"""icl.train: one vmapped sweep over M equals the same runs alone; chunking does not change the result."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from common import sweep
from icl import train, transformer

CFG = train.TrainConfig(
    model=transformer.ModelConfig(dim=2, num_points=4, num_layers=1, width=8, num_heads=2),
    batch_size=8,
    num_steps=12,
    noise_std=0.25,
    max_tasks=16,
)


TRAIN = train.make_train(CFG)
ALONE = jax.jit(TRAIN)


def test_vmapped_sweep_over_m_equals_runs_done_alone():
    g = sweep.grid([0, 1], num_tasks=[2.0, 16.0, np.inf], lr=[3e-3])
    state, m = sweep.sweep(TRAIN, g.keys(), g.hparams)
    alone = ALONE
    keys = g.keys()
    for r in range(g.size):
        hp = {k: jnp.asarray(v[r]) for k, v in g.hparams.items()}
        s_r, m_r = alone(keys[r], hp)
        np.testing.assert_allclose(m["loss"][r], m_r["loss"], rtol=1e-5)
        for a, b in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(s_r["params"]), strict=True):
            np.testing.assert_allclose(a[r], b, rtol=1e-3, atol=1e-4)  # Adam magnifies rounding
    # different M, same seed: same init and inputs, different tasks -> different training losses
    assert len(set(np.round(np.asarray(m["loss"][:3]), 6))) == 3


def test_chunked_training_equals_one_scan():
    key = jax.random.key(3)
    hp = {"num_tasks": jnp.float32(4.0), "lr": jnp.float32(1e-2)}
    whole, _ = ALONE(key, hp)
    chunk = jax.jit(train.make_chunk(CFG, 4))
    state = jax.jit(lambda k, h: train.init_state(k, h, CFG))(key, hp)
    for start in range(0, CFG.num_steps, 4):
        state, _ = chunk(state, hp, jnp.int32(start))
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_triangle_schedule_and_injected_rate():
    sched = train.triangle_schedule(100)
    assert float(sched(0)) == 0.0 and float(sched(50)) == pytest.approx(1.0)
    assert float(sched(25)) == pytest.approx(0.5) and float(sched(75)) == pytest.approx(0.5)
    assert float(sched(100)) == pytest.approx(0.0)
    state = jax.jit(jax.vmap(lambda k, lr: train.init_state(k, {"num_tasks": 2.0, "lr": lr}, CFG)))(
        jax.random.split(jax.random.key(0), 2), jnp.array([1e-3, 5e-3])
    )
    np.testing.assert_allclose(state["opt"][0].hyperparams["learning_rate"], [1e-3, 5e-3])
    # one step with a unit gradient moves every parameter by lr * schedule(0) ... Adam's first step is lr-sized
    tx = train.make_optimizer(CFG)
    params = {"w": jnp.zeros(3)}
    opt = tx.init(params)
    opt[0].hyperparams["learning_rate"] = jnp.float32(0.1)
    grads = {"w": jnp.ones(3)}
    update = jax.jit(tx.update)
    for _ in range(6):  # step t is scaled by schedule(t); schedule(6) = 6/6 at the peak for 12 steps
        upd, opt = update(grads, opt, params)
    np.testing.assert_allclose(upd["w"], -0.1 * 5 / 6, rtol=1e-4)
    assert isinstance(opt[1], optax.ScaleByScheduleState)
