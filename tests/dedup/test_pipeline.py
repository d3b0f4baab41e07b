"""The staged pipeline end to end: outputs and their partition invariant, an exact per-cluster reference,
resume after a kill, the job-array model, user embeddings with bad rows, and bad inputs."""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from common import app
from dedup import experiment, pipeline, semdedup
from dedup.configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(**kw):
    c = default.get_config("smoke")
    for k, v in kw.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


def _outputs(workdir, eps):
    out = {}
    for e in eps:
        d = os.path.join(workdir, pipeline.eps_name(e))
        for f in ("kept_ids", "removed_ids", "duplicate_of", "similarity"):
            out[(e, f)] = np.load(os.path.join(d, f + ".npy"))
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("dedup") / "ref")
    cfg = _cfg()
    results = app.execute(experiment, cfg, workdir)
    return workdir, cfg, results


def test_results_files_and_partition(ref):
    workdir, cfg, r = ref
    for key in ("n_items", "n_clusters", "eps", "precision", "recall", "pairs_in_same_cluster"):
        assert key in r
    assert r["n_items"] == 2000 and r["n_clusters"] == 12
    assert r["data_source"] == "synthetic:planted_duplicates (dedup.synthetic)"
    all_ids = np.arange(2000)
    x = np.load(os.path.join(workdir, "pipeline", "embed", "embeddings.npy"))
    labels = np.load(os.path.join(workdir, "pipeline", "cluster", "labels.npy"))
    out = _outputs(workdir, cfg.eps)
    for e in cfg.eps:
        kept, rem = out[(e, "kept_ids")], out[(e, "removed_ids")]
        assert kept.dtype == np.int64 and rem.dtype == np.int64
        both = np.concatenate([kept, rem])
        assert np.array_equal(np.sort(both), all_ids)  # union = all ids, each once, disjoint
        dup, sim = out[(e, "duplicate_of")], out[(e, "similarity")]
        assert dup.shape == rem.shape == sim.shape
        np.testing.assert_allclose(sim, np.einsum("ij,ij->i", x[rem], x[dup]), atol=1e-5)
        assert (sim > 1 - e - 1e-6).all()
        assert (labels[rem] == labels[dup]).all()  # duplicates are found within clusters
        s = r["eps"][repr(float(e))]
        assert s["kept"] == kept.size and s["removed"] == rem.size
        assert s["kept_fraction"] == pytest.approx(kept.size / 2000)
    kf = [r["eps"][repr(float(e))]["kept_fraction"] for e in sorted(cfg.eps)]
    assert all(b <= a for a, b in zip(kf, kf[1:], strict=False))  # larger ε removes more
    assert r["precision"] == 1.0 and r["recall"] > 0.95
    for f in ("kept_fraction_vs_eps.png", "cluster_sizes.png", "nn_similarity.png"):
        assert os.path.getsize(os.path.join(workdir, "figures", f)) > 1000


def test_matches_exact_per_cluster_reference(ref):
    """Recompute the paper's rule per cluster in float64 numpy from the stored clusters and centroid
    similarities (keep = hard) and compare with the removed ids for every ε."""
    workdir, cfg, _ = ref
    p = os.path.join(workdir, "pipeline")
    x = np.load(os.path.join(p, "embed", "embeddings.npy")).astype(np.float64)
    labels = np.load(os.path.join(p, "cluster", "labels.npy"))
    sims = np.load(os.path.join(p, "cluster", "sims.npy"))
    out = _outputs(workdir, cfg.eps)
    for k_e, e in enumerate(cfg.eps):
        removed, near = set(), set()
        for c in range(cfg.n_clusters):
            pos = np.flatnonzero(labels == c)
            pos = pos[np.lexsort((pos, sims[pos]))]  # farthest from the centroid first
            s = x[pos] @ x[pos].T
            m = np.where(np.triu(np.ones_like(s, bool), 1), s, -np.inf).max(axis=0)
            removed |= set(pos[m > 1 - e].tolist())
            near |= set(pos[np.abs(m - (1 - e)) < 1e-5].tolist())
        got = set(out[(e, "removed_ids")].tolist())
        assert got - near == removed - near, (e, k_e)


