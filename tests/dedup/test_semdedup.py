"""The per-cluster rule against a brute-force double loop, the keep orders, non-transitivity, no recompiles."""

import zlib

import jax
import numpy as np
import pytest

from dedup import pipeline, semdedup

EPS = (0.02, 0.1, 0.3, 0.7, 1.2, 1.9)


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _cluster(rng, n, d=6):
    """Random unit vectors with some planted near-copies, so every ε removes something different."""
    x = rng.normal(size=(n, d))
    k = n // 3
    if k:
        src = rng.integers(0, n, k)
        dst = rng.integers(0, n, k)
        x[dst] = x[src] + rng.uniform(0.02, 0.5, (k, 1)) * rng.normal(size=(k, d))
    return _unit(x)


def _agree(got, ref, e_nxd, eps, tol=1e-5):
    """Equal wherever the max similarity is not within float32 rounding of the threshold."""
    s = e_nxd.astype(np.float64) @ e_nxd.T.astype(np.float64)
    near = np.zeros_like(ref)
    for k, x in enumerate(eps):
        near[:, k] = (np.abs(s - (1 - x)) < tol).any(axis=0)
    assert np.array_equal(got[~near], ref[~near])
    return near


@pytest.mark.parametrize("engine", ["host", "compiled"])
@pytest.mark.parametrize("rule", ["paper", "greedy"])
@pytest.mark.parametrize("keep", ["hard", "easy", "random"])
def test_rule_matches_brute_force(rule, keep, engine):
    if rule == "greedy" and engine == "host":
        pytest.skip("the host engine runs the paper rule only")
    rng = np.random.default_rng(zlib.crc32(f"{rule}-{keep}".encode()))  # str hash() is salted per process
    # each size 4x with batches of 4: full batches run compiled (XLA), the rest unpadded in numpy
    sizes = [1, 2, 3, 9, 16, 17, 30, 41] * 4 + [5, 33]
    clusters, ordered = [], []
    for c, n in enumerate(sizes):
        e = _cluster(rng, n)
        centroid = _unit(e.sum(0, keepdims=True))[0]
        sims = e @ centroid
        order = pipeline.keep_order(np.arange(n), sims, keep, seed=3, cluster=c)
        ordered.append(e[order])
        clusters.append(order)
    out = semdedup.dedup_clusters(ordered, EPS, rule, max_batch=4, engine=engine)
    near = []
    for e, o in zip(ordered, out, strict=True):
        ref = semdedup.brute_force(e, EPS, rule)
        near.append(_agree(o["removed"], ref, e, EPS).ravel())
        assert not o["removed"][0].any()  # the first item is always kept
        # every removal names an earlier item above the threshold, with the right similarity
        for j, k in zip(*np.nonzero(o["removed"]), strict=True):
            p = o["partner"][j, k]
            assert 0 <= p < j
            assert o["partner_sim"][j, k] == pytest.approx(float(e[p] @ e[j]), abs=1e-5)
            assert o["partner_sim"][j, k] > 1 - EPS[k] - 1e-5
            if rule == "paper":  # the paper's partner is the most similar earlier item
                assert o["partner_sim"][j, k] == pytest.approx((e[:j] @ e[j]).max(), abs=1e-5)
        assert np.isnan(o["partner_sim"][~o["removed"]]).all()
        assert (o["partner"][~o["removed"]] == -1).all()
    assert np.concatenate(near).mean() < 0.02  # the comparison is not vacuous


def test_nearest_neighbour_similarity():
    rng = np.random.default_rng(0)
    e = _cluster(rng, 37)
    (o,) = semdedup.dedup_clusters([e], (0.1,), "paper")
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    np.testing.assert_allclose(o["nn_sim"], s.max(axis=1), atol=1e-5)


def _chain():
    """A, B, C on a great circle: cos(A,B) = cos(B,C) = 0.95, cos(A,C) = cos(2·acos 0.95) = 0.805."""
    t = np.arccos(0.95)
    ang = np.array([0.0, t, 2 * t])
    return np.stack([np.cos(ang), np.sin(ang), np.zeros(3)], 1).astype(np.float32)


