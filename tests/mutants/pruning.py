"""Mutants of pruning/: the IMP protocol (rewind step, optimiser reset, barrier partner, BatchNorm rewind), the
pruning count, the barrier's chord."""

from tests.mutants.spec import Mutant

MUTANTS = [
    Mutant(
        file="pruning/imp.py",
        old='start = jnp.where((level == 0) | (hp["mode"] == 1), 0, rs)',
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
]
