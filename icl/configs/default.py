"""icl at CPU scale: the whole M-sweep (2^1 ... 2^6, 2^8 and inf) x 3 seeds as one jit(vmap).

    python -m icl.main --config=icl/configs/default.py
    python -m icl.main --config=icl/configs/default.py:smoke           # seconds; tests and notebooks
    python -m icl.main --config=icl/configs/default.py:crossing        # + batch 8: the paper's batch-crossing M*
    python -m icl.main --config=icl/configs/default.py:regularisation  # weight decay, early stopping, model size
    python -m icl.main --config=icl/configs/default.py:dims            # D = 2, 4, 8 with K = 2D, sigma^2 = D/32

default: D = 4, K = 8, sigma^2 = 0.125, a 4-layer / width 32 / 2-head transformer, batch 20, 12k steps of Adam
(peak 1e-3, triangle schedule), M = 2^1 ... 2^6, 2^8 and inf, 3 seeds (24 runs sharded over the cores, one XLA CPU
device per core, common.app; each device loops over its runs, sweep.map_batch = 1); evaluation curves every 500
steps; M* from the prediction distances (the model is closer to Ridge than to dMMSE), with its standard error over
the seeds. Runtime and results: icl/README.md.
crossing: the default plus batch 10, so the paper's M* (the distance-to-Ridge curves of two batch sizes cross) is
also estimated; batch 20 stays the reported one. About 1.5x the default's runtime.
regularisation: a cheaper task-diversity sweep (2 layers, 4k steps, 2 seeds, M = 2 ... 64 and inf) with weight decay
0, 0.1, 1 as a sweep axis, evaluation every 250 steps (early stopping) and model sizes 1 x 32 and 4 x 32 beside the
2 x 32 one: fills `by_weight_decay`, `early_stop_step` and `by_model_size`.
smoke: a few seconds, 2 values of M plus inf, tiny model; only checks that everything runs and the loss falls.
dims: three sweeps (D = 2, 4, 8; M = 2^1 ... 2^10) at the default model size, one seed (not run on CPU).
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The CPU-scale config; `arg`: None/'default', 'smoke', 'crossing', 'regularisation' or 'dims'."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False

    c.task = ml_collections.ConfigDict()
    c.task.dim = 4  # D
    c.task.num_points = 8  # K
    c.task.noise_var = 0.125  # sigma^2
    # D-scaling sweep: empty = only task.dim; otherwise one M-sweep per D with K = points_per_dim * D and
    # sigma^2 = noise_var_per_dim * D (these replace num_points and noise_var; results.json records both).
    c.task.dims = ()
    c.task.dims_points_per_dim = 2
    c.task.dims_noise_var_per_dim = 1.0 / 32.0

    c.model = ml_collections.ConfigDict()
    c.model.num_layers = 4
    c.model.width = 32
    c.model.num_heads = 2

    c.sweep = ml_collections.ConfigDict()
    c.sweep.log2_num_tasks = (1, 2, 3, 4, 5, 6, 8)  # M = 2^1 ... 2^6 and 2^8
    c.sweep.num_tasks = ()  # any integers M (replaces log2_num_tasks when not empty)
    c.sweep.include_infinite = True  # also M = inf (a fresh task for every prompt)
    c.sweep.nested_pools = True  # pool of size M = the first M tasks of the seed's pool; False: independent pools
    c.sweep.num_seeds = 3
    c.sweep.lrs = (1e-3,)  # peak learning rates (a sweep axis; the best per M on the held-out curve set is reported)
    c.sweep.weight_decays = (0.0,)  # AdamW decay (nanoGPT mask); the first is the reported one
    # The first batch size is the reported one; a second (larger) gives the paper's M* (crossing curves).
    c.sweep.batch_sizes = (20,)
    # Extra sweeps at other model sizes, (num_layers, width) pairs, at the reported batch size and decay.
    c.sweep.model_sizes = ()
    # How each device computes its runs (common.sweep.vmapped): 0 = all vectorised (GPU/TPU); k = a loop over the
    # runs, k vectorised at a time. On CPU a loop over single runs was faster than batching their small matmuls
    # (the default's 24-run chunk: 39-43 s vs 47-54 s per 1000 steps at batch 16, interleaved on 2 cores; see
    # icl/README.md, "Step speed").
    c.sweep.map_batch = 1

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 12000
    c.train.chunk_steps = 1000  # steps per compiled call = checkpoint interval
    c.train.warmup_fraction = 0.5  # triangle schedule: linear warm-up over this fraction, then linear decay
    c.train.eval_every = 500  # in-training evaluation interval (divides chunk_steps)
    c.train.eval_prompts = 256  # prompts per in-training evaluation set (T_True and T_Pretrain)

    c.eval = ml_collections.ConfigDict()
    c.eval.num_prompts = 4096  # per final evaluation set (T_True, and T_Pretrain for every run)
    c.eval.prompt_chunk = 1024  # prompts generated and evaluated at a time (2^20 prompts stream on a GPU)
    c.eval.dmmse_chunk = 1024  # tasks per chunk of the streaming log-sum-exp

    c.report = ml_collections.ConfigDict()  # the checks of icl.experiment.report
    c.report.bayes_ratio_max = 1.5  # loss_pretrain / dMMSE at the smallest M
    c.report.ridge_ratio_max = 1.15  # loss_true / Ridge at the largest finite M and at M = inf
    c.report.flat_num_se = 2.0  # "flat in M": no M above M* worse than at M* by more than this many standard errors
    c.report.log2_M_star_range = (2.0, 8.0)  # where M* is expected at this scale

    if arg in (None, "", "default"):
        return c
    if arg == "smoke":
        c.task.dim = 2
        c.task.num_points = 4
        c.task.noise_var = 0.0625
        c.model.num_layers = 1
        c.model.width = 16
        c.sweep.log2_num_tasks = (1, 3)
        c.sweep.num_seeds = 2
        c.sweep.batch_sizes = (16, 32)
        c.sweep.lrs = (3e-3,)
        c.train.num_steps = 200
        c.train.chunk_steps = 100
        c.train.eval_every = 50
        c.train.eval_prompts = 64
        c.eval.num_prompts = 128
        c.eval.prompt_chunk = 64
        c.eval.dmmse_chunk = 4
        return c
    if arg == "crossing":
        c.sweep.batch_sizes = (20, 10)  # reported first; sorted internally for the crossing
        return c
    if arg == "regularisation":
        c.model.num_layers = 2
        c.sweep.log2_num_tasks = (1, 2, 3, 4, 6)
        c.sweep.num_seeds = 2
        c.sweep.weight_decays = (0.0, 0.1, 1.0)
        c.sweep.model_sizes = ((1, 32), (4, 32))
        c.train.num_steps = 4000
        c.train.eval_every = 250
        c.report.ridge_ratio_max = 1.4  # 2 layers and 4k steps plateau above Ridge; the point here is the trends
        return c
    if arg == "dims":
        c.task.dims = (2, 4, 8)
        c.sweep.num_seeds = 1
        c.sweep.log2_num_tasks = tuple(range(1, 11))
        return c
    raise ValueError(f"unknown variant {arg!r} (expected default, smoke, crossing, regularisation or dims)")
