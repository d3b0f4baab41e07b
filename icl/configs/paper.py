"""icl at the paper's scale (Raventós et al. 2023) for a GPU/TPU: every M in 2^1 ... 2^20 and inf as one sweep.

    python -m icl.main --config=icl/configs/paper.py            # base model: 8 layers, width 128, 2 heads
    python -m icl.main --config=icl/configs/paper.py:small      # 4 layers, width 64, 2 heads
    python -m icl.main --config=icl/configs/paper.py:dims       # D = 8, 16, 32 (K = 2D, sigma^2 = D/32), 12/256/4

D = 8, K = 16, sigma^2 = 0.25, Adam lr 1e-3 with the triangle schedule, 500k steps, batch 256 (reported) and 512
(for the paper's M*: where the distance-to-Ridge curves of the two batch sizes cross).
Paper's result: M* between 2^14 and 2^15 for the base model, between 2^11 and 2^12 for the small one; with D = 8,
16, 32 about 2^14, 2^15, 2^16. Not run here (no accelerator was lent to this package's session): 21 M-values x 2 seeds x
500k steps at batches 256 and 512 is 5.1e18 matmul FLOPs (icl.transformer.train_flops_per_step), about 3.5 hours
at a sustained 400 TFLOP/s and so realistically a day or more on one GPU; each batch size's 42 runs are one
vmapped program.
"""

from __future__ import annotations

import ml_collections

from icl.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The paper's config; `arg`: None/'base', 'small' or 'dims'."""
    c = default.get_config()
    c.task.dim = 8
    c.task.num_points = 16
    c.task.noise_var = 0.25
    c.model.num_layers = 8
    c.model.width = 128
    c.model.num_heads = 2
    c.sweep.log2_num_tasks = tuple(range(1, 21))
    c.sweep.num_seeds = 2
    c.sweep.lrs = (1e-3,)
    c.sweep.batch_sizes = (256, 512)
    c.train.num_steps = 500_000
    c.train.chunk_steps = 5_000
    c.eval.num_prompts = 4096
    c.eval.dmmse_chunk = 4096
    if arg in (None, "", "base"):
        return c
    if arg == "small":
        c.model.num_layers = 4
        c.model.width = 64
        return c
    if arg == "dims":
        c.task.dims = (8, 16, 32)
        c.model.num_layers = 12
        c.model.width = 256
        c.model.num_heads = 4
        c.sweep.log2_num_tasks = tuple(range(1, 22))
        return c
    raise ValueError(f"unknown variant {arg!r} (expected base, small or dims)")
