"""Config checks for disentangle: every range and cross-field rule, each error naming its dotted key."""

from __future__ import annotations

import ml_collections

from common import app
from common import validate as v

# Which terms each variant switches on: (nonneg penalty, activity energy, weight energy, ReLU, L1 activity penalty).
VARIANTS = {
    "none": (0.0, 0.0, 0.0, 0.0, 0.0),
    "energy": (0.0, 1.0, 1.0, 0.0, 0.0),
    "nonneg": (1.0, 0.0, 0.0, 0.0, 0.0),
    "all": (1.0, 1.0, 1.0, 0.0, 0.0),
    "relu_energy": (0.0, 1.0, 1.0, 1.0, 0.0),
    "l1": (0.0, 0.0, 1.0, 0.0, 1.0),  # the L1 control: sparsity instead of nonnegativity + activity energy
}
VAE_VARIANTS = {
    "beta_vae": (0.0, 0.0, 0.0, 0.0, 0.0),
    "relu": (0.0, 0.0, 0.0, 1.0, 0.0),
    "nonneg_energy": (1.0, 1.0, 1.0, 0.0, 0.0),  # soft nonnegativity (penalty) + activity and weight energy
    "relu_energy": (0.0, 1.0, 1.0, 1.0, 0.0),
}
CELL_VARIANTS = ("unconstrained", "constrained", "constrained_entangled", "unconstrained_entangled")
# task name -> (model kind, cubic inputs)
TASKS = {
    "linear_ae": ("linear_ae", False),
    "deep_ae": ("deep_ae", False),
    "supervised": ("supervised", False),
    "supervised_cubic": ("supervised", True),
}


def _names(config, key: str, allowed, allow_empty: bool) -> None:
    names = list(v.get(config, key))
    if (not names and not allow_empty) or any(x not in allowed for x in names) or len(set(names)) != len(names):
        raise app.ConfigError(key, f"must be distinct names from {tuple(allowed)}, got {names}")


def _task(config, t: str) -> None:
    p = f"{t}."
    v.positive_int(config, *(p + k for k in ("input_dim", "output_dim", "code_dim", "num_factors", "batch_size")))
    v.positive_int(config, p + "num_steps", p + "chunk_steps")
    v.divides(config, p + "chunk_steps", p + "num_steps")
    v.positive(config, p + "lr")
    v.non_negative(config, p + "beta_nonneg", p + "beta_activity", p + "beta_weight", p + "beta_l1")
    hidden = v.get(config, p + "hidden")
    if not isinstance(hidden, (tuple, list)) or any(not isinstance(h, int) or h <= 0 for h in hidden):
        raise app.ConfigError(p + "hidden", f"must be a tuple of positive widths, got {hidden!r}")
    if TASKS[t][0] == "deep_ae" and not hidden:
        raise app.ConfigError(p + "hidden", "the deep autoencoder needs at least one hidden layer")
    if TASKS[t][0] != "supervised" and config[t].output_dim != config[t].input_dim:
        raise app.ConfigError(
            p + "output_dim", f"an autoencoder's output_dim must equal input_dim ({config[t].input_dim})"
        )


def _vae(config) -> None:
    _names(config, "vae.variants", VAE_VARIANTS, allow_empty=True)
    v.one_of(config, "vae.dataset", ("sprites", "dsprites", "shapes3d"))
    v.positive_int(config, "vae.image_size", "vae.num_scales", "vae.num_positions", "vae.code_dim")
    v.positive_int(config, "vae.batch_size", "vae.num_steps", "vae.chunk_steps", "vae.num_seeds", "vae.max_images")
    v.divides(config, "vae.chunk_steps", "vae.num_steps")
    v.positive(config, "vae.lr", "vae.beta_kl")
    v.non_negative(config, "vae.beta_activity", "vae.beta_weight", "vae.beta_nonneg", "vae.mu_bias")
    if config.vae.image_size < 8:
        raise app.ConfigError("vae.image_size", f"must be >= 8, got {config.vae.image_size}")


def _cells(config) -> None:
    _names(config, "cells.variants", CELL_VARIANTS, allow_empty=True)
    v.positive_int(config, "cells.side", "cells.num_worlds", "cells.num_neurons", "cells.num_seeds")
    v.positive_int(config, "cells.num_steps", "cells.chunk_steps")
    v.divides(config, "cells.chunk_steps", "cells.num_steps")
    v.non_negative_int(config, "cells.jitter")
    v.positive(config, "cells.lr")
    v.non_negative(config, "cells.beta_nonneg", "cells.beta_activity", "cells.beta_weight")
    if config.cells.side < 3:
        raise app.ConfigError("cells.side", f"must be >= 3, got {config.cells.side}")
    if config.cells.jitter >= config.cells.side:
        raise app.ConfigError("cells.jitter", f"must be < cells.side={config.cells.side}, got {config.cells.jitter}")


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks; raises common.app.ConfigError naming the field."""
    v.positive_int(config, "energy.num_thetas", "energy.num_samples", "eval.num_samples", "eval.num_bins")
    v.positive_int(config, "eval.factor_bins")
    v.in_range(config, "eval.activity_threshold", 0.0, 0.99)
    for key in ("eval.num_bins", "eval.factor_bins"):
        if v.get(config, key) < 2:
            raise app.ConfigError(key, f"must be >= 2, got {v.get(config, key)}")
    tasks_ = list(v.get(config, "ablation.tasks"))
    if not tasks_:
        raise app.ConfigError("ablation.tasks", "must name at least one task")
    for t in tasks_:
        if t not in TASKS:
            raise app.ConfigError("ablation.tasks", f"unknown task {t!r}; expected some of {tuple(TASKS)}")
    _names(config, "ablation.variants", VARIANTS, allow_empty=False)
    v.positive_int(config, "ablation.num_seeds")
    for t in tasks_:
        _task(config, t)
    v.sorted_grid(config, "correlated.rhos", non_negative=True, high=0.99, allow_empty=True)
    v.one_of(config, "correlated.variant", tuple(VARIANTS))
    v.in_range(config, "correlated.corner", 0.0, 1.0)
    if (config.correlated.rhos or config.correlated.corner > 0) and config[tasks_[0]].num_factors < 2:
        raise app.ConfigError(f"{tasks_[0]}.num_factors", "correlated factors need at least 2 factors")
    _vae(config)
    _cells(config)