def test_exact_all_pairs_truth_on_planted_data(ref):
    """Exact all-pairs: every removal at ε has a true all-pairs neighbour above 1 − ε; items with a
    duplicate only in another cluster are never removed; every duplicate group keeps a member."""
    workdir, cfg, r = ref
    p = os.path.join(workdir, "pipeline")
    x = np.load(os.path.join(p, "embed", "embeddings.npy")).astype(np.float64)
    labels = np.load(os.path.join(p, "cluster", "labels.npy"))
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    e = 0.1
    rem = np.load(os.path.join(workdir, "eps=0.1", "removed_ids.npy"))
    assert (s[rem].max(axis=1) > 1 - e).all()
    has_dup = s.max(axis=1) > 1 - e
    has_dup_same = np.array([(s[i, labels == labels[i]] > 1 - e).any() for i in range(x.shape[0])])
    missed = has_dup & ~has_dup_same
    kept = np.load(os.path.join(workdir, "eps=0.1", "kept_ids.npy"))
    assert not missed[rem].any() and has_dup_same[rem].all()
    # every connected group of within-cluster duplicates keeps at least one member (none vanishes)
    from scipy.sparse.csgraph import connected_components

    adj = (s > 1 - e) & (labels[:, None] == labels[None, :])
    n_comp, comp = connected_components(adj, directed=False)
    assert np.unique(comp[kept]).size == n_comp
    # and the planted truth: recall is limited only by pairs split across clusters
    assert missed.sum() <= (1 - r["pairs_in_same_cluster"]) * has_dup.sum() * 4 + 1


def test_resume_after_kill_mid_dedup_is_identical(ref, tmp_path, monkeypatch):
    workdir_ref, cfg, r_ref = ref
    workdir = str(tmp_path / "killed")
    real = pipeline._write_unit
    calls = []

    def dying(path, arrays):
        if len(calls) == 1:
            raise KeyboardInterrupt("killed mid-dedup")
        calls.append(path)
        real(path, arrays)

    monkeypatch.setattr(pipeline, "_write_unit", dying)
    with pytest.raises(KeyboardInterrupt):
        app.execute(experiment, _cfg(), workdir)
    units = glob.glob(os.path.join(workdir, "pipeline", "dedup", "units", "*"))
    assert len(units) == 1 and not os.path.exists(os.path.join(workdir, "results.json"))
    monkeypatch.setattr(pipeline, "_write_unit", real)
    r = app.execute(experiment, _cfg(), workdir)
    # only the missing units were redone
    assert r["dedup_units"]["units_run"] == r["dedup_units"]["unit_files"] - 1 >= 1
    _assert_same(_outputs(workdir, cfg.eps), _outputs(workdir_ref, cfg.eps))
    assert r["eps"] == r_ref["eps"]
    assert not glob.glob(os.path.join(workdir, "pipeline", "**", "*.tmp"), recursive=True)


def test_resume_after_kill_mid_kmeans_is_identical(ref, tmp_path, monkeypatch):
    workdir_ref, cfg, _ = ref
    workdir = str(tmp_path / "killed")
    from dedup import kmeans

    real = kmeans.lloyd_iteration
    calls = []

    def dying(*a, **k):
        if len(calls) == 3:
            raise KeyboardInterrupt("killed mid-k-means")
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(kmeans, "lloyd_iteration", dying)
    with pytest.raises(KeyboardInterrupt):
        app.execute(experiment, _cfg(), workdir)
    monkeypatch.setattr(kmeans, "lloyd_iteration", real)
    app.execute(experiment, _cfg(), workdir)
    c1 = np.load(os.path.join(workdir, "pipeline", "cluster", "centroids.npy"))
    c0 = np.load(os.path.join(workdir_ref, "pipeline", "cluster", "centroids.npy"))
    np.testing.assert_array_equal(c1, c0)
    _assert_same(_outputs(workdir, cfg.eps), _outputs(workdir_ref, cfg.eps))


def test_job_array_shards_merge_to_the_same_result(ref, tmp_path):
    workdir_ref, cfg, _ = ref
    shared = str(tmp_path / "pipeline")
    app.execute(experiment, _cfg(pipeline_dir=shared, stages="embed,cluster"), str(tmp_path / "prep"))
    app.execute(experiment, _cfg(pipeline_dir=shared, stages="dedup", shard=2, num_shards=3), str(tmp_path / "s2"))
    with pytest.raises(app.UserError, match="clusters 0, 1, .* have no output"):
        app.execute(experiment, _cfg(pipeline_dir=shared, stages="select"), str(tmp_path / "early"))
    for s in (0, 1):
        r = app.execute(
            experiment, _cfg(pipeline_dir=shared, stages="dedup", shard=s, num_shards=3), str(tmp_path / f"s{s}")
        )
        assert r["dedup_units"]["units_assigned"] >= 1
    r = app.execute(experiment, _cfg(pipeline_dir=shared), str(tmp_path / "final"))
    assert r["dedup_units"]["units_run"] == 0  # all done by the shards; select merges
    _assert_same(_outputs(str(tmp_path / "final"), cfg.eps), _outputs(workdir_ref, cfg.eps))


