"""manifolds at the paper's scale, for an accelerator: CIFAR-10 (D = 3072) through tfds, the released d grid.

    python -m manifolds.main --config=manifolds/configs/paper.py

Not run on CPU (validated by the tests; its CIFAR-10 path is tested on a fake tfds set, its ResNets at toy size).
The paper measures ResNet-20 / WideResNet / ViT on CIFAR-10; here ResNet-20 and WideResNet-16-4 (GroupNorm instead
of BatchNorm, Adam instead of SGD; 3 seeds each; README: what falls short) next to the MLP and CNN families at CIFAR
size: MLP 3072-1024-10 (3 seeds per condition, random labels, training sets of 1k/5k/20k at equal epochs), widths
128-4096, an ensemble pool of 12, a CNN with 64-128-256 channels. Estimator: the released d
values (1 ... 3072), 10 repeats x 10 start points, the search in the pixel box, the convergence check on 3 repeats;
subspaces per compiled call from the free memory (bases are max(dims) x 3072 floats each).
"""

from __future__ import annotations

import ml_collections

from manifolds.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The accelerator-scale config (no variants)."""
    if arg not in (None, ""):
        raise ValueError(f"paper.py has no variants, got {arg!r}")
    c = default.get_config()
    c.data.name = "cifar10"
    c.data.allow_fallback = False
    c.train.num_steps = 40000
    c.train.chunk_steps = 2000
    c.train.batch_size = 128
    c.train.train_sizes = (1000, 5000, 20000)
    c.over_training.steps = (0, 10, 100, 390, 1950)  # 390 steps = 1 epoch
    c.mlp.width = 1024
    c.mlp.widths = (128, 512, 1024, 4096)
    c.cnn.channels = (64, 128, 256)
    c.resnet.models = (("resnet20", 3, 16), ("wrn16_4", 2, 64))  # 3 seeds each
    c.estimator.dims = (1, 3, 5, 10, 15, 30, 50, 75, 100, 200, 300, 500, 1000, 3072)
    c.estimator.repeats = 10
    c.estimator.num_starts = 10
    c.estimator.check_repeats = 3
    c.known_answer.halfspace_distance = 10.0
    c.known_answer.repeats = 10
    return c
