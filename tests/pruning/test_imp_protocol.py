"""The IMP protocol on one run, step by step: what a rewound level trains, what the rewind resets, and which networks
the successive-level barrier compares. Each test is written to catch one realistic IMP bug."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from common import data
from pruning import imp, lmc, masks, models

K = 4  # rewind step
STEPS = 12
MLP_SETUP = imp.Setup(model=models.MLP(64, (8,), 10), batch_size=16, steps=STEPS, num_levels=3, barrier_points=5)
BN_SETUP = imp.Setup(
    model=models.ResNet(blocks=1, width=4, num_classes=10, in_channels=1),
    batch_size=16,
    steps=STEPS,
    num_levels=3,
    barrier_points=3,
)


def _data():
    tr, te = data.digits("train"), data.digits("test")
    return tuple(jnp.asarray(a) for a in (tr.x[:96], tr.y[:96], te.x[:48], te.y[:48]))


def _hp(name="imp"):
    """One run's traced values (a companion's as it runs beside its imp parent)."""
    names = ["imp"] if name == "imp" else ["imp", name]
    runs = imp.make_runs([0], names, lr=0.05, weight_decay=1e-3, fraction=0.2, rewind_step=K)
    return {k: jnp.asarray(v[names.index(name)]) for k, v in imp.hparams(runs).items()}


@functools.partial(jax.jit, static_argnums=(0,))
def _chunk(setup, state, hp, d, level, t0):
    return imp.train_chunk(setup, state, hp, d, level, t0, K)


def _train(setup, state, hp, d, level, n, t0=0):
    """Steps t0 .. t0 + n - 1 of a level, K at a time (one compiled chunk)."""
    out = None
    for t in range(t0, t0 + n, K):
        state, out = _chunk(setup, state, hp, d, level, jnp.int32(t))
    return state, out


@functools.partial(jax.jit, static_argnums=(0,))
def _next_level(setup, state, hp, d, level):
    """Level L-1's record, then the prune and rewind that start level L."""
    state = imp.finish_level(setup, state, hp, d, level - 1)
    return imp.rewind_step(setup, imp.prune_step(setup, state, hp, level), hp, level)


def _level0(setup, name="imp"):
    d, hp = _data(), _hp(name)
    state = imp.init_state(setup, jax.random.key(3), hp)
    state, _ = _train(setup, state, hp, d, jnp.int32(0), STEPS)
    return d, hp, state


def _trace(state):
    """The momentum buffers in a run's optimiser state."""
    nodes = jax.tree.leaves(state["opt"], is_leaf=lambda x: isinstance(x, optax.TraceState))
    return [n.trace for n in nodes if isinstance(n, optax.TraceState)]


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb, strict=True))


@pytest.fixture(scope="module")
def mlp_levels():
    d, hp, solved = _level0(MLP_SETUP)
    started = _next_level(MLP_SETUP, solved, hp, d, jnp.int32(1))
    return d, hp, solved, started


def test_a_rewound_level_holds_still_before_step_k_and_trains_from_k(mlp_levels):
    d, hp, _, started = mlp_levels
    held, out = _train(MLP_SETUP, started, hp, d, jnp.int32(1), K)
    assert _leaves_equal(held["params"], started["params"]) and _leaves_equal(_trace(held), _trace(started))
    assert np.isnan(float(out["train_loss"]))  # no step was taken
    moved, out = _train(MLP_SETUP, held, hp, d, jnp.int32(1), K, t0=K)
    assert not _leaves_equal(moved["params"], started["params"]) and np.isfinite(float(out["train_loss"]))


def test_the_rewind_resets_momentum_and_sets_survivors_to_w_k(mlp_levels):
    _, _, solved, started = mlp_levels
    assert _trace(started) and all(np.all(np.asarray(t) == 0) for t in jax.tree.leaves(_trace(started)))
    # level 0 ended with a nonzero momentum (so the check above is not vacuous)
    assert any(np.any(np.asarray(t) != 0) for t in jax.tree.leaves(_trace(solved)))
    m = masks.get_masks(started["opt"])
    assert _leaves_equal(started["params"], masks.apply_masks(solved["w_rewind"], m))
    assert 0 < float(masks.density(m, MLP_SETUP.rates(started["params"]))) < 1


def test_the_rewound_optimiser_state_is_a_fresh_one(mlp_levels):
    """Momentum buffers, step counts and everything else in the optimiser state equal a fresh init (masks aside)."""
    _, hp, _, started = mlp_levels
    tx = imp.optimizer(MLP_SETUP, hp["weight_decay"])
    fresh = masks.set_masks(tx.init(started["params"]), masks.get_masks(started["opt"]))
    assert _leaves_equal(fresh, started["opt"])


