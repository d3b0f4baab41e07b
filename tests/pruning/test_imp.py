"""IMP sweep: level semantics (counts, rewinding, companions, one-shot), vmapped == alone, bit-exact resume."""

import dataclasses
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import data
from pruning import imp, masks, models

SETUP = imp.Setup(
    model=models.MLP(64, (8,), 10), batch_size=16, steps=20, num_levels=3, barrier_points=3, snapshot_levels=(1,)
)
CHUNK = 10


def _data():
    tr, te = data.digits("train"), data.digits("test")
    return tr.x[:120], tr.y[:120], te.x[:60], te.y[:60]


def _runs(names, seeds=(0, 1)):
    return imp.make_runs(seeds, names, lr=0.05, weight_decay=1e-3, fraction=0.2, rewind_step=4)


NAMES = ["imp", "no_rewind", "retrain_final", "one_shot", "twin", "perturbed", "random_pruning", "random_reinit"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Every run kind for two seeds, trained through all levels with checkpoints."""
    d = _data()
    sw = imp.Sweep(SETUP, _runs(NAMES), CHUNK)
    ckpt = str(tmp_path_factory.mktemp("imp") / "ckpt")
    state = sw.run(sw.init(), d, ckpt_dir=ckpt)
    return sw, d, state, ckpt


def _row(tree, r):
    return jax.tree.map(lambda x: np.asarray(x)[r], tree)


def test_densities_follow_exact_counts_and_pruned_weights_are_zero(swept):
    sw, _, state, _ = swept
    h = imp.history(state)
    params0 = _row(state["params"], 0)
    rates = SETUP.rates(params0)
    total = masks.size(masks.ones_masks(params0), rates)
    n, want = total, [1.0]
    for _ in range(SETUP.num_levels - 1):
        n -= int(np.floor(0.2 * n + 0.5))
        want.append(n / total)
    for r, run in enumerate(sw.runs):
        np.testing.assert_allclose(h["density"][r], want, rtol=0, atol=1.0 / total if run.name == "one_shot" else 1e-7)
    m = masks.get_masks(state["opt"])
    for p, mm in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(m), strict=True):
        assert np.all(np.asarray(p)[~np.asarray(mm)] == 0.0)
    assert np.all(np.isfinite(h["test_error"])) and np.all(np.isnan(h["barrier_loss"][:, 0]))
    assert np.all(np.isfinite(h["barrier_loss"][:, 1:]))


def test_transition_rewinds_each_kind_to_its_starting_point(swept):
    sw, _, state, _ = swept
    before = state
    after = sw.transition(state, SETUP.num_levels)  # one more level's prune + rewind, from the final solutions
    old_m, new_m = masks.get_masks(before["opt"]), masks.get_masks(after["opt"])
    idx = {(r.name, r.seed): i for i, r in enumerate(sw.runs)}
    for seed in (0, 1):
        i = idx[("imp", seed)]
        m_i = _row(new_m, i)
        # survivors rewound to w_k, the level-L solution kept as w_prev, momentum reset
        want = masks.apply_masks(_row(before["w_rewind"], i), m_i)
        for a, b in zip(jax.tree.leaves(_row(after["params"], i)), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(a, np.asarray(b))
        j = idx[("retrain_final", seed)]
        want = masks.apply_masks(_row(before["params"], j), _row(new_m, j))
        for a, b in zip(jax.tree.leaves(_row(after["params"], j)), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(a, np.asarray(b))
        # no rewinding: w_k is the initialisation itself (rewind step 0)
        k = idx[("no_rewind", seed)]
        init = sw.init()
        np.testing.assert_array_equal(
            np.asarray(before["w_rewind"]["head"]["kernel"][k]), np.asarray(init["params"]["head"]["kernel"][k])
        )
        # companions take the parent's new mask and rewind point
        for comp in ("twin", "perturbed"):
            c = idx[(comp, seed)]
            for a, b in zip(jax.tree.leaves(_row(new_m, c)), jax.tree.leaves(m_i), strict=True):
                np.testing.assert_array_equal(a, b)
        c = idx[("twin", seed)]
        for a, b in zip(
            jax.tree.leaves(_row(after["params"], c)), jax.tree.leaves(_row(after["params"], i)), strict=True
        ):
            np.testing.assert_array_equal(a, b)
        # the perturbed copy starts at distance ||w_k (m_{L-1} - m_L)|| from the parent's start, inside the mask
        c = idx[("perturbed", seed)]
        diff = [
            np.asarray(a) - np.asarray(b)
            for a, b in zip(
                jax.tree.leaves(_row(after["params"], c)), jax.tree.leaves(_row(after["params"], i)), strict=True
            )
        ]
        dist = np.sqrt(sum(np.sum(x**2) for x in diff))
        wk = _row(before["w_rewind"], i)
        moved = [
            np.where(np.asarray(a) & ~np.asarray(b), np.asarray(w), 0.0)
            for w, a, b in zip(jax.tree.leaves(wk), jax.tree.leaves(_row(old_m, i)), jax.tree.leaves(m_i), strict=True)
        ]
        want_dist = np.sqrt(sum(np.sum(x**2) for x in moved))
        assert want_dist > 0 and dist == pytest.approx(want_dist, rel=1e-4)
        # open_lth's controls: the parent's mask shuffled within each layer (same per-layer counts) on w_k, and
        # the parent's mask on a fresh initialisation
        c = idx[("random_pruning", seed)]
        shuffled = jax.tree.leaves(_row(new_m, c))
        assert any(not np.array_equal(a, b) for a, b in zip(shuffled, jax.tree.leaves(m_i), strict=True))
        for a, b in zip(shuffled, jax.tree.leaves(m_i), strict=True):
            assert a.sum() == b.sum()
        want = masks.apply_masks(_row(before["w_rewind"], c), _row(new_m, c))
        for a, b in zip(jax.tree.leaves(_row(after["params"], c)), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(a, np.asarray(b))
        c = idx[("random_reinit", seed)]
        for a, b in zip(jax.tree.leaves(_row(new_m, c)), jax.tree.leaves(m_i), strict=True):
            np.testing.assert_array_equal(a, b)
        k_head = np.asarray(_row(after["params"], c)["head"]["kernel"])
        assert not np.array_equal(k_head, np.asarray(_row(after["params"], i)["head"]["kernel"]))
        # one-shot: the magnitude mask of the dense solution at density (1 - 0.2)^L
        o = idx[("one_shot", seed)]
        dense = _row(before["w_dense"], o)
        rates = SETUP.rates(dense)
        target = 1 - 0.8**SETUP.num_levels
        want_m = masks.magnitude_prune(dense, masks.ones_masks(dense), target, rates)
        for a, b in zip(jax.tree.leaves(_row(new_m, o)), jax.tree.leaves(want_m), strict=True):
            np.testing.assert_array_equal(a, np.asarray(b))


def test_vmapped_run_equals_the_same_run_alone(swept):
    """The sweep (vmapped over 16 runs, chunked, sharded) against one run of the pure `imp.train` under plain jit."""
    sw, d, state, _ = swept
    h = imp.history(state)
    alone = jax.jit(lambda k, hp: imp.train(SETUP, k, hp, d))
    for name, seed in (("imp", 1), ("no_rewind", 0), ("one_shot", 1)):
        r = next(i for i, run in enumerate(sw.runs) if run.name == name and run.seed == seed)
        hp = {k: jnp.asarray(v[r]) for k, v in sw.hp.items()}
        st = alone(jax.random.key(seed), hp)
        for k in ("density", "test_error", "train_loss", "barrier_loss"):
            np.testing.assert_allclose(np.asarray(st["hist"][k]), h[k][r], rtol=2e-5, atol=1e-6, err_msg=k)
        for a, b in zip(jax.tree.leaves(st["params"]), jax.tree.leaves(state["params"]), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[r], rtol=1e-4, atol=1e-5)


def test_resume_mid_level_is_bit_exact(swept, tmp_path):
    sw, d, state, ckpt = swept
    work = str(tmp_path / "ckpt")
    shutil.copytree(ckpt, work)
    steps = sorted(int(s) for s in os.listdir(work) if s.isdigit())
    total = SETUP.num_levels * SETUP.steps
    assert steps[-1] == total
    shutil.rmtree(os.path.join(work, str(total)))  # as if killed in the middle of the last level
    assert (total - CHUNK) % SETUP.steps != 0
    again = sw.run(sw.init(), d, ckpt_dir=work)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_rewind_points_from_a_prefix_equal_those_of_a_whole_dense_level():
    """experiment.rewind_points trains only the first k_max + 1 steps of level 0; its w_k must be the w_k that a
    whole level-0 run saves at step k (same minibatches and rates), for every seed and k."""
    from pruning import experiment

    d = _data()
    setup = imp.Setup(model=models.MLP(64, (8,), 10), batch_size=16, steps=20, num_levels=2, lr_drops=(3,))
    runs = [imp.Run(s, "imp", i, 0.05, 1e-3, 0.0, k) for i, (s, k) in enumerate([(0, 0), (0, 4), (1, 7), (1, 4)])]
    got = experiment.rewind_points(setup, runs, 7, d)["w_rewind"]
    full = dataclasses.replace(setup, num_levels=1)
    sw = imp.Sweep(full, runs, 10)
    want = sw.run(sw.init(), d)["w_rewind"]
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w)[: len(runs)], rtol=1e-5, atol=1e-6)
    # and they differ between rewind steps (the test would pass trivially on w_0 everywhere)
    assert not np.allclose(jax.tree.leaves(got)[0][0], jax.tree.leaves(got)[0][1])
