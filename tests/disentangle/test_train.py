"""Training: the constrained linear autoencoder disentangles and the unconstrained one does not (one sweep through
the shared driver); a broken constraint does not reach the margin; chunking does not change the result; a diverging
run is caught by the guarded scan; the cell model's known answers."""

import jax
import numpy as np
import pytest

from common import checkpoint, sweep, train_loop
from common import metrics as metrics_lib
from disentangle import cells, metrics, models, train

TC = train.TrainConfig(models.ModelConfig("linear_ae", 12, 12, 4), num_factors=3, batch_size=128, chunk_steps=1500)
MARGIN = 0.3  # constrained minus unconstrained MIR, every seed


def _hp(constrained: np.ndarray, lr: float = 1e-2, **over) -> dict:
    c = np.asarray(constrained, np.float32)
    hp = {k: np.zeros_like(c) for k in train.HPARAMS}
    hp.update(lr=np.full_like(c, lr), beta_nonneg=0.5 * c, beta_activity=2e-2 * c, beta_weight=5e-3 * c)
    hp.update({k: np.asarray(v, np.float32) for k, v in over.items()})
    return hp


@pytest.fixture(scope="module")
def trained():
    # runs: 3 seeds x (unconstrained, constrained), then one seed with each constraint term switched off in turn
    con = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1], np.float32)
    hp = _hp(con)
    hp["beta_nonneg"][6] = 0.0  # no nonnegativity
    hp["beta_activity"][7] = 0.0  # no activity energy
    hp["beta_weight"][8] = hp["beta_activity"][8] = 0.0  # nonnegativity alone
    keys = jax.vmap(jax.random.key)(np.array([0, 1, 2, 0, 1, 2, 0, 0, 0], np.uint32))
    res = train_loop.train(name="t", init=train.init_state, chunk=train.chunk, static=(TC,), keys=keys, hparams=hp,
                           num_steps=3000, chunk_steps=1500)  # fmt: skip
    out = res.evaluate(train.evaluate, static=(TC, 5000, 7))
    mir = np.array([metrics.mir(out["code"][r], out["factors"][r], factor_bins=20) for r in range(9)])
    return res, out, mir


def test_constrained_linear_autoencoder_disentangles_and_unconstrained_does_not(trained):
    res, out, mir = trained
    assert np.all(res.history[checkpoint.NONFINITE] == -1) if checkpoint.NONFINITE in res.history else True
    assert mir[3:6].min() > 0.9, mir
    assert mir[:3].max() < 0.75 and mir[:3].mean() < 0.6, mir
    assert (mir[3:6] - mir[:3]).min() > MARGIN, mir  # paired seeds: same init and data
    # both reconstruct: the difference is in how the code is organised, not in what it keeps
    assert np.asarray(out["recon"])[:6].max() < 0.05
    # the constrained code is nonnegative up to the penalty's slack
    assert np.asarray(out["code"])[3:6].min() > -0.05


def test_each_constraint_is_needed(trained):
    # dropping any one term of Eq. 2 (a constraint that is broken) loses the margin
    _, _, mir = trained
    assert mir[6:].max() < mir[3:6].min() - MARGIN, mir


def test_independent_evaluation_factors_are_independent(trained):
    _, out, _ = trained
    f = np.asarray(out["factors_independent"][0])
    assert abs(np.corrcoef(f.T)[0, 1]) < 0.05 and f.min() >= 0 and f.max() <= 1
    np.testing.assert_array_equal(out["factors_independent"][0], out["factors_independent"][5])  # one set for all


SMALL = train.TrainConfig(models.ModelConfig("linear_ae", 6, 6, 3), num_factors=2, batch_size=16, chunk_steps=10)


def test_chunks_continue_from_their_start_step():
    # one compiled 10-step chunk, called at steps 0, 10, 20, 30 with the state round-tripped through host numpy
    # (what a checkpoint does) equals the uninterrupted sequence, and differs from replaying steps 0-9 four times
    hp = sweep.put(_hp(np.array([1.0, 0.0])), 2)
    keys = sweep.grid([5, 6]).keys()
    init = sweep.vmapped(train.init_state, static=(SMALL,))
    chunk = sweep.vmapped(train.chunk, in_axes=(0, 0, None, None), static=(SMALL,))
    a = b = c = init(keys, hp)
    for start in range(0, 40, 10):
        a, _ = chunk(a, hp, None, np.int32(start))
        if start == 20:
            b = sweep.put(sweep.to_numpy(b, 2), 2)
        b, _ = chunk(b, hp, None, np.int32(start))
        c, _ = chunk(c, hp, None, np.int32(0))
    pa, pb, pc = (jax.tree.leaves(sweep.to_numpy(x["params"], 2)) for x in (a, b, c))
    for x, y in zip(pa, pb, strict=True):
        np.testing.assert_array_equal(x, y)
    assert max(float(np.abs(x - z).max()) for x, z in zip(pa, pc, strict=True)) > 1e-4


def test_diverging_run_is_stopped_naming_it():
    hp = _hp(np.array([0.0, 0.0]), lr=1e-3)
    hp["lr"] = np.array([1e-3, 1e35], np.float32)  # the second run's first update overflows
    keys = sweep.grid([0, 1]).keys()
    with pytest.raises(metrics_lib.NonFiniteError, match=r"step [0-2]\b.*run 1: seed=1"):
        train_loop.train(name="d", init=train.init_state, chunk=train.chunk, static=(SMALL,), keys=keys, hparams=hp,
                         num_steps=20, chunk_steps=10, labels=[{"seed": 0}, {"seed": 1}])  # fmt: skip


def test_separation_score_known_answers():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(4000, 2))
    d = rng.integers(0, 5, size=(4000, 2))
    ang = lambda v: 2 * np.pi * v / 5  # noqa: E731
    pure = np.stack(
        [1 + np.cos(ang(x[:, 0])), 1 + np.sin(ang(x[:, 1])), 1 + np.cos(ang(d[:, 0])), 1 + np.sin(ang(d[:, 1]))], 1
    )
    mixed = pure @ np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, -1, 0], [0, 1, 0, -1]], float) + 3
    s_pure = cells.separation_score(pure, x, d)
    s_mixed = cells.separation_score(mixed, x, d)
    assert s_pure["score"] > 0.9 and s_mixed["score"] < 0.2
    assert np.allclose(np.sign(np.array(s_pure["i_x"]) - np.array(s_pure["i_d"])), [1, 1, -1, -1])


def test_objects_are_tied_to_a_place_only_in_the_entangled_task():
    cfg = cells.CellConfig(side=5, num_worlds=200)
    key = jax.random.key(0)
    objects = jax.jit(lambda j: cells.objects(key, cfg, j))
    free = np.asarray(objects(1000))
    tied = np.asarray(objects(1))
    assert len({tuple(o) for o in free}) > 20
    assert set(np.unique(tied)) <= {0, 1} and len({tuple(o) for o in tied}) == 4
