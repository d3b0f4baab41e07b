"""Mutants of disentangle/: the metrics (disentanglement_lib's protocol), Eq. 2's terms, the factor samplers, the
training step's data stream, the scoring on independent factors and the report's checks."""

from tests.mutants.spec import Mutant

_M = "tests/disentangle/test_metrics.py"
MUTANTS = [
    Mutant(
        file="disentangle/metrics.py",
        old="out[:, j] = np.digitize(x[:, j], edges[:-1]) - 1",
        new="out[:, j] = np.digitize(x[:, j], edges[1:-1], right=True)",
        tests=(
            f"{_M}::test_mig_matches_disentanglement_lib_on_discrete_factors",
            f"{_M}::test_hand_computed_two_bin_case",
        ),
        why="right-closed bins: a value on an interior edge lands in the lower bin (np.histogram's are left-closed)",
    ),
    Mutant(
        file="disentangle/metrics.py",
        old="if factor_bins is None or values.size <= factor_bins:",
        new="if values.size <= NUM_BINS:",
        tests=(f"{_M}::test_mig_matches_disentanglement_lib_on_continuous_factors",),
        why="continuous factors silently binned (the binning is no longer the caller's explicit choice)",
    ),
    Mutant(
        file="disentangle/metrics.py",
        old="    second = top[1] if top.shape[0] > 1 else np.zeros_like(top[0])",
        new="    second = top[-1] if top.shape[0] > 1 else np.zeros_like(top[0])",
        tests=(
            f"{_M}::test_duplicated_latent_separates_the_metrics",
            f"{_M}::test_mig_matches_disentanglement_lib_on_discrete_factors",
        ),
        why="MIG's gap taken to the least informative latent instead of the second most informative",
    ),
    Mutant(
        file="disentangle/metrics.py",
        old="    return (share - 1.0 / k) / (1.0 - 1.0 / k)",
        new="    return share",
        tests=(f"{_M}::test_hand_computed_two_bin_case", f"{_M}::test_rotation_of_independent_factors_scores_low"),
        why="MIR's max share not rescaled from [1/F, 1] to [0, 1]",
    ),
    Mutant(
        file="disentangle/metrics.py",
        old="    active = code_bins.min(axis=0) < code_bins.max(axis=0)  # a constant latent",
        new="    active = codes.std(axis=0) > 0.05 * codes.std(axis=0).max()  # a constant latent",
        tests=(f"{_M}::test_mig_and_mir_do_not_change_when_one_latent_is_rescaled",),
        why="the scale-dependent dead-latent rule back as the default: a rescaled latent stops counting",
    ),
    Mutant(
        file="disentangle/summary.py",
        old='ind = dm.mutual_information(out["code_independent"], out["factors_independent"], **kw)',
        new='ind = dm.mutual_information(out["code"], out["factors"], **kw)',
        tests=(f"{_M}::test_correlated_factors_are_also_scored_on_independent_factors",),
        why="the 'on independent factors' score computed on the correlated training factors again",
    ),
    Mutant(
        file="disentangle/losses.py",
        old="return jnp.mean(jnp.sum(jnp.maximum(-a, 0.0), axis=-1))",
        new="return jnp.mean(jnp.sum(jnp.maximum(a, 0.0), axis=-1))",
        tests=(
            "tests/disentangle/test_losses_theory.py::test_loss_terms_match_hand_computed_values",
            "tests/disentangle/test_train.py::test_constrained_linear_autoencoder_disentangles_and_unconstrained_does_not",
        ),
        why="the nonnegativity penalty's sign flipped: it penalises positive activity",
    ),
    Mutant(
        file="disentangle/losses.py",
        old='        + hp["beta_activity"] * terms["activity"]',
        new='        + hp["beta_weight"] * terms["activity"]',
        tests=(
            "tests/disentangle/test_losses_theory.py::test_loss_terms_match_hand_computed_values",
            "tests/disentangle/test_train.py::test_constrained_linear_autoencoder_disentangles_and_unconstrained_does_not",
        ),
        why="the activity energy weighted by the weight-energy coefficient",
    ),
    Mutant(
        file="disentangle/train.py",
        old="fn = lambda p: _step_loss(cfg, p, hp, task, shared, jax.random.fold_in(data_key, t))",
        new="fn = lambda p: _step_loss(cfg, p, hp, task, shared, data_key)",
        tests=("tests/disentangle/test_train.py::test_chunks_continue_from_their_start_step",),
        why="the same minibatch at every step (the step index not folded into the data key)",
    ),
    Mutant(
        file="disentangle/tasks.py",
        old="    t = 1.0 - jnp.sqrt(1.0 - 2.0 * q * (w - w * w / 2.0))",
        new="    t = q * w",
        tests=("tests/disentangle/test_losses_theory.py::test_corner_cut_support_is_the_uniform_band",),
        why="the band's offset drawn uniformly instead of with density 1 - |d|: not uniform on the band",
    ),
    Mutant(
        file="disentangle/tasks.py",
        old="    copy = jax.random.uniform(k_c, (n, num_factors)) < p",
        new="    copy = jax.random.uniform(k_c, (n, num_factors)) < jnp.asarray(rho)",
        tests=("tests/disentangle/test_losses_theory.py::test_correlated_factors_keep_uniform_marginals",),
        why="copy probability rho instead of sqrt(rho): pairwise correlation rho^2",
    ),
    Mutant(
        file="disentangle/report.py",
        old="                        e < full - ENTANGLING_MARGIN))  # fmt: skip",
        new="                        e < full + ENTANGLING_MARGIN))  # fmt: skip",
        tests=("tests/disentangle/test_experiment.py::test_report_passes_the_paper_pattern_and_fails_its_opposite",),
        why="the entangling check passes when the corner-cut code is as disentangled as the full-support one",
    ),
]
