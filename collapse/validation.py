"""Config checks for collapse (common.validate helpers; each raises common.app.ConfigError naming the field)."""

from __future__ import annotations

import ml_collections

from collapse import invariant_sets as inv
from collapse import models
from collapse.groups import resnet_options
from common import app
from common import validate as check


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks, before anything is compiled."""
    _network(config)
    _scalars(config)
    _grids(config)
    _protocol(config)
    _noise(config)


def _network(config: ml_collections.ConfigDict) -> None:
    check.one_of(config, "net.arch", ("mlp", "cnn", "resnet"))
    if config.net.arch == "resnet":  # both optional (defaults in groups.resnet_options)
        if "blocks" in config.net:
            check.positive_int(config, "net.blocks")
        if "resnet_neurons" in config.net:
            check.one_of(config, "net.resnet_neurons", inv.RESNET_SCHEMES)
    if config.train.get("max_runs_per_call", 0) < 0:
        raise app.ConfigError("train.max_runs_per_call", "must be >= 0 (0 = every run of a group in one call)")
    if resnet_options(config)["warmup_steps"] < 0:
        raise app.ConfigError("train.warmup_steps", "must be >= 0")
    check.one_of(config, "net.act", tuple(models.ACTIVATIONS))  # each has sigma(0) = 0
    if not config.net.widths:
        raise app.ConfigError("net.widths", "needs at least one hidden layer")
    check.sorted_grid(config, "net.maxpool_after", kind=int, non_negative=True, allow_empty=True)
    check.probability(config, "net.vanish_threshold", "net.identical_threshold", open_low=True, open_high=True)
    check.probability(config, "net.momentum", open_high=True)
    if config.net.arch == "cnn" and not config.net.maxpool_after and config.net.dense_head:
        raise app.ConfigError("net.dense_head", "needs net.maxpool_after (flattened features)")


def _scalars(config: ml_collections.ConfigDict) -> None:
    check.positive_int(
        config,
        "net.widths",
        "train.batch_size",
        "train.num_steps",
        "train.chunk_steps",
        "train.num_seeds",
        "sweep.batch_num_seeds",
        "cnn.widths",
        "cnn.num_steps",
        "cnn.num_seeds",
        "sde.num_seeds",
        "sde.neuron_num_seeds",
        "sde.hidden_batch_size",
        "sde.hidden_num_seeds",
        "sde.hidden_num_steps",
        "sde.lyapunov_num_seeds",
        "teacher_student.num_steps",
        "teacher_student.num_seeds",
    )
    check.positive(
        config,
        "sweep.base_lr",
        "large_lr.lr_high",
        "large_lr.lr_low",
        "sde.mu",
        "sde.dt",
        "sde.r_in",
        "sde.r_out",
        "sde.exit_time",
        "sde.merge_label_noise",
        "sde.merge_r_in",
        "sde.eps",
        "sde.neuron_label_noise",
        "sde.neuron_dt",
        "sde.neuron_time",
        "sde.hidden_label_noise",
        "teacher_student.lr",
        "teacher_student.collapse_threshold",
    )
    check.non_negative(config, "sweep.base_weight_decay")
    check.boolean(config, "gd.enabled", "gd.large_lr", "cnn.enabled")
    check.positive_int(config, "gd.num_steps", "large_lr.finetune_steps")


def _grids(config: ml_collections.ConfigDict) -> None:
    """Sweep grids: sorted, no repeats. The extra settings around the base run may be empty (none of that kind)."""
    check.sorted_grid(config, "sweep.lrs", positive=True)
    check.sorted_grid(config, "sweep.label_noises", low=0, high=1, allow_empty=True)
    check.sorted_grid(config, "sweep.weight_decays", non_negative=True, allow_empty=True)
    check.sorted_grid(config, "sweep.batch_sizes", kind=int, positive=True, allow_empty=True)
    check.sorted_grid(config, "large_lr.durations", kind=int, low=0, high=config.train.num_steps, allow_empty=True)
    if config.cnn.enabled:
        check.sorted_grid(config, "cnn.lrs", positive=True)
    check.sorted_grid(config, "sde.zetas", positive=True)
    check.sorted_grid(config, "sde.neuron_lrs", positive=True)
    check.sorted_grid(config, "sde.hidden_lr_factors", positive=True)
    check.sorted_grid(config, "sde.merge_lr_factors", positive=True)
    check.sorted_grid(config, "sde.dts", positive=True)
    check.sorted_grid(config, "sde.times", positive=True)
    if not config.sde.r_in < config.sde.r_out:
        raise app.ConfigError("sde.r_in", f"must be below sde.r_out={config.sde.r_out!r}, got {config.sde.r_in!r}")
    check.sorted_grid(config, "teacher_student.sigmas", non_negative=True)


def _protocol(config: ml_collections.ConfigDict) -> None:
    """Checkpoint steps: every step a result is read at must be a chunk boundary within the run."""
    check.divides(config, "train.chunk_steps", "train.num_steps")
    chunk, total = config.train.chunk_steps, config.train.num_steps
    if config.gd.enabled and (config.gd.num_steps % chunk or config.gd.num_steps > total):
        raise app.ConfigError("gd.num_steps", f"must be a multiple of train.chunk_steps={chunk} and <= {total}")
    if config.large_lr.finetune_steps % chunk:
        raise app.ConfigError("large_lr.finetune_steps", f"must be a multiple of train.chunk_steps={chunk}")
    for d in config.large_lr.durations:
        if d % chunk or d + config.large_lr.finetune_steps > total:
            raise app.ConfigError(
                "large_lr.durations",
                f"each must be a multiple of train.chunk_steps={chunk} with duration + finetune_steps <= {total}, "
                f"got {d}",
            )
    if config.cnn.enabled and config.cnn.num_steps % chunk:
        raise app.ConfigError("cnn.num_steps", "must be a multiple of train.chunk_steps")
    ts_cfg = config.teacher_student
    if not 0 < ts_cfg.drop_step <= ts_cfg.num_steps:
        raise app.ConfigError("teacher_student.drop_step", "must be in (0, num_steps]")
    if "record_every" in ts_cfg:
        check.non_negative_int(config, "teacher_student.record_every")
        if ts_cfg.record_every and ts_cfg.num_steps % ts_cfg.record_every:
            raise app.ConfigError("teacher_student.record_every", "must divide teacher_student.num_steps (0 = none)")


def _noise(config: ml_collections.ConfigDict) -> None:
    """The noise-scale sweep: an lr axis at one batch size and a batch axis at one lr, crossing at a shared point
    (so the batch axis reuses the lr axis' full-batch control)."""
    if "noise" not in config:
        return
    check.boolean(config, "noise.enabled")
    if not config.noise.enabled:
        return
    n = config.noise
    check.positive_int(config, "noise.num_steps", "noise.num_seeds", "noise.gd_num_seeds", "noise.lr_axis_batch")
    check.positive(config, "noise.batch_axis_lr")
    check.non_negative(config, "noise.weight_decay")
    check.probability(config, "noise.min_test_acc")
    if "label_noise" in n:
        check.probability(config, "noise.label_noise")
    if "warmup_steps" in n:
        check.non_negative_int(config, "noise.warmup_steps")
    check.sorted_grid(config, "noise.lrs", positive=True)
    check.sorted_grid(config, "noise.batch_sizes", kind=int, positive=True)
    if len(n.lrs) < 2:
        raise app.ConfigError("noise.lrs", f"needs at least two learning rates for a trend, got {tuple(n.lrs)!r}")
    if len(n.batch_sizes) < 2:
        raise app.ConfigError("noise.batch_sizes", f"needs at least two batch sizes, got {tuple(n.batch_sizes)!r}")
    if not any(abs(lr - n.batch_axis_lr) <= 1e-12 * lr for lr in n.lrs):
        raise app.ConfigError("noise.batch_axis_lr", f"must be one of noise.lrs={tuple(n.lrs)!r} (its GD control)")
    if n.lr_axis_batch not in n.batch_sizes:
        raise app.ConfigError("noise.lr_axis_batch", f"must be one of noise.batch_sizes={tuple(n.batch_sizes)!r}")
    if n.num_steps % config.train.chunk_steps:
        raise app.ConfigError("noise.num_steps", f"must be a multiple of train.chunk_steps={config.train.chunk_steps}")
    if not config.gd.enabled:
        raise app.ConfigError("noise.enabled", "the noise sweep needs its full-batch control (gd.enabled=True)")