def test_cluster_ordered_copy_and_gathers_give_the_same_result(ref, tmp_path):
    """reorder=always reads each cluster from the copy in cluster order; the smoke file is small, so the
    reference (auto) gathered its rows from the embeddings: the outputs are the same, bit for bit."""
    workdir_ref, cfg, _ = ref
    assert not glob.glob(os.path.join(cfg.pipeline_dir or workdir_ref, "**", "ordered.npy"), recursive=True)
    shared = str(tmp_path / "pipeline")
    app.execute(experiment, _cfg(pipeline_dir=shared, reorder="always"), str(tmp_path / "always"))
    assert os.path.exists(os.path.join(shared, "cluster", "ordered.npy"))
    _assert_same(_outputs(str(tmp_path / "always"), cfg.eps), _outputs(workdir_ref, cfg.eps))


def test_reorder_auto_copies_only_what_memory_cannot_hold():
    assert not pipeline.wants_ordered("auto", 1_500_000_000, available=23_000_000_000)  # 10^6 x 384 here
    assert pipeline.wants_ordered("auto", 15_000_000_000, available=23_000_000_000)  # 10^7 x 384 here
    assert pipeline.wants_ordered("always", 1, available=10**12)
    assert not pipeline.wants_ordered("never", 10**12, available=1)
    assert pipeline.available_memory_bytes() > 0


def test_changed_settings_are_refused(ref, tmp_path):
    shared = str(tmp_path / "pipeline")
    app.execute(experiment, _cfg(pipeline_dir=shared, stages="embed"), str(tmp_path / "a"))
    with pytest.raises(app.UserError, match="different settings"):
        app.execute(experiment, _cfg(pipeline_dir=shared, stages="embed", seed=1), str(tmp_path / "b"))


def test_greedy_random_keep_partition(tmp_path):
    cfg = _cfg(rule="greedy", keep="random")
    r = app.execute(experiment, cfg, str(tmp_path / "g"))
    for e in cfg.eps:
        o = _outputs(str(tmp_path / "g"), [e])
        assert np.array_equal(np.sort(np.concatenate([o[(e, "kept_ids")], o[(e, "removed_ids")]])), np.arange(2000))
        # greedy: nothing is removed as a duplicate of a removed item
        assert not np.isin(o[(e, "duplicate_of")], o[(e, "removed_ids")]).any()
    assert r["precision"] == 1.0


def test_user_embeddings_with_bad_rows(ref, tmp_path, caplog):
    workdir_ref, _, _ = ref
    x = np.load(os.path.join(workdir_ref, "pipeline", "embed", "embeddings.npy"))[:500] * 3.0
    x = x.astype(np.float64)
    x[7, 3] = np.nan
    x[11] = 0.0
    x[40, 0] = np.inf
    f = str(tmp_path / "emb.npy")
    np.save(f, x)
    wd = str(tmp_path / "user")
    r = app.execute(experiment, _cfg(embeddings=f, n_clusters=4), wd)
    assert r["n_items"] == 497 and r["n_total"] == 500
    assert r["data_source"] == f"embeddings:{os.path.abspath(f)}"
    assert r["excluded_ids"] == {"non-finite": [7, 40], "zero": [11]}
    assert "precision" not in r
    warn = [m for m in caplog.messages if "excluded" in m]
    assert any("7, 40" in m for m in warn) and any("ids 11" in m for m in warn)
    valid = np.setdiff1d(np.arange(500), [7, 11, 40])
    for e in (0.02, 0.1):
        o = _outputs(wd, [e])
        both = np.sort(np.concatenate([o[(e, "kept_ids")], o[(e, "removed_ids")]]))
        assert np.array_equal(both, valid)
    emb = np.load(os.path.join(wd, "pipeline", "embed", "embeddings.npy"))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # L2-normalised by us


