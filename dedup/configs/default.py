"""SemDeDup on a synthetic corpus with planted duplicates (CPU scale).

    python -m dedup.main --config=dedup/configs/default.py --workdir=runs/dedup/default

300,000 items x 384 dims, 548 clusters (√N). Expected: recall and precision of the planted duplicates
≥ 0.99 at ε = 0.1 (kept fraction 0.80 from ε = 0.1 on); measured 1 min 35 s wall on 2 CPU cores shared with
other jobs (load ≈ 11), peak RSS 1.4 GB.

Variants (`--config=dedup/configs/default.py:<name>`):
  smoke   2,000 items x 32 dims, 12 clusters, every stage in seconds (tests, notebooks).
  text    the shipped sentence set embedded with the packaged all-MiniLM-L6-v2 ([dedup] extra);
          logs the semantic duplicates found. About 30-40 s (model load dominates).

Your data: --config.embeddings=FILE.npy (2-D float, any N, d) or --config.texts=FILE.txt (one
document a line). Job array: see dedup/README.md ("Scale-out").
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False
    # inputs: the synthetic corpus unless one of these is set
    c.embeddings = ""  # path to a .npy (N, d) float array
    c.texts = ""  # path to a .txt, one document a line; "builtin" = the shipped sentence set
    c.text_batch_size = 32
    # where the stage outputs live ("" = <workdir>/pipeline); shared by the processes of a job array
    c.pipeline_dir = ""
    c.stages = "all"  # or a comma list of embed,cluster,dedup,select

    c.synthetic = ml_collections.ConfigDict()
    c.synthetic.n_items = 300_000
    c.synthetic.dim = 384
    c.synthetic.n_topics = 0  # 0 = 2·round(√N): about two topics per k-means cluster
    c.synthetic.noise_rank = 0  # 0 = isotropic within-topic noise; r > 0 = mostly in an r-dim subspace
    # a in x = √a·topic + √(1-a)·noise: unrelated items of one topic have cos ≈ a
    c.synthetic.topic_strength = 0.75
    c.synthetic.dup_fraction = 0.2  # fraction of items that are planted copies
    c.synthetic.max_group_size = 4
    c.synthetic.sim_min = 0.96  # cosine of a copy to its original, uniform in [sim_min, sim_max]
    c.synthetic.sim_max = 0.999

    c.n_clusters = 0  # 0 = round(√N)
    c.kmeans = ml_collections.ConfigDict()
    c.kmeans.init = "kmeans++"  # or "random"
    c.kmeans.iterations = 20  # at most
    c.kmeans.tol = 1e-4  # stop when a step raises the mean similarity by less (relative); 0 = never
    # fit on this many rows drawn uniformly (then one assignment pass over all); 0 = stream over all
    c.kmeans.sample_size = 100_000
    # k-means++ is memory-bound (k passes over its rows): initialise from this many fit rows; 0 = all
    c.kmeans.init_points = 20_000
    c.kmeans.batch_size = 4096

    c.eps = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
    c.eval_eps = 0.1  # the ε at which precision/recall are reported
    c.keep = "hard"  # hard | easy | random
    c.rule = "paper"  # paper (non-transitive, as released) | greedy (compare with kept items only)
    # exact ties in the distance to the centroid: "released" (hard keeps the lowest row, easy the highest,
    # as the released code) | "lowest_id" (both keep the lowest id)
    c.tie_break = "released"
    c.id_rank = ""  # .npy int64 per input row: rank of the row's id (for tie_break=lowest_id; set by the CLI)
    c.text_field = "text"  # the text field of a .jsonl texts file
    c.figures = True  # write <workdir>/figures/*.png
    c.clusters_per_file = 64
    # the dedup stage reads each cluster's rows from a copy of the embeddings in cluster order ("always"), by
    # gathering them from the embeddings ("never"), or "auto": the copy only when the embeddings exceed half the
    # memory available (a gather from pages no longer cached is slow; writing the copy costs one pass)
    c.reorder = "auto"
    c.shard = 0
    c.num_shards = 1

    if arg == "smoke":
        c.synthetic.n_items = 2000
        c.synthetic.dim = 32
        c.synthetic.n_topics = 40
        c.synthetic.topic_strength = 0.5
        c.n_clusters = 12
        c.kmeans.iterations = 5
        c.kmeans.sample_size = 0
        c.kmeans.init_points = 0
        c.kmeans.batch_size = 512
        c.clusters_per_file = 4
        c.eps = (0.02, 0.05, 0.1, 0.3)
    elif arg == "text":
        c.texts = "builtin"
        c.n_clusters = 6
        c.kmeans.sample_size = 0
        c.kmeans.init_points = 0
        c.kmeans.batch_size = 256
        c.eps = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
        c.eval_eps = 0.25
    elif arg not in (None, ""):
        raise ValueError(f"unknown variant {arg!r}; use smoke or text")
    return c
