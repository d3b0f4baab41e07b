"""pruning at CPU scale: IMP and its ablations on a narrow MLP trained on 500 scikit-learn digits.

    python -m pruning.main --config=pruning/configs/default.py
    python -m pruning.main --config=pruning/configs/default.py:smoke   # seconds; tests

default: MLP 64-16-16-10 (ReLU, 1,440 kernel weights), 500 training digits (the other 1,297 are the test set),
SGD momentum 0.9, lr 0.05, weight decay 1e-4, batch 64, 500 steps per level, rewind step k = 25; 20% of the
remaining kernel weights pruned per level (global magnitude, output layer included), 15 levels (density down to
0.8^14 = 4.4%); 3 seeds. One vmapped sweep of 24 runs: IMP, the five ablations, and IMP's twin and perturbed copy.
A narrow net on few examples is what makes the digits hard enough to stop matching within 15 levels (the
64-300-100-10 LeNet shape stays matching down to ~2%). Flatness at levels 0 and 4: full Hessian spectra, the
predicted largest prune fraction, and a vmapped sweep of 9 fractions x 2 pruning kinds x 3 seeds per level.
smoke: two seeds, 4 levels of 100 steps, every run kind and one flatness level: seconds of compute.
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
    c.net.arch = "mlp"  # or "resnet"
    c.net.widths = (16, 16)
    c.net.resnet_blocks = 3  # ResNet-(6n+2): 3 -> ResNet-20
    c.net.resnet_width = 16

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 64
    c.train.steps = 500  # SGD steps per level
    c.train.chunk_steps = 250  # steps per compiled call = checkpoint interval
    c.train.rewind_step = 25  # k
    c.train.lr = 0.05
    c.train.momentum = 0.9
    c.train.weight_decay = 1e-4
    c.train.lr_drops = ()  # steps within a level where the rate is multiplied by lr_gamma
    c.train.lr_gamma = 0.1
    c.train.warmup_steps = 0
    c.train.augment = False  # random crop + flip (CIFAR)
    c.train.eval_batch = 2000

    c.imp = ml_collections.ConfigDict()
    c.imp.num_levels = 15  # including the dense level 0
    c.imp.fraction = 0.2  # of the remaining weights, per level
    c.imp.output_rate = 1.0  # 1: output layer in the global pool; 0: never pruned; 0.5: pruned at half the rate
    c.imp.num_seeds = 3
    c.imp.runs = (
        "imp",
        "no_rewind",
        "random_pruning",
        "random_reinit",
        "retrain_final",
        "one_shot",
        "twin",
        "perturbed",
    )
    c.imp.barrier_points = 11
    c.imp.matching_tolerance = 0.01  # matching: mean test error <= dense mean + this

    c.flatness = ml_collections.ConfigDict()
    c.flatness.levels = (0, 4)  # IMP levels whose solution is analysed (empty: skip)
    c.flatness.fractions = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    c.flatness.epsilon = 0.05  # the sublevel set: train loss within epsilon of the solution's
    c.flatness.max_dim = 5000  # refuse full spectra above this many remaining weights
    c.flatness.hvp_batch = 256

    if arg in (None, "", "default"):
        return c
    if arg == "smoke":
        c.imp.num_seeds = 2
        c.imp.num_levels = 4
        c.train.steps = 100
        c.train.chunk_steps = 50
        c.train.rewind_step = 5
        c.flatness.levels = (2,)
        c.flatness.fractions = (0.2, 0.5, 0.8)
        c.imp.barrier_points = 5
        return c
    raise ValueError(f"unknown variant {arg!r}; use default or smoke")
