"""Config checks for icl (common.validate helpers; each raises common.app.ConfigError naming the field)."""

from __future__ import annotations

import ml_collections

from common import app
from common import validate as check


def _numbers(config, key: str, kind: str = "numbers") -> list:
    value = check.get(config, key)
    if not isinstance(value, (tuple, list)):
        raise app.ConfigError(key, f"must be a sequence of {kind}, got {value!r}")
    for x in value:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise app.ConfigError(key, f"must hold {kind} only, got {tuple(value)!r}")
    return list(value)


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks, before anything is compiled."""
    check.positive_int(
        config,
        "task.dim",
        "task.num_points",
        "task.dims_points_per_dim",
        "model.num_layers",
        "model.width",
        "model.num_heads",
        "sweep.num_seeds",
        "train.num_steps",
        "train.chunk_steps",
        "train.eval_every",
        "train.eval_prompts",
        "eval.num_prompts",
        "eval.prompt_chunk",
        "eval.dmmse_chunk",
    )
    if "map_batch" in config.sweep:
        check.non_negative_int(config, "sweep.map_batch")
    check.positive(config, "task.noise_var", "task.dims_noise_var_per_dim")
    check.boolean(config, "sweep.include_infinite", "sweep.nested_pools")
    if config.model.width % config.model.num_heads:
        raise app.ConfigError("model.num_heads", f"must divide model.width={config.model.width}")
    _numbers(config, "task.dims", "integers")
    check.sorted_grid(config, "task.dims", kind=int, positive=True, allow_empty=True)  # empty = only task.dim
    _numbers(config, "sweep.log2_num_tasks", "integers")
    check.sorted_grid(config, "sweep.log2_num_tasks", kind=int, low=0, high=24, allow_empty=True)
    _numbers(config, "sweep.num_tasks", "integers")
    check.sorted_grid(config, "sweep.num_tasks", kind=int, low=1, high=2**24, allow_empty=True)
    if not config.sweep.log2_num_tasks and not config.sweep.num_tasks and not config.sweep.include_infinite:
        raise app.ConfigError("sweep.num_tasks", "no finite M and sweep.include_infinite is False: nothing to run")
    _numbers(config, "sweep.lrs")
    check.sorted_grid(config, "sweep.lrs", positive=True)
    _numbers(config, "sweep.weight_decays")
    check.sorted_grid(config, "sweep.weight_decays", non_negative=True, strict=True)
    sizes = _numbers(config, "sweep.batch_sizes", "integers")
    if not 1 <= len(sizes) <= 2 or any(isinstance(b, float) or b <= 0 for b in sizes) or len(set(sizes)) != len(sizes):
        raise app.ConfigError("sweep.batch_sizes", f"must be one or two distinct positive integers, got {tuple(sizes)}")
    for i, pair in enumerate(config.sweep.model_sizes):
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in pair)
        ):
            raise app.ConfigError("sweep.model_sizes", f"entry {i} must be a (num_layers, width) pair, got {pair!r}")
        if pair[1] % config.model.num_heads:
            raise app.ConfigError("sweep.model_sizes", f"width {pair[1]} is not divisible by model.num_heads")
    check.divides(config, "train.chunk_steps", "train.num_steps")
    check.divides(config, "train.eval_every", "train.chunk_steps")
    check.divides(config, "eval.prompt_chunk", "eval.num_prompts")
    check.probability(config, "train.warmup_fraction", open_low=True, open_high=True)
    check.positive(config, "report.bayes_ratio_max", "report.ridge_ratio_max", "report.flat_num_se")
    lo_hi = _numbers(config, "report.log2_M_star_range")
    if len(lo_hi) != 2 or not lo_hi[0] <= lo_hi[1]:
        raise app.ConfigError("report.log2_M_star_range", f"must be (low, high) with low <= high, got {tuple(lo_hi)}")
