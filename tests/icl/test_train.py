"""icl.train: one vmapped sweep over M equals the same runs alone; chunking does not change the result; the
nanoGPT decay mask; in-sweep curves; a tiny model learns the Bayesian (dMMSE) solution at M = 2."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from common import sweep
from icl import estimators, tasks, train, transformer

CFG = train.TrainConfig(
    model=transformer.ModelConfig(dim=2, num_points=4, num_layers=1, width=8, num_heads=2),
    batch_size=8,
    num_steps=12,
    noise_std=0.25,
    max_tasks=16,
    eval_every=4,
    eval_prompts=32,
)


TRAIN = train.make_train(CFG)
ALONE = jax.jit(TRAIN)


@pytest.mark.slow  # 20-60 s on 2 cores; make test-all runs it
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
    hp = {"num_tasks": jnp.float32(4.0), "lr": jnp.float32(1e-2), "weight_decay": jnp.float32(1e-2)}
    whole, _ = ALONE(key, hp)
    chunk = jax.jit(train.make_chunk(CFG, 4))
    state = jax.jit(lambda k, h: train.init_state(k, h, CFG))(key, hp)
    for start in range(0, CFG.num_steps, 4):
        state, _ = chunk(state, hp, jnp.int32(start))
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    # the curves hold one row per 4 steps; the last is the final model's loss on the fixed curve sets
    assert state["curves"].shape == (3, 2) and np.isfinite(state["curves"]).all()
    true, pre = train.curve_batches(CFG, state["key"], hp["num_tasks"])
    gd = transformer.graphdef(CFG.model)
    for col, b in enumerate((true, pre)):
        err = jnp.mean((transformer.apply(gd, state["params"], b.xs, b.ys) - tasks.noiseless_targets(b)) ** 2) / 2
        np.testing.assert_allclose(state["curves"][-1, col], err, rtol=1e-4)


def test_decay_mask_is_nanogpt_block_kernels_and_decay_shrinks_only_them():
    params = transformer.init_params(jax.random.key(0), CFG.model)
    mask = train.decay_mask(params)
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(mask)[0]}
    decayed = sorted(k for k, v in flat.items() if v)
    assert decayed == sorted(f"['blocks'][0]['{n}']['kernel']" for n in ("qkv", "attn_out", "fc", "fc_out"))
    # zero gradients: AdamW's update is -lr * schedule(t) * wd * param on the masked leaves and 0 elsewhere
    tx = train.make_optimizer(CFG)
    opt = tx.init(params)
    opt[0].hyperparams["learning_rate"] = jnp.float32(0.1)
    opt[0].hyperparams["weight_decay"] = jnp.float32(0.5)
    zeros = jax.tree.map(jnp.zeros_like, params)
    upd, opt = tx.update(zeros, opt, params)  # step 0: schedule 0
    upd, opt = tx.update(zeros, opt, params)  # step 1: schedule 1/6
    for (path, u), p, m in zip(
        jax.tree_util.tree_flatten_with_path(upd)[0], jax.tree.leaves(params), jax.tree.leaves(mask), strict=True
    ):
        want = -0.1 * (1 / 6) * 0.5 * p if m else jnp.zeros_like(p)
        np.testing.assert_allclose(u, want, rtol=1e-5, atol=1e-9, err_msg=jax.tree_util.keystr(path))


@pytest.mark.slow  # 300 training steps and two compilations: ~80 s on loaded cores
def test_a_tiny_model_at_m2_learns_dmmse_not_ridge():
    # Two tasks: the Bayes estimator of T_Pretrain (dMMSE) is near-perfect after one pair; Ridge is not. Training
    # for a few hundred steps must move the model's predictions on T_Pretrain toward dMMSE and away from Ridge.
    cfg = train.TrainConfig(
        model=transformer.ModelConfig(dim=2, num_points=4, num_layers=1, width=16, num_heads=2),
        batch_size=32,
        num_steps=300,
        noise_std=0.25,
        max_tasks=2,
        eval_every=300,
    )
    hp = {"num_tasks": jnp.float32(2.0), "lr": jnp.float32(1e-2), "weight_decay": jnp.float32(0.0)}
    key = jax.random.key(0)
    before = train.init_state(key, hp, cfg)
    after, _ = jax.jit(train.make_train(cfg))(key, hp)
    pool = train.run_pool(before["key"], cfg)
    batch = tasks.sample_batch(jax.random.key(9), pool, 2.0, 512, 4, 0.25)
    ridge = estimators.ridge_predictions(batch.xs, batch.ys, 0.0625)
    dmmse = estimators.dmmse_predictions(batch.xs, batch.ys, pool, 0.0625)
    gd = transformer.graphdef(cfg.model)
    dist = {}
    for name, st in (("before", before), ("after", after)):
        pred = transformer.apply(gd, st["params"], batch.xs, batch.ys)
        dist[name] = (
            float(estimators.estimator_distance(pred, dmmse, 2)),
            float(estimators.estimator_distance(pred, ridge, 2)),
        )
    (d_dm0, d_r0), (d_dm1, d_r1) = dist["before"], dist["after"]
    assert d_dm1 < 0.5 * d_dm0  # toward dMMSE
    assert d_dm1 < 0.5 * d_r1  # and now much nearer dMMSE than Ridge
    assert d_dm1 / d_r1 < 0.5 * d_dm0 / d_r0  # relative to Ridge, it moved toward dMMSE


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
