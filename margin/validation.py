"""Config checks of margin (common.validate): each raises app.ConfigError naming the field; nothing is written."""

from __future__ import annotations

import ml_collections

from common import app
from common import validate as v
from margin import train


def validate(config: ml_collections.ConfigDict) -> None:
    """Config checks (common.validate); raises app.ConfigError naming the field."""
    for part in ("toy", "nets", "nc_ufm", "nc_mlp"):
        v.positive_int(config, f"{part}.num_seeds", f"{part}.num_steps", f"{part}.chunk_steps", f"{part}.log_every")
        v.positive(config, f"{part}.lr", f"{part}.max_lr")
        v.one_of(config, f"{part}.step", train.STEPS)
        v.divides(config, f"{part}.chunk_steps", f"{part}.num_steps")
        v.divides(config, f"{part}.log_every", f"{part}.chunk_steps")
    v.one_of(config, "toy.loss", ("exp", "logistic"))
    v.one_of(config, "nets.loss", ("exp", "logistic"))
    v.one_of(config, "nc_ufm.loss", ("exp", "cross_entropy"))
    v.one_of(config, "nc_mlp.loss", ("exp", "cross_entropy"))
    v.positive_int(config, "toy.num_points", "toy.program_starts", "nets.hidden", "nets.num_train", "nets.num_test")
    v.positive_int(config, "nets.pgd_steps", "nc_ufm.per_class", "nc_mlp.per_class", "nc_mlp.dim")
    v.non_negative_int(config, "toy.data_seed", "nets.data_seed")
    if config.toy.num_points < 4:
        raise app.ConfigError("toy.num_points", f"must be >= 4 (two clusters), got {config.toy.num_points}")
    v.positive(config, "toy.init_scale", "nets.init_scale", "nets.radius")
    v.non_negative(config, "nets.bias_scale")
    v.non_negative(config, "toy.noise", "nets.noise")
    v.sorted_grid(config, "nets.eps", non_negative=True)
    v.integer(config, "nc_ufm.classes", "nc_ufm.dim")
    if config.nc_ufm.classes < 2:
        raise app.ConfigError("nc_ufm.classes", f"must be >= 2, got {config.nc_ufm.classes}")
    if config.nc_ufm.dim < config.nc_ufm.classes - 1:
        raise app.ConfigError("nc_ufm.dim", f"must be >= classes - 1 = {config.nc_ufm.classes - 1} (a simplex ETF)")
    if config.nc_mlp.dim < 9:
        raise app.ConfigError("nc_mlp.dim", "must be >= 9 (a simplex ETF of the 10 digit classes)")
    v.positive_int(config, "nc_mlp.hidden")  # widths, any order
    v.one_of(config, "nc_mlp.dataset", ("digits", "mnist"))
    v.boolean(config, "nc_mlp.allow_fallback")
    v.positive_int(config, "perceptron.cover_n", "perceptron.cover_draws", "perceptron.ts_n", "perceptron.ts_draws")
    v.positive_int(config, "perceptron.iters", "perceptron.chain_iters")
    v.non_negative_int(config, "perceptron.chain_burn_in")
    if config.perceptron.chain_burn_in >= config.perceptron.chain_iters:
        raise app.ConfigError("perceptron.chain_burn_in", "must be below perceptron.chain_iters")
    c = config.committee
    v.positive_int(config, "committee.student_units", "committee.teacher_units", "committee.n", "committee.num_seeds")
    v.positive_int(config, "committee.records")
    v.positive(config, "committee.lr", "committee.alpha_max", "committee.init_std", "committee.d_alpha")
    v.in_range(config, "committee.plateau_alpha", 0.0, c.alpha_max)
    v.in_range(config, "nets.sparsity_fit_from", 0.0, 0.9)
    v.sorted_grid(config, "perceptron.cover_p", kind=int, positive=True)
    v.sorted_grid(config, "perceptron.ts_alphas", positive=True)