@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros(10, np.float32), "expected a 2-D array"),
        (np.zeros((2, 3, 4), np.float32), "expected a 2-D array"),
        (np.zeros((0, 8), np.float32), "is empty"),
        (np.ones((5, 8), np.int64), "expected float"),
        (np.full((5, 8), np.nan, np.float32), "every row"),
    ],
)
def test_bad_embedding_files(tmp_path, array, match):
    f = str(tmp_path / "bad.npy")
    np.save(f, array)
    wd = str(tmp_path / "wd")
    with pytest.raises(app.UserError, match=match) as err:
        app.execute(experiment, _cfg(embeddings=f, n_clusters=2), wd)
    assert "\n" not in str(err.value) and "bad.npy" in str(err.value)
    assert not os.path.exists(wd)  # nothing half-written


def test_zero_byte_file(tmp_path):
    f = tmp_path / "empty.npy"
    f.write_bytes(b"")
    with pytest.raises(app.UserError, match="cannot read"):
        app.execute(experiment, _cfg(embeddings=str(f)), str(tmp_path / "wd"))


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("eps", (0.1, 2.0), "eps"),
        ("eps", (0.0,), "eps"),
        ("eps", (-0.1, 0.5), "eps"),
        ("keep", "middle", "keep"),
        ("rule", "transitive", "rule"),
        ("shard", 3, "shard"),
        ("stages", "embed,sort", "stages"),
        ("eval_eps", 0.5, "eval_eps"),
        ("reorder", "sometimes", "reorder"),
    ],
)
def test_bad_config_values(tmp_path, key, value, match):
    with pytest.raises(app.ConfigError, match=match):
        app.execute(experiment, _cfg(**{key: value}), str(tmp_path / "wd"))
    assert not os.path.exists(tmp_path / "wd")


def test_cli_bad_eps_and_bad_file_exit_2_one_line(tmp_path):
    f = tmp_path / "v.npy"
    np.save(f, np.zeros(7, np.float32))
    for args, word in (
        (["--config.eps=(0.1,2.5)"], "eps"),
        ([f"--config.embeddings={f}"], "v.npy"),
    ):
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "dedup.main",
                "--config=dedup/configs/default.py:smoke",
                f"--workdir={tmp_path / 'cli'}",
                *args,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )
        assert p.returncode == 2, p.stderr[-500:]
        last = p.stderr.strip().splitlines()[-1]
        assert word in last and ("error" in last)
        assert not os.path.exists(tmp_path / "cli")


