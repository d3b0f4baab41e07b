"""Spherical k-means: one Lloyd step against numpy, assignment, initialisation, recovery of planted clusters."""

import os

import jax
import numpy as np
import pytest

from dedup import kmeans


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(params=["host", "jit"])
def engine(request, monkeypatch):
    """Both implementations: the host BLAS (what a CPU backend runs) and the jitted one (accelerators)."""
    if request.param == "jit":
        monkeypatch.setattr(kmeans, "use_host_blas", lambda: False)
    return request.param


def _blobs(seed, k=6, per=50, d=16, spread=0.15):
    rng = np.random.default_rng(seed)
    centers = _unit(rng.normal(size=(k, d)))
    lab = np.repeat(np.arange(k), per)
    x = _unit(centers[lab] + spread * rng.normal(size=(k * per, d)) / np.sqrt(d))
    perm = rng.permutation(lab.size)
    return x[perm], lab[perm], centers


def test_lloyd_iteration_matches_numpy_with_padded_batches(engine):
    x, _, _ = _blobs(0)
    rng = np.random.default_rng(1)
    c = _unit(rng.normal(size=(6, 16)))
    c[5] = -x.mean(0) / np.linalg.norm(x.mean(0))  # likely an empty cluster
    new, counts, obj = kmeans.lloyd_iteration(x, c, batch_size=64)  # 300 rows: last batch padded
    s = x @ c.T
    lab = s.argmax(1)
    ref_counts = np.bincount(lab, minlength=6)
    sums = np.stack([x[lab == j].sum(0) for j in range(6)])
    ref = np.where(ref_counts[:, None] > 0, sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-30), c)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_allclose(new, ref, atol=1e-5)
    assert obj == pytest.approx(s.max(1).mean(), abs=1e-5)
    np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-5)


def test_assign_streams_into_output_arrays(engine):
    x, _, centers = _blobs(2)
    lab = np.full(x.shape[0], -1, np.int32)
    sim = np.zeros(x.shape[0], np.float32)
    done = []
    kmeans.assign(x, centers, 128, lab, sim, start=0, on_batch=done.append)
    s = x @ centers.T
    np.testing.assert_array_equal(lab, s.argmax(1))
    np.testing.assert_allclose(sim, s.max(1), atol=1e-6)
    assert done == [128, 256, 300]
    lab2 = lab.copy()
    lab2[200:] = -1
    kmeans.assign(x, centers, 100, lab2, sim, start=200)  # resume from row 200
    np.testing.assert_array_equal(lab2, lab)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_init_picks_distinct_data_rows(init, engine):
    x, _, _ = _blobs(3)
    c = kmeans.init_centroids(jax.random.key(0), x, 6, init)
    match = (np.abs(c[:, None, :] - x[None]).max(-1) < 1e-6).any(1)
    assert match.all()
    assert len({tuple(np.round(r, 5)) for r in c}) == 6
    with pytest.raises(ValueError, match="exceeds"):
        kmeans.init_centroids(jax.random.key(0), x[:3], 6, init)


def test_kmeanspp_covers_separated_blobs(engine):
    """D² sampling puts one seed in each of 6 far-apart blobs (almost surely)."""
    x, lab, _ = _blobs(4, spread=0.05)
    hits = 0
    for s in range(5):
        c = kmeans.init_centroids(jax.random.key(s), x, 6, "kmeans++")
        hits += len(set((c @ _blobs(4, spread=0.05)[2].T).argmax(1))) == 6
    assert hits >= 4


def test_fit_recovers_planted_clusters_and_objective_increases():
    x, lab, centers = _blobs(5)
    c, hist = kmeans.fit(x, 6, jax.random.key(1), iterations=8, batch_size=100)
    pred = (x @ c.T).argmax(1)
    # a perfect clustering up to relabelling: each planted blob maps to one predicted cluster
    pairs = set(zip(lab.tolist(), pred.tolist(), strict=True))
    assert len(pairs) == 6 and len({p for _, p in pairs}) == 6
    assert all(b >= a - 1e-6 for a, b in zip(hist, hist[1:], strict=False))
    np.testing.assert_allclose(np.sort((c @ centers.T).max(1)), np.ones(6), atol=0.01)


def test_converged_rule():
    assert not kmeans.converged([0.5], 1e-4)
    assert kmeans.converged([0.5, 0.50001], 1e-4)
    assert not kmeans.converged([0.5, 0.6], 1e-4)
    assert not kmeans.converged([0.5, 0.5], 0.0)  # tol = 0: run every iteration
    x, _, _ = _blobs(6)
    _, hist = kmeans.fit(x, 6, jax.random.key(0), iterations=50, batch_size=100, tol=1e-4)
    assert len(hist) < 50 and kmeans.converged(hist, 1e-4)


@pytest.mark.parametrize("after_write", [False, True])
def test_resume_after_a_kill_at_any_point_is_byte_identical(tmp_path, monkeypatch, after_write):
    """Kill fit at every state save (before or after the file is replaced), resume: the same centroids, bit for
    bit, and the same objective history, as one uninterrupted run."""
    x, _, _ = _blobs(4, per=40)
    kw = dict(iterations=6, batch_size=64, tol=0.0, sample_size=200, init_points=150)
    ref_c, ref_h = kmeans.fit(x, 6, jax.random.key(5), **kw)
    real = kmeans.save_state
    for kill_at in range(kw["iterations"] + 1):
        path = str(tmp_path / f"state{kill_at}-{after_write}.npz")
        calls = [0]

        def dying(p, c, h, kill_at=kill_at, calls=calls):
            if after_write:
                real(p, c, h)
            if calls[0] == kill_at:
                raise KeyboardInterrupt
            calls[0] += 1
            if not after_write:
                real(p, c, h)

        monkeypatch.setattr(kmeans, "save_state", dying)
        with pytest.raises(KeyboardInterrupt):
            kmeans.fit(x, 6, jax.random.key(5), state_path=path, **kw)
        monkeypatch.setattr(kmeans, "save_state", real)
        c, h = kmeans.fit(x, 6, jax.random.key(5), state_path=path, **kw)
        assert c.tobytes() == ref_c.tobytes() and h == ref_h, kill_at
        assert len(os.listdir(tmp_path)) == kill_at + 1  # one state file per run, no temp files left


def test_batched_kmeanspp_rounds_still_cover_separated_blobs():
    """From k = 512 on, k-means++ draws k // 128 centres per D² round. On 600 far-apart tight blobs (10 points each)
    exact k-means++ seeds 99-100 % of the blobs; the batched rounds must stay within ~2 % of that, and far from a
    uniform draw of 600 rows (which seeds 1 - (1 - 1/600)^600 ≈ 63 % of them)."""
    assert [kmeans.pp_per_round(k) for k in (6, 316, 511, 512, 600, 1000, 3162)] == [1, 1, 1, 4, 4, 7, 24]
    rng = np.random.default_rng(0)
    k, per, d = 600, 10, 64
    centers = _unit(rng.normal(size=(k, d)))
    x = _unit(centers[np.repeat(np.arange(k), per)] + 0.02 * rng.normal(size=(k * per, d)) / np.sqrt(d))
    c = kmeans.init_centroids(jax.random.key(1), x, k, "kmeans++")
    assert c.shape == (k, d)
    rows = {r.tobytes() for r in x}
    assert all(r.tobytes() in rows for r in c)  # every centre is a data row
    assert len(set((c @ centers.T).argmax(1).tolist())) / k >= 0.97
