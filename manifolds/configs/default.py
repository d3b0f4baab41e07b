"""manifolds at CPU scale: classifiers on scikit-learn digits (D = 64) and every d* measurement of the paper.

    python -m manifolds.main --config=manifolds/configs/default.py
    python -m manifolds.main --config=manifolds/configs/default.py:smoke   # seconds of compute; tests

default: one vmapped group of ReLU MLPs 64-256-10 (Adam lr 1e-3, batch 64, 3000 steps, parameters kept every
250 steps): 8 seeds (the ensembles), 2 random-label runs (lr 3e-3), training sets of 100/300/700 images; MLPs of
width 16/64/1024 and a CNN (16-32 channels, global average pooling), one seed each. Estimator: the released Adam
budget (lr 5e-2, <= 300 steps, early stop at probability 0.99), Gaussian unit-norm bases, d in 1..64 (14 values) x
8 repeats x 4 start points per estimate, convergence rerun of 2 repeats at lr 0.2 / 1200 steps. d* per class (all
10), six 2/3/4-class boundaries, and (mean over classes 0, 4, 8) over training, random labels, width, training-set
size, ensembles of 1/2/4/8, the CNN; Gaussian-noise (σ = 0.3) accuracy of every model against its effective
dimension; known-answer regions (halfspace, codimension 1-3) with both budgets.
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The CPU-scale config; ``arg`` picks a variant: None/'default' or 'smoke'."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False

    c.data = ml_collections.ConfigDict()
    c.data.name = "digits"  # or a tfds set prepared on disk: "mnist", "fashion_mnist", "cifar10"
    c.data.allow_fallback = True

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 3000
    c.train.chunk_steps = 250  # one compiled call per chunk = one checkpoint = one parameter snapshot
    c.train.batch_size = 64
    c.train.lr = 1e-3
    c.train.num_seeds = 8  # ensemble members (true labels, the full training set)
    c.train.random_label_seeds = 2
    c.train.random_label_lr = 3e-3
    c.train.train_sizes = (100, 300, 700)  # smaller training sets (seed 0), in the same vmapped group

    c.mlp = ml_collections.ConfigDict()
    c.mlp.width = 256  # the main model's hidden width
    c.mlp.widths = (16, 64, 256, 1024)  # d* by width (the others: one seed each, their own groups)

    c.cnn = ml_collections.ConfigDict()
    c.cnn.enabled = True
    c.cnn.channels = (16, 32)

    c.estimator = ml_collections.ConfigDict()
    c.estimator.dims = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 48, 64)
    c.estimator.repeats = 8
    c.estimator.num_starts = 4
    c.estimator.lr = 5e-2  # the released budget
    c.estimator.steps = 300
    c.estimator.check_lr = 0.2  # the convergence rerun
    c.estimator.check_steps = 1200
    c.estimator.check_repeats = 2
    c.estimator.tolerance = 0.15
    c.estimator.rate_tolerance = 0.15
    c.estimator.basis = "gaussian"
    c.estimator.bounds = None  # e.g. (0.0, 1.0) to keep pixels in range
    c.estimator.fit_to = "probability"
    c.estimator.num_boot = 200
    c.estimator.max_per_call = 4096
    c.estimator.filter_starts = True  # start points: test images whose label and prediction are not the target

    c.classes = tuple(range(10))  # d* per class
    c.boundary_sets = ((0, 1), (3, 8), (0, 1, 2), (3, 5, 8), (0, 1, 2, 3), (3, 5, 8, 9))
    c.variable_classes = (0, 4, 8)  # d* averaged over these for the other variables

    c.over_training = ml_collections.ConfigDict()
    c.over_training.chunks = (1, 2, 4, 12)  # after 250, 500, 1000, 3000 steps

    c.ensemble = ml_collections.ConfigDict()
    c.ensemble.members = (1, 2, 4, 8)

    c.robustness = ml_collections.ConfigDict()
    c.robustness.sigma = 0.3

    c.known_answer = ml_collections.ConfigDict()
    c.known_answer.halfspace_distance = 3.0
    c.known_answer.codims = (1, 2, 3)
    c.known_answer.repeats = 8
    c.known_answer.num_starts = 4

    if arg in (None, "", "default"):
        return c
    if arg == "smoke":
        c.train.num_steps = 100
        c.train.chunk_steps = 50
        c.train.num_seeds = 2
        c.train.random_label_seeds = 1
        c.train.train_sizes = (300,)
        c.mlp.width = 32
        c.mlp.widths = (16, 32)
        c.cnn.channels = (4,)
        c.estimator.dims = (1, 2, 4, 8)
        c.estimator.repeats = 2
        c.estimator.num_starts = 2
        c.estimator.steps = 150
        c.estimator.check_steps = 300
        c.estimator.check_repeats = 1
        c.estimator.num_boot = 20
        c.classes = (0, 1)
        c.boundary_sets = ((0, 1), (0, 1, 2))
        c.variable_classes = (0,)
        c.over_training.chunks = (1, 2)
        c.ensemble.members = (1, 2)
        c.known_answer.codims = (2,)
        c.known_answer.repeats = 2
        c.known_answer.num_starts = 2
        return c
    raise ValueError(f"unknown variant {arg!r}; use 'smoke' or nothing")