def test_core_modules_do_not_import_torch():
    code = (
        "import sys; import dedup.experiment, dedup.pipeline, dedup.text; "
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_bucket_batches_cover_padding():
    """Clusters smaller than a batch and empty padding slots do not leak into results."""
    rng = np.random.default_rng(0)
    e = rng.normal(size=(5, 4)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    (o,) = semdedup.dedup_clusters([e], (1.9,), "paper")
    assert o["removed"][:, 0].tolist() == [False, True, True, True, True]  # 1 − 1.9 < any cos


def test_select_refuses_units_made_with_other_settings(ref, tmp_path):
    shared = str(tmp_path / "pipeline")
    app.execute(experiment, _cfg(pipeline_dir=shared, stages="embed,cluster,dedup"), str(tmp_path / "a"))
    with pytest.raises(app.UserError, match="eps"):
        app.execute(experiment, _cfg(pipeline_dir=shared, stages="select", eps=(0.1, 0.2)), str(tmp_path / "b"))


_KILL = """
import os, signal, sys
from dedup import pipeline
real = pipeline._write_unit
n = [0]
def dying(path, arrays):
    if n[0] == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # a hard kill: no cleanup, no finally
    n[0] += 1
    real(path, arrays)
pipeline._write_unit = dying
from common import app
from dedup import experiment
sys.argv = ["dedup", "--config=dedup/configs/default.py:smoke", "--workdir=" + sys.argv[1]]
app.run(experiment)
"""


def test_sigkill_mid_dedup_then_cli_resume_is_identical(ref, tmp_path):
    workdir_ref, cfg, _ = ref
    wd = str(tmp_path / "k")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    p = subprocess.run(
        [sys.executable, "-c", _KILL, wd], cwd=ROOT, env=env, timeout=300, capture_output=True, text=True
    )
    assert p.returncode == -9
    assert len(glob.glob(os.path.join(wd, "pipeline", "dedup", "units", "*.npz"))) == 1
    p = subprocess.run(
        [sys.executable, "-m", "dedup.main", "--config=dedup/configs/default.py:smoke", f"--workdir={wd}"],
        cwd=ROOT,
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr[-800:]
    _assert_same(_outputs(wd, cfg.eps), _outputs(workdir_ref, cfg.eps))


def test_embed_cache_is_keyed_on_content(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    a, b, c = (str(tmp_path / f) for f in ("a.npy", "b.npy", "c.npy"))
    np.save(a, x)
    np.save(b, x)  # same content, another path and mtime
    x[3, 0] += 1.0
    np.save(c, x)
    shared = str(tmp_path / "pipeline")
    kw = dict(pipeline_dir=shared, stages="embed", n_clusters=2)
    app.execute(experiment, _cfg(embeddings=a, **kw), str(tmp_path / "ra"))
    done = os.path.getmtime(os.path.join(shared, "embed", "done.json"))
    app.execute(experiment, _cfg(embeddings=b, **kw), str(tmp_path / "rb"))  # reused, not redone
    assert os.path.getmtime(os.path.join(shared, "embed", "done.json")) == done
    with pytest.raises(app.UserError, match="different settings"):
        app.execute(experiment, _cfg(embeddings=c, **kw), str(tmp_path / "rc"))


def test_duplicate_of_names_ids_not_row_positions(tmp_path):
    """A NaN row 0 is excluded first, so every id (input row) is one more than its row in the stage's embeddings:
    each removed id's `duplicate_of` must be the id whose input row has the recorded cosine with it (computed here in
    float64 from the input file), and the pair must be one of the planted copies."""
    rng = np.random.default_rng(5)
    n, d = 300, 16
    x = rng.normal(size=(n, d))
    src = np.arange(1, 61)
    x[240:] = x[src] + 0.05 * rng.normal(size=(60, d))  # rows 240..299 copy rows 1..60
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[0] = np.nan
    f = str(tmp_path / "emb.npy")
    np.save(f, x)
    wd = str(tmp_path / "run")
    r = app.execute(experiment, _cfg(embeddings=f, n_clusters=3, eps=(0.05, 0.2)), wd)
    assert r["excluded_ids"] == {"non-finite": [0]}
    twin = {**{int(j): int(s) for j, s in zip(range(240, 300), src, strict=True)}}
    twin |= {s: j for j, s in twin.items()}
    for e in (0.05, 0.2):
        o = _outputs(wd, [e])
        rem, dup, sim = o[(e, "removed_ids")], o[(e, "duplicate_of")], o[(e, "similarity")]
        assert rem.size >= 40  # most planted copies share a cluster with their original
        cos = np.einsum("ij,ij->i", x[rem], x[dup])
        np.testing.assert_allclose(sim, cos, atol=1e-5)
        assert all(twin.get(int(a)) == int(b) for a, b in zip(rem, dup, strict=True))


def test_units_are_split_over_shards_by_work():
    """Longest-processing-time split: costs 100² + 64·100 etc.; each shard gets the unit that keeps loads closest,
    every unit exactly once, and the same split every call."""
    sizes = np.array([100, 90, 50, 40, 30, 10, 10, 5])
    units = [np.array([c]) for c in range(8)]
    owner = pipeline.split_units(units, sizes, 3)
    cost = np.array([pipeline.unit_cost(u, sizes) for u in units])
    assert cost[0] == 100 * 100 + 64 * 100
    # by hand, costs n(n + 64) = 16400, 13860, 5700, 4160, 2820, 740, 740, 345 placed in turn on the lightest shard:
    # s0 16400 | s1 13860 | s2 5700 -> 9860 -> 12680 -> 13420 -> 14160 | then 345 on s1 (13860 < 14160)
    assert owner.tolist() == [0, 1, 2, 2, 2, 2, 2, 1]
    load = np.bincount(owner, weights=cost, minlength=3)
    assert load.max() - load.min() <= cost.max()  # no shard is ahead by more than one unit
    assert load.max() <= 4 / 3 * max(cost.sum() / 3, cost.max()) + 1e-9
    np.testing.assert_array_equal(owner, pipeline.split_units(units, sizes, 3))
    assert (pipeline.split_units(units, sizes, 1) == 0).all()
