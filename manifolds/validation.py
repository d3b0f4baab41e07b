"""Config checks for manifolds: every field range and cross-field rule, raising ConfigError naming the key."""

from __future__ import annotations

import ml_collections

from common import app
from common import validate as v


def _grids(config) -> None:
    v.sorted_grid(config, "estimator.dims", kind=int, positive=True)
    v.sorted_grid(config, "mlp.widths", kind=int, positive=True, allow_empty=True)
    v.sorted_grid(config, "train.train_sizes", kind=int, positive=True, allow_empty=True)
    v.sorted_grid(config, "ensemble.members", kind=int, positive=True, allow_empty=True)
    v.sorted_grid(config, "over_training.steps", kind=int, non_negative=True, allow_empty=True)
    v.sorted_grid(config, "cnn.channels", kind=int, positive=True)
    v.sorted_grid(config, "classes", kind=int, non_negative=True)
    v.sorted_grid(config, "variable_classes", kind=int, non_negative=True)
    v.sorted_grid(config, "known_answer.codims", kind=int, positive=True, allow_empty=True, high=4)
    v.sorted_grid(config, "thresholds", kind=float, allow_empty=True, low=0.5, high=0.99)


def _bounds(config) -> None:
    bounds = v.get(config, "estimator.bounds")
    if bounds is None:
        return
    if (
        not isinstance(bounds, (tuple, list))
        or len(bounds) != 2
        or not all(isinstance(b, (int, float)) for b in bounds)
    ):
        raise app.ConfigError("estimator.bounds", f"must be None or (lo, hi), got {bounds!r}")
    if not bounds[0] < bounds[1]:
        raise app.ConfigError("estimator.bounds", f"needs lo < hi, got {tuple(bounds)!r}")
    if config.data.subtract_mean:
        raise app.ConfigError("estimator.bounds", "must be None with data.subtract_mean (the box is in pixel units)")


def _boundary_sets(config) -> None:
    for sets in v.get(config, "boundary_sets"):
        if not isinstance(sets, (tuple, list)) or len(sets) < 2:
            raise app.ConfigError("boundary_sets", f"each boundary needs >= 2 classes, got {sets!r}")
        if len(set(sets)) != len(sets) or any(not isinstance(c, int) or c < 0 for c in sets):
            raise app.ConfigError("boundary_sets", f"classes must be distinct non-negative integers, got {sets!r}")


def _resnets(config) -> None:
    labels = []
    for m in v.get(config, "resnet.models"):
        ok = isinstance(m, (tuple, list)) and len(m) == 3 and isinstance(m[0], str) and m[0].isidentifier()
        if not (ok and all(isinstance(n, int) and n >= 1 for n in m[1:])):
            raise app.ConfigError("resnet.models", f"each model is (label, blocks >= 1, width >= 1), got {m!r}")
        labels.append(m[0])
    if len(set(labels)) != len(labels):
        raise app.ConfigError("resnet.models", f"labels must be distinct, got {labels}")


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks; raises common.app.ConfigError naming the field."""
    v.one_of(config, "data.name", ("digits", "mnist", "fashion_mnist", "cifar10"))
    v.boolean(config, "data.allow_fallback", "data.subtract_mean", "data.random_test_labels", "cnn.enabled")
    v.boolean(config, "estimator.filter_starts", "train.equal_epochs")
    v.positive_int(config, "train.num_steps", "train.chunk_steps", "train.batch_size", "train.num_seeds", "mlp.width")
    v.positive_int(config, "estimator.repeats", "estimator.num_starts", "estimator.steps", "estimator.check_repeats")
    v.non_negative_int(config, "estimator.num_boot", "estimator.max_per_call", "estimator.check_factor")
    v.divides(config, "train.chunk_steps", "train.num_steps")
    v.positive(config, "train.lr", "train.random_label_lr", "estimator.lr", "robustness.sigma")
    v.positive(config, "known_answer.halfspace_distance", "known_answer.tube_distance")
    v.positive_int(config, "known_answer.repeats", "known_answer.num_starts")
    v.non_negative(config, "train.weight_decay", "estimator.tolerance", "estimator.reach")
    v.probability(config, "ensemble.train_fraction", open_low=True)
    v.one_of(config, "estimator.basis", ("gaussian", "orthonormal", "axis"))
    v.one_of(config, "estimator.fit_to", ("probability", "success"))
    v.one_of(config, "estimator.optimizer", ("ours", "released"))
    v.one_of(config, "estimator.starts", ("test", "train", "train_fresh"))
    v.one_of(config, "ensemble.mode", ("product", "mixture"))
    _grids(config)
    _bounds(config)
    _boundary_sets(config)
    _resnets(config)
    if config.train.num_seeds < 2:
        raise app.ConfigError("train.num_seeds", "needs >= 2 seeds for the error bars of the trends")
    if any(s >= config.train.num_steps for s in config.over_training.steps):
        raise app.ConfigError("over_training.steps", f"must be < train.num_steps={config.train.num_steps}")
    if config.estimator.check_repeats > config.estimator.repeats:
        raise app.ConfigError("estimator.check_repeats", "must be <= estimator.repeats")
