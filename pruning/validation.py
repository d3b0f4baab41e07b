"""Config checks and data loading for the pruning experiment."""

from __future__ import annotations

import ml_collections
import numpy as np
from absl import logging

from common import app, data
from common import validate as v
from pruning import imp


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks; raises common.app.ConfigError naming the field."""
    v.one_of(config, "net.arch", ("mlp", "cnn", "resnet"))
    if config.net.arch in ("mlp", "cnn"):
        v.positive_int(config, "net.widths")
        if not len(config.net.widths):
            raise app.ConfigError("net.widths", "needs at least one layer")
    if config.net.arch == "cnn":
        v.positive_int(config, "net.strides")
        if len(config.net.strides) != len(config.net.widths):
            raise app.ConfigError("net.strides", f"needs one stride per entry of net.widths={config.net.widths}")
    elif config.net.arch == "resnet":
        v.positive_int(config, "net.resnet_blocks", "net.resnet_width")
    v.non_negative_int(config, "data.train_size")
    v.probability(config, "data.label_noise")
    v.boolean(config, "data.allow_fallback", "train.augment", "net.batchnorm")
    v.positive_int(
        config,
        "train.batch_size",
        "train.steps",
        "train.chunk_steps",
        "train.eval_batch",
        "imp.num_levels",
        "imp.num_seeds",
        "imp.barrier_points",
    )
    v.non_negative_int(config, "train.rewind_step", "train.warmup_steps")
    v.divides(config, "train.chunk_steps", "train.steps")
    if config.train.rewind_step >= config.train.steps:
        raise app.ConfigError("train.rewind_step", f"must be < train.steps={config.train.steps}")
    v.positive(config, "train.lr")
    v.non_negative(config, "train.weight_decay")
    v.in_range(config, "train.momentum", 0.0, 0.999)
    v.in_range(config, "train.lr_gamma", 0.0, 1.0)
    v.sorted_grid(config, "train.lr_drops", kind=int, positive=True, allow_empty=True)
    if any(d >= config.train.steps for d in config.train.lr_drops):
        raise app.ConfigError("train.lr_drops", f"must be < train.steps={config.train.steps}")
    v.probability(config, "imp.fraction", open_low=True, open_high=True)
    v.in_range(config, "imp.output_rate", 0.0, 2.0)
    if config.imp.barrier_points < 3:
        raise app.ConfigError("imp.barrier_points", "needs at least 3 points (both ends and one inside)")
    names = tuple(config.imp.runs)
    if "imp" not in names:
        raise app.ConfigError("imp.runs", "must include 'imp'")
    for n in names:
        if n not in imp.ABLATIONS and n not in imp.COMPANIONS:
            raise app.ConfigError(
                "imp.runs", f"unknown run {n!r}; known: {sorted(imp.ABLATIONS) + list(imp.COMPANIONS)}"
            )
    if len(set(names)) != len(names):
        raise app.ConfigError("imp.runs", "lists a run twice")
    v.non_negative(config, "imp.matching_tolerance", "imp.barrier_tolerance")
    v.sorted_grid(config, "instability.rewind_steps", kind=int, non_negative=True, allow_empty=True)
    if any(k >= config.train.steps for k in config.instability.rewind_steps):
        raise app.ConfigError("instability.rewind_steps", f"must be < train.steps={config.train.steps}")
    v.sorted_grid(config, "flatness.levels", kind=int, non_negative=True, allow_empty=True)
    if any(lv >= config.imp.num_levels for lv in config.flatness.levels):
        raise app.ConfigError("flatness.levels", f"must be < imp.num_levels={config.imp.num_levels}")
    v.sorted_grid(config, "flatness.fractions", low=0.0, high=1.0)
    if config.flatness.fractions and not (0 < config.flatness.fractions[0] and config.flatness.fractions[-1] < 1):
        raise app.ConfigError("flatness.fractions", "entries must lie strictly between 0 and 1")
    v.sorted_grid(config, "flatness.epsilons", positive=True)
    v.one_of(config, "flatness.nonpositive", ("flat", "drop", "abs"))
    v.positive_int(config, "flatness.max_dim", "flatness.hvp_batch")
    v.non_negative_int(config, "flatness.refine_from")
    if config.flatness.refine_from >= config.train.steps:
        raise app.ConfigError("flatness.refine_from", f"must be < train.steps={config.train.steps}")


def load_data(config: ml_collections.ConfigDict) -> tuple[tuple[np.ndarray, ...], str, int]:
    """(x_train, y_train, x_test, y_test), data_source, num_classes.

    `data.train_size` > 0 keeps that many training examples (the first of a fixed permutation) and, for digits, adds
    the unused ones to the test set (unseen examples: a less noisy test error). `data.label_noise` replaces that
    fraction of the training labels, once, by uniformly drawn other classes.
    """
    try:
        tr = data.load(config.data.name, "train", allow_fallback=config.data.allow_fallback)
        te = data.load(config.data.name, "test", allow_fallback=config.data.allow_fallback)
    except data.DataUnavailable as e:
        raise app.UserError(f"data.name: {e}") from e
    x_tr, y_tr, x_te, y_te = tr.x, tr.y, te.x, te.y
    if not (np.all(np.isfinite(x_tr)) and np.all(np.isfinite(x_te))):
        raise app.UserError(f"data.name: {config.data.name} has non-finite inputs")
    n = int(config.data.train_size)
    if n:
        if n > len(y_tr):
            raise app.UserError(f"data.train_size: {n} exceeds the {len(y_tr)} training examples")
        perm = np.random.default_rng(12345).permutation(len(y_tr))
        keep, rest = perm[:n], perm[n:]
        if tr.source.startswith("sklearn:digits"):
            x_te, y_te = np.concatenate([x_te, x_tr[rest]]), np.concatenate([y_te, y_tr[rest]])
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    if config.data.label_noise > 0:
        rng = np.random.default_rng(54321)
        flip = rng.random(len(y_tr)) < config.data.label_noise
        shift = rng.integers(1, tr.num_classes, size=len(y_tr))
        y_tr = np.where(flip, (y_tr + shift) % tr.num_classes, y_tr).astype(np.int32)
    logging.info("data: %s, %d train, %d test", tr.source, len(y_tr), len(y_te))
    arrays = tuple(np.asarray(a) for a in (x_tr, y_tr.astype(np.int32), x_te, y_te.astype(np.int32)))
    return arrays, tr.source, int(tr.num_classes)
