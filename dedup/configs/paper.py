"""SemDeDup at the paper's settings (LAION-440M: 50,000 clusters, 100 k-means iterations, the
released ε values).

    python -m dedup.main --config=dedup/configs/paper.py --workdir=runs/dedup/paper \
        --config.embeddings=/data/laion_clip_b16.npy

For an accelerator host. Without --config.embeddings it runs on a synthetic corpus of 10⁷ items x
512 dims (the width of OpenCLIP ViT-B/16 embeddings; a 20 GB memmap), about 200 items per cluster.
Expected: kept fraction per ε as in the paper's table for LAION (0.00095 → 79.6 %, 0.03 → 72.1 %,
0.07 → 63.4 %, 0.124 → 49.9 %,
0.205 → 30.5 %, 0.26 → 19.8 %); on the synthetic corpus, recall and precision of planted duplicates
≥ 0.99.
Not run here (2 CPU cores); `benchmarks/dedup_scale.py` measures up to 10⁶ items on CPU.
"""

from dedup.configs import default


def get_config(arg: str | None = None):
    c = default.get_config(arg)
    c.synthetic.n_items = 10_000_000
    c.synthetic.dim = 512
    c.synthetic.n_topics = 0
    c.n_clusters = 50_000
    c.kmeans.iterations = 100
    c.kmeans.tol = 0.0  # the released code runs all 100
    c.kmeans.sample_size = 0
    c.kmeans.init_points = 1_000_000
    c.kmeans.batch_size = 65536
    c.eps = (0.00095, 0.03, 0.07, 0.1, 0.124, 0.205, 0.26)
    c.eval_eps = 0.1
    c.clusters_per_file = 500
    return c