def test_the_successive_barrier_compares_the_two_solutions(mlp_levels):
    """w_prev is the level L-1 solution (not the rewind point), and the recorded barrier is the one between the
    level L-1 and level L solutions, recomputed here from the model directly."""
    d, hp, solved, started = mlp_levels
    assert _leaves_equal(started["w_prev"], solved["params"])
    trained, _ = _train(MLP_SETUP, started, hp, d, jnp.int32(1), STEPS)
    rec = jax.jit(imp.finish_level, static_argnums=(0,))(MLP_SETUP, trained, hp, d, jnp.int32(1))

    def train_loss(p):
        logits, _ = MLP_SETUP.model.apply(p, trained["stats"], d[0], False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, d[1]).mean()

    want = lmc.error_barrier(train_loss, trained["params"], solved["params"], MLP_SETUP.barrier_points)
    assert float(rec["hist"]["barrier_loss"][1]) == pytest.approx(float(want), rel=1e-4, abs=1e-6)


def test_rank_overlap_counts_the_next_pruned_weights_that_were_small_at_w_k(mlp_levels):
    """The level's rank overlap recomputed with numpy: of the round(f n) smallest survivors of the solution, the
    share also among the round(f n) smallest survivors at the rewind point."""
    d, hp, _, started = mlp_levels
    trained, _ = _train(MLP_SETUP, started, hp, d, jnp.int32(1), STEPS)
    rec = jax.jit(imp.finish_level, static_argnums=(0,))(MLP_SETUP, trained, hp, d, jnp.int32(1))
    m = masks.get_masks(trained["opt"])
    rates = MLP_SETUP.rates(trained["params"])
    pick = [r != 0 for r in jax.tree.leaves(rates)]
    alive = np.concatenate([np.ravel(x) for x, p in zip(jax.tree.leaves(m), pick, strict=True) if p])
    w = np.concatenate([np.ravel(x) for x, p in zip(jax.tree.leaves(trained["params"]), pick, strict=True) if p])
    wk = np.concatenate([np.ravel(x) for x, p in zip(jax.tree.leaves(trained["w_rewind"]), pick, strict=True) if p])
    idx = np.flatnonzero(alive)
    k = int(np.floor(float(hp["fraction"]) * idx.size + 0.5))
    nxt = set(idx[np.argsort(np.abs(w[idx]), kind="stable")[:k]])
    small = set(idx[np.argsort(np.abs(wk[idx]), kind="stable")[:k]])
    want = len(nxt & small) / k
    assert float(rec["hist"]["rank_overlap"][1]) == pytest.approx(want, abs=1e-6)
    assert 0 < want < 1


@pytest.mark.slow
def test_batchnorm_statistics_are_saved_at_k_and_rewound_with_the_weights():
    d, hp = _data(), _hp()
    state = imp.init_state(BN_SETUP, jax.random.key(3), hp)
    at_k, _ = _train(BN_SETUP, state, hp, d, jnp.int32(0), K)  # steps 0..k-1 taken: the state at step k
    full, _ = _train(BN_SETUP, state, hp, d, jnp.int32(0), STEPS)
    assert _leaves_equal(full["s_rewind"], at_k["stats"]) and _leaves_equal(full["w_rewind"], at_k["params"])
    assert not _leaves_equal(full["stats"], full["s_rewind"])
    started = _next_level(BN_SETUP, full, hp, d, jnp.int32(1))
    assert _leaves_equal(started["stats"], full["s_rewind"])


def test_reinit_and_retrain_final_start_where_they_should():
    """random_reinit: a fresh draw under the mask; retrain_final: the level's own solution; both from step k."""
    for name in ("random_reinit", "retrain_final"):
        d, hp, solved = _level0(MLP_SETUP, name)
        started = _next_level(MLP_SETUP, solved, hp, d, jnp.int32(1))
        m = masks.get_masks(started["opt"])
        held, _ = _train(MLP_SETUP, started, hp, d, jnp.int32(1), K)
        assert _leaves_equal(held["params"], started["params"])  # open_lth: both branches start at step k
        if name == "retrain_final":
            assert _leaves_equal(started["params"], masks.apply_masks(solved["params"], m))
        else:
            assert not _leaves_equal(started["params"], masks.apply_masks(solved["w_rewind"], m))
            assert _leaves_equal(started["params"], masks.apply_masks(started["params"], m))
