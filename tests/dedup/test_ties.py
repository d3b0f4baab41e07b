"""Exact ties, as the released code breaks them: an independent brute-force transcription of the released
ordering (`sorted(..., reverse=True)` on the float32 distance 1 − cos, `easy` = that list reversed) and rule
(`torch.triu(S, 1)`, column max > 1 − ε) against `keep_order` + `dedup_clusters`, on clusters full of exact
duplicates and equal centroid similarities."""

import numpy as np
import pytest

from dedup import pipeline, semdedup

EPS = (0.01, 0.05, 0.2, 0.5)


def _released_removed_rows(rows, dist32, e_by_row, keep, eps):
    """The released per-cluster code, transcribed with plain Python lists: returns the set of removed rows."""
    items = sorted(zip(rows.tolist(), dist32.tolist(), strict=True), key=lambda t: t[1], reverse=True)
    order = [r for r, _ in items]
    if keep == "easy":
        order = order[::-1]
    e = np.asarray([e_by_row[r] for r in order], np.float64)
    s = e @ e.T
    np.fill_diagonal(s, 0.0)
    m = np.triu(s, 1).max(axis=0)
    return {order[j] for j in range(len(order)) if m[j] > 1 - eps}


def _tied_cluster(rng, n_base, d=8):
    """Base vectors each copied 1-5 times exactly (identical rows and identical centroid similarity), some near
    copies, and centroid similarities rounded to 2 decimals so unrelated items tie too."""
    base = rng.normal(size=(n_base, d))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    reps = rng.integers(1, 6, n_base)
    group = np.repeat(np.arange(n_base), reps)
    rng.shuffle(group)
    e = base[group].copy()
    near = rng.random(group.size) < 0.15
    e[near] += 0.05 * rng.normal(size=(near.sum(), d))
    e = (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)
    centroid = e.sum(0) / np.linalg.norm(e.sum(0))
    sims = np.round(e.astype(np.float64) @ centroid, 2).astype(np.float32)
    return e, sims, group


@pytest.mark.parametrize("keep", ["hard", "easy"])
def test_ties_match_the_released_rule_brute_force(keep):
    rng = np.random.default_rng(19 if keep == "hard" else 20)
    n_ties = 0
    for trial in range(6):
        e, sims, _ = _tied_cluster(rng, n_base=[3, 7, 12, 20, 30, 45][trial])
        n = e.shape[0]
        # rows of this cluster within a larger file: ascending but not contiguous
        rows = np.sort(rng.choice(10 * n, n, replace=False))
        sims_by_row = np.zeros(10 * n, np.float32)
        sims_by_row[rows] = sims
        order = pipeline.keep_order(rows, sims_by_row, keep, seed=0, cluster=trial)
        e_by_row = dict(zip(rows.tolist(), e, strict=True))
        ordered = np.stack([e_by_row[r] for r in order.tolist()])
        (alone,) = semdedup.dedup_clusters([ordered], EPS, "paper", engine="host")  # host BLAS
        batched = semdedup.dedup_clusters([ordered] * 4, EPS, "paper", max_batch=4, engine="compiled")  # one batch
        for out in (alone, *batched):
            for k, x in enumerate(EPS):
                ours = set(order[out["removed"][:, k]].tolist())
                assert ours == _released_removed_rows(rows, np.float32(1) - sims, e_by_row, keep, x), (trial, x)
        n_ties += n - np.unique(sims).size
    assert n_ties > 100  # the corpora really are full of ties


def test_exact_copies_keep_lowest_row_hard_highest_easy_and_lowest_id_option():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(1, 8))
    v /= np.linalg.norm(v)
    e = np.repeat(v, 4, 0).astype(np.float32)  # four identical items: exact ties everywhere
    rows = np.array([5, 9, 2, 7])
    sims = np.zeros(10, np.float32)
    sims[rows] = 0.5
    ids_rank = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])  # a user's ids in the opposite order of the rows
    kept = {}
    for keep, tb in (("hard", "released"), ("easy", "released"), ("hard", "lowest_id"), ("easy", "lowest_id")):
        order = pipeline.keep_order(rows, sims, keep, 0, 0, tb, ids_rank)
        (o,) = semdedup.dedup_clusters([e[np.argsort(rows)][np.searchsorted(np.sort(rows), order)]], (0.1,), "paper")
        kept[(keep, tb)] = order[~o["removed"][:, 0]].tolist()
    assert kept[("hard", "released")] == [2]  # lowest row
    assert kept[("easy", "released")] == [9]  # highest row, as the released code's reversed list
    assert kept[("hard", "lowest_id")] == kept[("easy", "lowest_id")] == [9]  # rank 0 = row 9


def test_keep_orders_as_released():
    sims = np.array([0.9, 0.2, 0.5, 0.2], np.float32)
    pos = np.arange(4)
    assert pipeline.keep_order(pos, sims, "hard", 0, 0).tolist() == [1, 3, 2, 0]
    assert pipeline.keep_order(pos, sims, "easy", 0, 0).tolist() == [0, 2, 3, 1]  # the hard list reversed
    assert pipeline.keep_order(pos, sims, "easy", 0, 0, "lowest_id").tolist() == [0, 2, 1, 3]
    with pytest.raises(ValueError, match="tie_break"):
        pipeline.keep_order(pos, sims, "hard", 0, 0, "first")


@pytest.mark.parametrize("keep", ["hard", "easy"])
def test_ties_in_a_cluster_large_enough_for_the_split_product(keep, monkeypatch):
    """Above 768 items the host engine forms only the lower half of S in two products; exact duplicates on
    both sides of the split still tie exactly: the same removals as the released rule's transcription, and the
    same M, partners and nearest neighbours as one full product."""
    rng = np.random.default_rng(23 if keep == "hard" else 24)
    e, sims, _ = _tied_cluster(rng, n_base=300)
    n = e.shape[0]
    assert n > semdedup._SPLIT_ABOVE
    rows = np.arange(n)
    order = pipeline.keep_order(rows, sims, keep, seed=0, cluster=0)
    ordered = e[order]
    (split,) = semdedup.dedup_clusters([ordered], EPS, "paper", engine="host")
    e_by_row = dict(zip(rows.tolist(), e, strict=True))
    for k, x in enumerate(EPS):
        ours = set(order[split["removed"][:, k]].tolist())
        assert ours == _released_removed_rows(rows, np.float32(1) - sims, e_by_row, keep, x), x
    # the partner of every removal is the earliest of its exact copies (a product may put copies 1 ulp apart)
    first = {}
    for pos, r in enumerate(ordered):
        first.setdefault(r.tobytes(), pos)
    for j, k in zip(*np.nonzero(split["removed"]), strict=True):
        p = split["partner"][j, k]
        assert first[ordered[p].tobytes()] == p, (j, p)
    monkeypatch.setattr(semdedup, "_SPLIT_ABOVE", 10**9)
    (full,) = semdedup.dedup_clusters([ordered], EPS, "paper", engine="host")
    for key in ("removed", "partner"):
        np.testing.assert_array_equal(split[key], full[key])
    np.testing.assert_allclose(split["partner_sim"], full["partner_sim"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(split["nn_sim"], full["nn_sim"], rtol=0, atol=1e-6)
