"""icl's distance figure with the dashed T_Pretrain curves draws without a matplotlib warning."""

import warnings

import numpy as np

from icl import figures


def test_distance_figure_with_pretrain_curves_warns_nothing(tmp_path):
    ms = [2, 8, "inf"]
    curve = {"dist_ridge": [1.0, 0.5, 0.4], "dist_ridge_se": [0.1, 0.1, 0.1]}
    results = {
        "M": ms,
        "batch_sizes": [16, 32],
        **curve,
        "dist_dmmse": [0.2, 0.6, 0.9],
        "dist_dmmse_se": [0.05, 0.05, 0.05],
        "dist_ridge_pretrain": [0.9, 0.5, 0.4],
        "dist_ridge_pretrain_se": [0.1, 0.1, 0.1],
        "dist_dmmse_pretrain": [0.1, 0.5, 0.8],
        "dist_dmmse_pretrain_se": [0.05, 0.05, 0.05],
        "by_batch_size": {"16": curve, "32": curve},
        "threshold_M": {"batch_crossing": {"log2_M": 2.5}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = figures.distance_vs_m(results, str(tmp_path / "d.png"))
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and np.ptp(image) > 0  # something was drawn