def test_paper_rule_is_not_transitive_greedy_is():
    e = _chain()
    s = e @ e.T
    assert s[0, 1] > 0.9 and s[1, 2] > 0.9 and s[0, 2] < 0.9
    (paper,) = semdedup.dedup_clusters([e], (0.1,), "paper")
    (greedy,) = semdedup.dedup_clusters([e], (0.1,), "greedy")
    assert paper["removed"][:, 0].tolist() == [False, True, True]  # only A survives
    assert paper["partner"][2, 0] == 1  # C is removed as a duplicate of the removed B
    assert greedy["removed"][:, 0].tolist() == [False, True, False]  # C duplicates nothing kept


def test_keep_orders():
    sims = np.array([0.9, 0.2, 0.5, 0.2])
    pos = np.arange(4)
    assert pipeline.keep_order(pos, sims, "hard", 0, 0).tolist() == [1, 3, 2, 0]
    r1 = pipeline.keep_order(pos, sims, "random", 0, 5)
    assert sorted(r1.tolist()) == [0, 1, 2, 3]
    assert np.array_equal(r1, pipeline.keep_order(pos, sims, "random", 0, 5))  # same per cluster


def test_keep_hard_keeps_the_item_farthest_from_the_centroid():
    rng = np.random.default_rng(1)
    base = _unit(rng.normal(size=(1, 8)))[0]
    x = _unit(np.stack([base, base + 0.05 * rng.normal(size=8), rng.normal(size=8)]))
    centroid = _unit(x.sum(0, keepdims=True))[0]
    sims = x @ centroid
    far = int(np.argmin(sims[:2]))
    for keep, kept in (("hard", far), ("easy", 1 - far)):
        order = pipeline.keep_order(np.arange(3), sims, keep, 0, 0)
        (o,) = semdedup.dedup_clusters([x[order]], (0.05,), "paper")
        kept_pos = order[~o["removed"][:, 0]]
        assert kept in kept_pos and (1 - kept) not in kept_pos


def test_buckets():
    sizes = semdedup.bucket_sizes(5000)
    assert sizes[:6] == [16, 24, 32, 48, 64, 96] and sizes[-1] >= 5000
    assert all(b / a <= 1.5 for a, b in zip(sizes, sizes[1:], strict=False))
    assert all(b / a <= 1.25 for a, b in zip(sizes, sizes[1:], strict=False) if a >= 512)
    assert all(s % 256 == 0 for s in sizes if s > 1024)
    assert semdedup.pick_bucket(17, sizes) == 24 and semdedup.pick_bucket(16, sizes) == 16


def test_row_blocks_match_single_block():
    """A padded size above 1024 runs as a scan over 512-row blocks; compare with the one-block path."""
    rng = np.random.default_rng(2)
    es = [_cluster(rng, n, d=4) for n in (1100, 1090, 1200, 1111)]  # one full batch of 4: the compiled scan
    outs = semdedup.dedup_clusters(es, (0.01, 0.2), "paper", max_batch=4, engine="compiled")
    for e, o in zip(es, outs, strict=True):
        s = e.astype(np.float64) @ e.T.astype(np.float64)
        m = np.where(np.triu(np.ones_like(s, bool), 1), s, -np.inf).max(axis=0)
        ref = np.stack([m > 0.99, m > 0.8], 1)
        assert _agree(o["removed"], ref, e, (0.01, 0.2)).mean() < 0.05
        (single,) = semdedup.dedup_clusters([e], (0.01, 0.2), "paper")  # alone: the numpy path
        np.testing.assert_allclose(single["nn_sim"], o["nn_sim"], atol=1e-5)


