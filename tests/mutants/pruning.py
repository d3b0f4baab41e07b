"""Mutants of pruning/: the IMP protocol (rewind step, optimiser reset, barrier partner, BatchNorm rewind), the
pruning count, the barrier's chord."""

from tests.mutants.spec import Mutant

MUTANTS = [
    Mutant(
        file="pruning/imp.py",
        old="start = jnp.where(level == 0, 0, rs)",
        new="start = jnp.int32(0)",
        tests=("tests/pruning/test_imp_protocol.py::test_a_rewound_level_holds_still_before_step_k_and_trains_from_k",),
        why="rewound runs train from step 0 instead of the rewind step k",
    ),
    Mutant(
        file="pruning/imp.py",
        old='state["opt"] = masks.set_masks(optimizer(setup, hp["weight_decay"]).init(start), new)',
        new='state["opt"] = masks.set_masks(state["opt"], new)',
        tests=(
            "tests/pruning/test_imp_protocol.py::test_the_rewind_resets_momentum_and_sets_survivors_to_w_k",
            "tests/pruning/test_imp_protocol.py::test_the_rewound_optimiser_state_is_a_fresh_one",
        ),
        why="momentum (and the rest of the optimiser state) not reset at the rewind",
    ),
    Mutant(
        file="pruning/imp.py",
        old='state["w_prev"] = params',
        new='state["w_prev"] = start',
        tests=("tests/pruning/test_imp_protocol.py::test_the_successive_barrier_compares_the_two_solutions",),
        why="w_prev set to the rewind point: the successive-level barrier is measured against the wrong network",
    ),
    Mutant(
        file="pruning/imp.py",
        old='start_stats = pick(state["s_rewind"], fresh_stats, state["stats"])',
        new='start_stats = state["stats"]',
        tests=(
            "tests/pruning/test_imp_protocol.py::test_batchnorm_statistics_are_saved_at_k_and_rewound_with_the_weights",
        ),
        why="BatchNorm running statistics not rewound with the weights (the solution's statistics kept)",
    ),
    Mutant(
        file="pruning/masks.py",
        old="return alive & (rank >= k)",
        new="return alive & (rank > k)",
        tests=("tests/pruning/test_masks.py",),
        why="off-by-one in the pruned count: one weight too many removed per pool",
    ),
    Mutant(
        file="pruning/lmc.py",
        old="chord = a * values[-1] + (1.0 - a) * values[0]",
        new="chord = a * values[0] + (1.0 - a) * values[-1]",
        tests=("tests/pruning/test_lmc_hessian.py::test_barrier_of_a_cubic_equals_its_closed_form",),
        why="the chord's ends swapped (alpha = 1 is network a)",
    ),
    Mutant(
        file="pruning/imp.py",
        old="both = jax.tree.map(lambda a, b, c: a & ~b & ~c, m, nxt, at_k)",
        new="both = jax.tree.map(lambda a, b, c: a & ~b & c, m, nxt, at_k)",
        tests=(
            "tests/pruning/test_imp_protocol.py::test_rank_overlap_counts_the_next_pruned_weights_that_were_small_at_w_k",
        ),
        why="rank overlap counted against the weights kept at w_k instead of the smallest ones",
    ),
    Mutant(
        file="pruning/imp.py",
        old='new = jax.tree.map(lambda a, b: jnp.where(hp["shuffle"] > 0, b, a), new, shuffled)',
        new='new = jax.tree.map(lambda a, b: jnp.where(hp["shuffle"] > 0, a, b), new, shuffled)',
        tests=("tests/pruning/test_imp.py::test_transition_rewinds_each_kind_to_its_starting_point",),
        why="the per-layer shuffle applied to IMP (and not to the random-pruning control)",
    ),
    Mutant(
        file="pruning/hessian.py",
        old="terms = np.where(np.isinf(r2), 1.0, r2 / (big_r2 + np.where(np.isinf(r2), 0.0, r2)))",
        new="terms = np.where(np.isinf(r2), 0.0, r2 / (big_r2 + np.where(np.isinf(r2), 0.0, r2)))",
        tests=("tests/pruning/test_lmc_hessian.py::test_gaussian_width_limits_and_the_bound",),
        why="flat directions (eigenvalue <= 0) dropped from the Gaussian width under the 'flat' reading",
    ),
    Mutant(
        file="pruning/summary.py",
        old='"match_barrier": int(np.sum(match & ~flat)),',
        new='"match_barrier": int(np.sum(~match & flat)),',
        tests=("tests/pruning/test_experiment.py::test_summaries_on_known_histories",),
        why="the confusion table's off-diagonal cells swapped",
    ),
    Mutant(
        file="pruning/hessian.py",
        old="quad.append(float(0.5 * d @ hess @ d))",
        new="quad.append(float(d @ hess @ d))",
        tests=(
            "tests/pruning/test_lmc_hessian.py::"
            "test_quadratic_check_is_exact_on_a_quadratic_and_misses_exactly_the_cubic_term",
        ),
        why="the quadratic model's loss rise without its factor 1/2",
    ),
    Mutant(
        file="pruning/flatness.py",
        old="lr_drops=tuple(max(d - start, 0) for d in setup.lr_drops)",
        new="lr_drops=setup.lr_drops",
        tests=(
            "tests/pruning/test_lmc_hessian.py::test_the_flatness_tail_setup_keeps_the_schedule_of_the_steps_it_covers",
        ),
        why="the subspace training's tail keeps the unshifted rate drops (trains at the large rate)",
    ),
    Mutant(
        file="pruning/experiment.py",
        old="prefix = dataclasses.replace(setup, steps=k_max + 1, num_levels=1)",
        new="prefix = dataclasses.replace(setup, steps=k_max, num_levels=1)",
        tests=("tests/pruning/test_imp.py::test_rewind_points_from_a_prefix_equal_those_of_a_whole_dense_level",),
        why="the prefix stops one step short: w_k at the largest k is never saved (stays w_0)",
    ),
]
