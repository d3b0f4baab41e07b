"""pruning at CPU scale: IMP at k = 0 and k > 0 on a small CNN trained on 500 scikit-learn digits.

    python -m pruning.main --config=pruning/configs/default.py
    python -m pruning.main --config=pruning/configs/default.py:smoke   # toy size; tests

default: CNN 3x3 convolutions 8-16-16 (strides 1, 2, 2), global average pooling, dense head (3,698 weights), 500
training digits (the other 1,297 are the test set). SGD momentum 0.9 at lr 0.15 from the first step (no warm-up: the
large early rate makes the dense network unstable to SGD noise at initialisation), divided by 10 at steps 300 and
450 of 600 per level; weight decay 1e-4, batch 32. IMP prunes 20% of the remaining kernel weights per level
(global magnitude, output layer included, as open_lth's CIFAR ResNets), 12 levels (density down to 0.8^11 = 8.6%),
rewinding to k = 50 (`imp`) and to k = 0 (`no_rewind`); 3 seeds. Companions of each IMP run: a twin (other SGD
noise), a perturbed rewind point, open_lth's controls (IMP mask shuffled per layer; IMP mask re-initialised, trained
from step k). Instability vs k: barriers between two copies from w_k for k in 0, 10, 25, 50, 100. Flatness at
level 4: full spectra, predicted vs measured largest one-iteration fraction for several epsilons.
smoke: two seeds, 3 levels of 40 steps, every run kind, one flatness level: compilation dominates.
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The CPU-scale config; `arg` picks a variant: None/'default' or 'smoke'."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False

    c.data = ml_collections.ConfigDict()
    c.data.name = "digits"  # or any tfds image set on disk
    c.data.allow_fallback = True
    c.data.train_size = 500  # 0 = the whole training split
    c.data.label_noise = 0.0  # fraction of training labels replaced once by another class

    c.net = ml_collections.ConfigDict()
    c.net.arch = "cnn"  # or "mlp", "resnet"
    c.net.widths = (8, 16, 16)  # cnn channels / mlp hidden widths
    c.net.strides = (1, 2, 2)  # cnn only
    c.net.batchnorm = False  # cnn only: BatchNorm after every convolution
    c.net.resnet_blocks = 3  # ResNet-(6n+2): 3 -> ResNet-20
    c.net.resnet_width = 16

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 32
    c.train.steps = 600  # SGD steps per level
    c.train.chunk_steps = 300  # steps per compiled call = checkpoint interval
    c.train.rewind_step = 50  # k
    c.train.lr = 0.15
    c.train.momentum = 0.9
    c.train.weight_decay = 1e-4
    c.train.lr_drops = (300, 450)  # steps within a level where the rate is multiplied by lr_gamma
    c.train.lr_gamma = 0.1
    c.train.warmup_steps = 0
    c.train.augment = False  # random crop + flip (CIFAR)
    c.train.eval_batch = 250  # examples per evaluation slice: bounds memory over the vmapped runs and alpha grid

    c.imp = ml_collections.ConfigDict()
    c.imp.num_levels = 12  # including the dense level 0
    c.imp.fraction = 0.2  # of the remaining weights, per level
    c.imp.output_rate = 1.0  # 1: output layer in the global pool; 0: never pruned; 0.5: pruned at half the rate
    c.imp.num_seeds = 3
    c.imp.runs = ("imp", "no_rewind", "one_shot", "twin", "perturbed", "random_pruning", "random_reinit")
    c.imp.barrier_points = 11
    c.imp.matching_tolerance = 0.01  # matching: mean test error <= dense mean + this
    c.imp.barrier_tolerance = 0.01  # "zero" test-error barrier: <= this

    c.instability = ml_collections.ConfigDict()
    c.instability.rewind_steps = (0, 10, 25, 50, 100)  # k values; empty: skip

    c.flatness = ml_collections.ConfigDict()
    c.flatness.levels = (4,)  # IMP levels whose solution is analysed (empty: skip)
    c.flatness.fractions = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    c.flatness.epsilons = (0.02, 0.05, 0.1)  # sublevel sets: train loss within epsilon of the solution's
    c.flatness.nonpositive = "flat"  # eigenvalues <= 0: "flat" (r = inf), "drop", "abs" (hessian.gaussian_width_sq)
    c.flatness.refine_from = 300  # measured: train inside the pruned subspace from this step (both low rates)
    c.flatness.max_dim = 5000  # refuse full spectra above this many remaining weights
    c.flatness.hvp_batch = 256

    if arg in (None, "", "default"):
        return c
    if arg == "smoke":
        c.imp.num_seeds = 2
        c.imp.num_levels = 3
        c.train.steps = 40
        c.train.chunk_steps = 20
        c.train.rewind_step = 5
        c.train.lr_drops = (20, 30)
        c.instability.rewind_steps = (0, 5)
        c.flatness.levels = (2,)
        c.flatness.fractions = (0.2, 0.5, 0.8)
        c.flatness.epsilons = (0.05, 0.1)
        c.flatness.refine_from = 30
        c.imp.barrier_points = 5
        return c
    raise ValueError(f"unknown variant {arg!r}; use default or smoke")
