"""Mutants of dedup: the per-cluster rule (threshold, triangle, keep order), the ids it reports, spherical k-means
(assignment, centroid update, k-means++), the reordered rows, and the split of the work over processes."""

from tests.mutants.spec import Mutant

T = "tests/dedup/"
EXACT = T + "test_semdedup.py::test_pair_at_exactly_one_minus_eps_is_kept_strict_threshold"
IDS = T + "test_pipeline.py::test_duplicate_of_names_ids_not_row_positions"

MUTANTS = [
    Mutant(
        file="dedup/semdedup.py",
        old="removed = (colmax[:, None, :] > thr_e[None, :, None]) & valid_bxn[:, None, :]",
        new="removed = (colmax[:, None, :] >= thr_e[None, :, None]) & valid_bxn[:, None, :]",
        tests=(EXACT,),
        why="compiled rule: >= for > (a pair at exactly 1 - eps is removed)",
    ),
    Mutant(
        file="dedup/semdedup.py",
        old="        rem = colmax[:, None] > thr[None, :]\n        par = np.where(rem, colarg[:, None], -1)",
        new="        rem = colmax[:, None] >= thr[None, :]\n        par = np.where(rem, colarg[:, None], -1)",
        tests=(EXACT,),
        why="host rule: >= for > (a pair at exactly 1 - eps is removed)",
    ),
    Mutant(
        file="dedup/pipeline.py",
        old='par.append(np.where(r["partner"] >= 0, cid[np.maximum(r["partner"], 0)], -1))',
        new='par.append(np.where(r["partner"] >= 0, p[np.maximum(r["partner"], 0)], -1))',
        tests=(IDS,),
        why="duplicate_of reported as the row position of the partner instead of its id",
    ),
    Mutant(
        file="dedup/semdedup.py",
        old="m = _TRIU_CACHE[n] = np.triu(np.ones((n, n), bool))",
        new="m = _TRIU_CACHE[n] = np.triu(np.ones((n, n), bool), 1)",
        tests=(T + "test_semdedup.py::test_rule_matches_brute_force",),
        why="host rule: the diagonal left in the triangle (every item is its own duplicate)",
    ),
    Mutant(
        file="dedup/semdedup.py",
        old="return colmax, first_copy(e_nxd)[arg].astype(np.int32), nn",
        new="return colmax, arg.astype(np.int32), nn",
        tests=(T + "test_ties.py::test_ties_in_a_cluster_large_enough_for_the_split_product",),
        why="host rule: the partner not mapped to the earliest exact copy (a product's last-bit noise decides)",
    ),
    Mutant(
        file="dedup/pipeline.py",
        old='hard = pos[np.argsort(-dist, kind="stable")]',
        new='hard = pos[np.argsort(dist, kind="stable")]',
        tests=(T + "test_semdedup.py::test_keep_orders", T + "test_ties.py"),
        why="keep=hard orders nearest-first (the sign of the distance key flipped)",
    ),
    Mutant(
        file="dedup/kmeans.py",
        old="    lab = s.argmax(axis=1)\n",
        new="    lab = s.argmin(axis=1)\n",
        tests=(T + "test_kmeans.py::test_assign_streams_into_output_arrays",),
        why="assignment to the least similar centroid (argmin for argmax)",
    ),
    Mutant(
        file="dedup/kmeans.py",
        old="sums / np.maximum(norms, 1e-30)",
        new="sums / np.maximum(counts[:, None], 1)",
        tests=(T + "test_kmeans.py::test_lloyd_iteration_matches_numpy_with_padded_batches",),
        why="Lloyd step: the Euclidean mean instead of the normalised sum (centroids leave the sphere)",
    ),
    Mutant(
        file="dedup/kmeans.py",
        old="np.minimum(d2, np.maximum(2.0 - 2.0 * sim.max(axis=1), 0.0), out=d2)",
        new="np.maximum(d2, np.maximum(2.0 - 2.0 * sim.max(axis=1), 0.0), out=d2)",
        tests=(T + "test_kmeans.py::test_kmeanspp_covers_separated_blobs",),
        why="k-means++: the distance to the farthest chosen centre instead of the nearest",
    ),
    Mutant(
        file="dedup/pipeline.py",
        old="f.write(np.ascontiguousarray(x[order[a : a + chunk]], np.float32).data)",
        new="f.write(np.ascontiguousarray(x[a : a + chunk], np.float32).data)",
        tests=(T + "test_pipeline.py::test_matches_exact_per_cluster_reference",),
        why="the cluster-ordered copy written in input order (rows read for the wrong clusters)",
    ),
    Mutant(
        file="dedup/pipeline.py",
        old="s = int(np.argmin(load))",
        new="s = int(np.argmax(load))",
        tests=(T + "test_pipeline.py::test_units_are_split_over_shards_by_work",),
        why="work split: each unit goes to the busiest shard",
    ),
    Mutant(
        file="dedup/experiment.py",
        old="shard, shards = (proc, nproc) if nproc > 1",
        new="shard, shards = (0, nproc) if nproc > 1",
        tests=(T + "test_multiprocess.py",),
        why="every process of a jax.distributed run takes process 0's share of the dedup units",
    ),
]