def test_fixed_shapes_no_recompile_and_sharded():
    assert jax.device_count() == 4  # conftest: 4 fake CPU devices
    rng = np.random.default_rng(3)
    first = [_cluster(rng, n) for n in (17, 20, 19, 21, 5)]  # buckets 24 x4 (one compiled batch), 16
    semdedup.dedup_clusters(first, (0.1,), "paper", max_batch=4, engine="compiled")
    fn24, shard, _ = semdedup._compiled("paper", 24, 6, semdedup.batch_size_for(24, 6, max_batch=4), 1)
    before = fn24._cache_size()
    assert before == 1
    infos = semdedup._compiled.cache_info().currsize
    semdedup.dedup_clusters(
        [_cluster(rng, n) for n in (18, 23, 24, 22, 9)], (0.1,), "paper", max_batch=4, engine="compiled"
    )
    assert fn24._cache_size() == before  # same bucket shape: no new trace
    assert semdedup._compiled.cache_info().currsize == infos
    assert semdedup.batch_size_for(24, 6) % 4 == 0 and semdedup.batch_size_for(24, 6, max_batch=4) == 4
    assert len(shard.device_set) == 4


def test_partial_batches_are_not_padded_to_the_full_batch():
    assert jax.device_count() == 4
    assert [semdedup.tail_batch(m, 64) for m in (1, 4, 5, 9, 17, 40, 63)] == [4, 4, 8, 16, 32, 64, 64]
    assert semdedup.tail_batch(3, 8) == 4 and semdedup.tail_batch(7, 8) == 8
    # a cluster's result does not depend on the batch it ran in (full batch of 12 vs a tail of 4), up to float32
    # rounding of the similarities (XLA tiles the batched product differently per batch size)
    rng = np.random.default_rng(7)
    cs = [_cluster(rng, 20) for _ in range(13)]
    many = semdedup.dedup_clusters(cs, (0.1, 0.3), "paper", max_batch=12, engine="compiled")
    for i in (0, 12):
        (one,) = semdedup.dedup_clusters([cs[i]], (0.1, 0.3), "paper")
        for k in ("removed", "partner"):
            np.testing.assert_array_equal(one[k], many[i][k])
        for k in ("partner_sim", "nn_sim"):
            np.testing.assert_allclose(one[k], many[i][k], rtol=0, atol=1e-6)


def test_units_hold_whole_batches():
    sizes = np.array([1000] * 23 + [10] * 5)
    buckets = semdedup.bucket_sizes(1000)
    units = pipeline.plan_units(range(28), sizes, buckets, per_file=16, dim=384)
    bsz = semdedup.batch_size_for(1024, 384, max_batch=16)
    big = [u for u in units if sizes[u[0]] == 1000]
    assert all(u.size % bsz == 0 for u in big[:-1]) and sum(u.size for u in big) == 23


def test_pair_at_exactly_one_minus_eps_is_kept_strict_threshold():
    """cos([1, 0], [0.5, √0.75]) = 0.5 exactly in float32 and 1 − ε = 0.5 exactly at ε = 0.5: the rule is a strict
    M > 1 − ε, so the pair survives at ε = 0.5 and goes at the next float above (threshold 0.4999999), both in the
    compiled batched kernel (a full batch) and on the host engine."""
    e = np.asarray([[1.0, 0.0], [0.5, np.sqrt(0.75)]], np.float32)
    assert np.float32(e[0] @ e[1]) == np.float32(0.5) and np.float32(1.0 - 0.5) == np.float32(0.5)
    eps = (0.5, 0.5000001)
    want = [[False, False], [False, True]]
    ndev = jax.device_count()
    assert semdedup.batch_size_for(16, 2, max_batch=1) == ndev  # ndev clusters fill one compiled batch
    compiled = semdedup.dedup_clusters([e] * ndev, eps, "paper", max_batch=1, engine="compiled")
    (alone,) = semdedup.dedup_clusters([e], eps, "paper", engine="host")
    greedy = semdedup.dedup_clusters([e] * ndev, eps, "greedy", max_batch=1, engine="compiled")
    for o in [*compiled, alone, *greedy]:
        assert o["removed"].tolist() == want
        assert o["partner"][1, 1] == 0 and o["partner_sim"][1, 1] == np.float32(0.5)
