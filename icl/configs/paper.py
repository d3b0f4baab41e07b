"""icl at the paper's scale (Raventós et al. 2023) for a GPU/TPU: every M in 2^1 ... 2^20 and inf as one sweep.

    python -m icl.main --config=icl/configs/paper.py            # base model: 8 layers, width 128, 2 heads
    python -m icl.main --config=icl/configs/paper.py:small      # 4 layers, width 64, 2 heads
    python -m icl.main --config=icl/configs/paper.py:dims       # D = 8, 16, 32 (K = 2D, sigma^2 = D/32), 12/256/4

D = 8, K = 16, sigma^2 = 0.25, Adam lr 1e-3 with the triangle schedule, 500k steps, batch 256 (reported) and 512
(for the paper's M*: where the distance-to-Ridge curves of the two batch sizes cross).
Paper's result: M* between 2^14 and 2^15 for the base model, between 2^11 and 2^12 for the small one; with D = 8,
16, 32 about 2^14, 2^15, 2^16. The full configs were not run (they take a GPU-day). Measured on one H100
(jax 0.11.2, 2026-11-22): 34 runs (M = 2^1 ... 2^16 and inf, 2 seeds) at batch 256 take 15.2 ms per step for the
small model and 57.9 ms for the base one (47 TFLOP/s of matmuls); so the base config (42 runs, batches 256 and
512, 500k steps) is about 30 GPU-hours, the small one about 8.

    python -m icl.main --config=icl/configs/paper.py:medium        # one GPU, 6.6 min (measured on an H100)
    python -m icl.main --config=icl/configs/paper.py:medium_dims   # one GPU, 7.6 min (measured on an H100)

`medium` is the CPU default's task (D = 4, K = 8) with the small model at batches 256 / 512 for 20k steps,
M = 2^1 ... 2^10 and inf, 2 seeds: it shows all three phases, reaching Ridge (1.01x at M = 2^10), with
log2 M* = 5.0 (closer to Ridge) and 7.6 (batch crossing); icl/README.md has the numbers and icl/docs/ the figure.
`medium_dims` is D = 2, 4, 8 at 8k steps, one seed.
"""

from __future__ import annotations

import ml_collections

from icl.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The paper's config; `arg`: None/'base', 'small', 'dims', 'medium' or 'medium_dims' (one GPU, minutes)."""
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
    c.sweep.map_batch = 0  # every run of a device vectorised (the accelerator layout)
    c.train.num_steps = 500_000
    c.train.chunk_steps = 5_000
    c.train.eval_every = 1000  # the released code evaluates every 1000 steps
    c.train.eval_prompts = 4096
    c.eval.num_prompts = 2**20  # as the released code; streamed in chunks
    # [runs, prompt_chunk, K, dmmse_chunk] floats per dMMSE intermediate: 42 x 1024 x 16 x 1024 x 4 B = 2.8 GB
    c.eval.prompt_chunk = 1024
    c.eval.dmmse_chunk = 1024
    c.report.log2_M_star_range = (10.0, 17.0)  # the paper: 2^11-2^12 (small), 2^14-2^15 (base), 2^16 (D = 32)
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
    if arg == "medium":
        # One GPU, minutes: the CPU default's task (D = 4, K = 8, sigma^2 = 0.125) with the paper's small model
        # (4 layers, width 64, 2 heads) at the paper's batches 256 / 512, M = 2^1 ... 2^10 and inf, 20k steps.
        c = get_config("small")
        c.task.dim = 4
        c.task.num_points = 8
        c.task.noise_var = 0.125
        c.sweep.log2_num_tasks = tuple(range(1, 11))
        c.train.num_steps = 20_000
        c.train.chunk_steps = 2_000
        c.train.eval_every = 500
        c.eval.num_prompts = 2**16
        c.report.log2_M_star_range = (2.0, 10.0)
        return c
    if arg == "medium_dims":
        # One GPU, minutes: M* vs D for D = 2, 4, 8 (K = 2D, sigma^2 = D/32) with `medium`'s model, one seed, 8k steps.
        c = get_config("medium")
        c.task.dims = (2, 4, 8)
        c.sweep.num_seeds = 1
        c.train.num_steps = 8_000
        return c
    raise ValueError(f"unknown variant {arg!r} (expected base, small, dims, medium or medium_dims)")
