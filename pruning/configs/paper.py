"""pruning at the paper's scale: ResNet-20 on CIFAR-10 with open_lth's schedule, for an accelerator (not run here).

    python -m pruning.main --config=pruning/configs/paper.py

open_lth's cifar_resnet_20 defaults: SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, 160 epochs (62,560
steps at 391 per epoch), the rate divided by 10 at epochs 80 and 120, random crop + flip, the output layer
pruned with the rest (open_lth ignores fc.weight only for LeNet and VGG), 20% of the remaining weights per level;
rewind step 500 as in the protocol notes. 20 levels (density down to 0.8^19 = 1.4%), 2 seeds, every run kind in
one vmapped sweep. The flatness analysis needs a full spectrum (a few thousand weights), so it is off here
(`flatness.levels` empty); top eigenvalues of a ResNet-20 solution are available from
`pruning.hessian.top_eigenvalues` (Lanczos).
Needs CIFAR-10 prepared for tfds (no download is attempted).
"""

from __future__ import annotations

import ml_collections

from pruning.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The paper-scale config (no variants)."""
    if arg not in (None, "", "default"):
        raise ValueError(f"unknown variant {arg!r}; paper.py has none")
    c = default.get_config()
    c.data.name = "cifar10"
    c.data.allow_fallback = False
    c.data.train_size = 0
    c.net.arch = "resnet"
    c.net.resnet_blocks = 3
    c.net.resnet_width = 16
    c.train.batch_size = 128
    c.train.steps = 62560
    c.train.chunk_steps = 3910  # 10 epochs per compiled call / checkpoint
    c.train.rewind_step = 500
    c.train.lr = 0.1
    c.train.momentum = 0.9
    c.train.weight_decay = 1e-4
    c.train.lr_drops = (31280, 46920)
    c.train.lr_gamma = 0.1
    c.train.augment = True
    c.train.eval_batch = 1000
    c.imp.num_levels = 20
    c.imp.output_rate = 1.0  # open_lth's CIFAR ResNets prune fc.weight (only its LeNet and VGG leave it out)
    c.imp.num_seeds = 2
    c.imp.matching_tolerance = 0.005
    c.flatness.levels = ()
    c.flatness.refine_from = 46920
    c.instability.rewind_steps = (0, 100, 500, 2000)
    c.net.widths = (16,)
    c.net.strides = (1,)
    return c
