"""manifolds at CPU scale: classifiers on scikit-learn digits (D = 64) and every d* measurement of the paper.

    python -m manifolds.main --config=manifolds/configs/default.py
    python -m manifolds.main --config=manifolds/configs/default.py:released   # the released notebook's protocol
    python -m manifolds.main --config=manifolds/configs/default.py:smoke      # seconds of compute; tests

default: ReLU MLPs 64-256-10 (Adam lr 1e-3, batch 64, 3000 steps) in one vmapped group: 3 seeds on true labels
(parameters kept at steps 0, 5, 11, 22, 90: d* over training from the initialisation), 3 on random labels, 3 per
smaller training set (100/300/700 images, each seed its own subset, trained for the same number of epochs as the
full set); 3 seeds each of widths 16/64/1024 (one masked group); an ensemble pool of 12 MLPs, each on its own random
half of the training set (3 disjoint ensembles of 1, 2 and 4 members); one CNN (16-32 channels). Estimator: the
search stays on the data: in the pixel box [0, 1] and within one median test-image norm of its start point (the
reach), Adam lr 0.1 for at most 300 steps, Gaussian unit-norm bases, d in 1..64 (14 values) x 8 repeats x 4 start
points (test images of other classes), the convergence check reruns 2 repeats with 4x the steps at the same rate
and reach. Every trend is the mean over classes 0, 4, 8 per seed, with the standard
error over the 3 seeds.
"""

from __future__ import annotations

import ml_collections


def _base() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False

    c.data = ml_collections.ConfigDict()
    c.data.name = "digits"  # or a tfds set prepared on disk: "mnist", "fashion_mnist", "cifar10"
    c.data.allow_fallback = True
    c.data.subtract_mean = False  # released: subtract the training set's mean image
    c.data.random_test_labels = False  # released: random-label runs are tested on random test labels too

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 3000
    c.train.chunk_steps = 500  # one compiled call per chunk = one checkpoint
    c.train.batch_size = 64
    c.train.lr = 1e-3
    c.train.random_label_lr = 3e-3
    c.train.num_seeds = 3  # seeds per condition: every trend's error bar is over these
    c.train.train_sizes = (100, 300, 700)  # smaller training sets, each seed its own random subset
    c.train.equal_epochs = True  # smaller sets train for the full set's number of epochs, not its steps
    c.train.weight_decay = 0.0  # released: 1e-4 on convolution kernels

    c.over_training = ml_collections.ConfigDict()
    c.over_training.steps = (0, 5, 11, 22, 90)  # and the final model; 0 is the initialisation (22 steps = 1 epoch)

    c.mlp = ml_collections.ConfigDict()
    c.mlp.width = 256  # the main model's hidden width
    c.mlp.widths = (16, 64, 256, 1024)

    c.ensemble = ml_collections.ConfigDict()
    c.ensemble.members = (1, 2, 4)  # num_seeds disjoint ensembles of each size from a pool of num_seeds x max
    c.ensemble.train_fraction = 0.5  # each pool member trains on its own random subset of this fraction
    c.ensemble.mode = "product"  # or "mixture" (averaged probabilities, the released scoring)

    c.cnn = ml_collections.ConfigDict()
    c.cnn.enabled = True
    c.cnn.channels = (16, 32)

    c.resnet = ml_collections.ConfigDict()
    c.resnet.models = ()  # (label, blocks per stage, base width): ("resnet20", 3, 16), ("wrn16_4", 2, 64)

    c.estimator = ml_collections.ConfigDict()
    c.estimator.dims = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 48, 64)
    c.estimator.repeats = 8
    c.estimator.num_starts = 4
    c.estimator.starts = "test"  # test images of other classes, shared by every (d, repeat); or "train_fresh"
    c.estimator.lr = 0.1
    c.estimator.steps = 300
    c.estimator.reach = 1.0  # the search stays within this many median test-image norms of its start; 0: unlimited
    c.estimator.optimizer = "ours"  # bias-corrected Adam, stop at score 0.99; "released": the notebook's Adam
    c.estimator.check_factor = 4  # the convergence check: this many times the steps, same rate
    c.estimator.check_repeats = 2
    c.estimator.tolerance = 0.0  # 0: converged when d* moves by at most its bootstrap error; > 0: relative
    c.estimator.basis = "gaussian"
    c.estimator.bounds = (0.0, 1.0)  # the pixel range: the search stays on the data; None: unconstrained
    c.estimator.fit_to = "success"  # the class region (argmax), crossing 0.5; "probability": the released fit
    c.estimator.num_boot = 200
    c.estimator.max_per_call = 0  # 0: from the free memory
    c.estimator.filter_starts = True  # start points: test images whose label and prediction are not the target

    c.thresholds = (0.6, 0.8, 0.9, 0.99)  # d* of {p_class >= threshold}: the high-certainty manifolds
    c.classes = tuple(range(10))  # d* per class
    c.boundary_sets = ((0, 1), (3, 8), (0, 1, 2), (3, 5, 8), (0, 1, 2, 3), (3, 5, 8, 9))
    c.variable_classes = (0, 4, 8)  # each trend's d* is the mean over these classes

    c.robustness = ml_collections.ConfigDict()
    c.robustness.sigma = 0.3

    c.known_answer = ml_collections.ConfigDict()
    c.known_answer.halfspace_distance = 3.0
    c.known_answer.codims = (1, 2, 3)
    c.known_answer.tube_distance = 0.15  # start points this far from the flat (well within the reach)
    c.known_answer.repeats = 8
    c.known_answer.num_starts = 4
    return c


def _released(c: ml_collections.ConfigDict) -> None:
    """The released notebook's protocol, field by field (README: the table of differences)."""
    c.data.subtract_mean = True
    c.data.random_test_labels = True
    c.train.weight_decay = 1e-4
    c.estimator.bounds = None
    c.estimator.reach = 0.0
    c.estimator.lr = 5e-2
    c.estimator.optimizer = "released"
    c.estimator.starts = "train_fresh"
    c.estimator.fit_to = "probability"
    c.ensemble.mode = "mixture"


def _smoke(c: ml_collections.ConfigDict) -> None:
    c.train.num_steps = 100
    c.train.chunk_steps = 50
    c.train.num_seeds = 2
    c.train.train_sizes = (300,)
    c.over_training.steps = (0, 10)
    c.mlp.width = 32
    c.mlp.widths = (16, 32)
    c.ensemble.members = (1, 2)
    c.cnn.channels = (4,)
    c.estimator.dims = (1, 2, 4, 8)
    c.estimator.repeats = 2
    c.estimator.num_starts = 2
    c.estimator.steps = 150
    c.estimator.check_repeats = 1
    c.estimator.num_boot = 20
    c.thresholds = (0.9,)
    c.classes = (0, 1)
    c.boundary_sets = ((0, 1), (0, 1, 2))
    c.variable_classes = (0,)
    c.known_answer.codims = (2,)
    c.known_answer.repeats = 2
    c.known_answer.num_starts = 2


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The CPU-scale config; ``arg`` picks variants, comma-separated: 'smoke', 'released' (e.g. 'smoke,released')."""
    c = _base()
    variants = [a.strip() for a in (arg or "").split(",") if a.strip() and a.strip() != "default"]
    for v in variants:
        if v == "smoke":
            _smoke(c)
        elif v == "released":
            _released(c)
        else:
            raise ValueError(f"unknown variant {v!r}; use 'smoke', 'released' or both ('smoke,released')")
    return c
