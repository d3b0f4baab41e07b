"""icl at CPU scale: the whole M-sweep (2^1 ... 2^8 and inf) x seeds at two batch sizes, each one jit(vmap).

    python -m icl.main --config=icl/configs/default.py
    python -m icl.main --config=icl/configs/default.py:smoke   # seconds; tests and notebooks
    python -m icl.main --config=icl/configs/default.py:dims    # D = 2, 4, 8 with K = 2D, sigma^2 = D/32
    python -m icl.main --config=icl/configs/default.py:ridge   # 4 layers, 12k steps, batch 16 only: Ridge reached

default: D = 4, K = 8, sigma^2 = 0.125, a 2-layer / width 32 / 2-head transformer, M = 2^1 ... 2^6, 2^8 and inf,
2 seeds, batches 16 (reported) and 32 (for the crossing M*), 6k steps; the runs are sharded over the cores (one XLA
CPU device per core, common.app). Runtime and results: icl/README.md ("Measured here"). At this budget the model
shows the Bayesian phase (it is dMMSE at M = 2), the transition, and above it a T_True loss that no longer depends
on M, nearer Ridge than dMMSE, but ~1.35x Ridge's: a 2-layer model trained for 6k steps plateaus there (4 layers
need ~12k steps to come within 1.1-1.16x, too slow for 2 cores at two batch sizes; see `ridge` below, and
paper.py:medium for the full picture on a GPU).
ridge: the default sweep with 4 layers, 12k steps and batch 16 only, 5 min 45 s on 2 quiet cores: the model comes to
1.145x Ridge at M = 2^8 (all three phases), but with one batch size there is no batch-crossing M*.
smoke: a few seconds, 2 values of M plus inf, tiny model; only checks that everything runs and the loss falls.
dims: three sweeps (D = 2, 4, 8; M = 2^1 ... 2^10) at the default model size;
about 6x the default runtime (estimated from the runs and tokens; not run on CPU, see paper.py:medium_dims).
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The CPU-scale config; `arg` picks a variant: None/'default', 'smoke', 'dims' or 'ridge'."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False

    c.task = ml_collections.ConfigDict()
    c.task.dim = 4  # D
    c.task.num_points = 8  # K
    c.task.noise_var = 0.125  # sigma^2
    # D-scaling sweep: empty = only task.dim; otherwise one M-sweep per D with K = 2D and sigma^2 = D/32.
    c.task.dims = ()

    c.model = ml_collections.ConfigDict()
    c.model.num_layers = 2
    c.model.width = 32
    c.model.num_heads = 2

    c.sweep = ml_collections.ConfigDict()
    c.sweep.log2_num_tasks = (1, 2, 3, 4, 5, 6, 8)  # M = 2^1 ... 2^6 and 2^8
    c.sweep.include_infinite = True  # also M = inf (a fresh task for every prompt)
    c.sweep.num_seeds = 2
    c.sweep.lrs = (1e-3,)  # peak learning rates (a sweep axis; results use the first)
    # The first batch size is the reported one; the second (larger) gives the paper's M* (crossing curves).
    c.sweep.batch_sizes = (16, 32)

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 6000
    c.train.chunk_steps = 1000  # steps per compiled call = checkpoint interval
    c.train.warmup_fraction = 0.5  # triangle schedule: linear warm-up over this fraction, then linear decay

    c.eval = ml_collections.ConfigDict()
    c.eval.num_prompts = 2048  # per evaluation set (T_True, and T_Pretrain for every run)
    c.eval.dmmse_chunk = 1024  # tasks per chunk of the streaming log-sum-exp

    if arg in (None, "", "default"):
        return c
    if arg == "smoke":
        c.task.dim = 2
        c.task.num_points = 4
        c.task.noise_var = 0.0625
        c.model.num_layers = 1
        c.model.width = 16
        c.sweep.log2_num_tasks = (1, 3)
        c.sweep.num_seeds = 1
        c.sweep.batch_sizes = (16, 32)
        c.sweep.lrs = (3e-3,)
        c.train.num_steps = 200
        c.train.chunk_steps = 100
        c.eval.num_prompts = 128
        c.eval.dmmse_chunk = 4
        return c
    if arg == "dims":
        c.task.dims = (2, 4, 8)
        c.sweep.log2_num_tasks = tuple(range(1, 11))
        return c
    if arg == "ridge":
        # The Ridge phase on CPU: 4 layers trained for 12k steps at one batch size (so no batch-crossing M*).
        c.model.num_layers = 4
        c.sweep.batch_sizes = (16,)
        c.train.num_steps = 12000
        c.train.chunk_steps = 1000
        return c
    raise ValueError(f"unknown variant {arg!r} (expected default, smoke, dims or ridge)")
