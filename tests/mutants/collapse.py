"""Mutants of collapse's theory: invariant-set detection and extraction, the attractivity conditions and the
teacher-student soft threshold (the training and experiment modules are covered by their own list)."""

from tests.mutants.spec import Mutant

T = "tests/collapse/"

MUTANTS = [
    Mutant(
        file="collapse/invariant_sets.py",
        old="members = np.flatnonzero(close[i] & ~assigned)",
        new="members = np.flatnonzero(close[i])",
        tests=(T + "test_invariant_sets_known.py::test_groups_partition_the_neurons_at_0_30_15_degrees",),
        why="identical groups: a neuron already grouped joins a later group too (groups overlap)",
    ),
    Mutant(
        file="collapse/invariant_sets.py",
        old="return norms < threshold * top",
        new="return norms <= threshold * top",
        tests=(T + "test_invariant_sets_known.py::test_vanishing_is_strictly_below_a_tenth_of_the_largest_norm",),
        why="vanishing: <= for < at the paper's 0.1 threshold",
    ),
    Mutant(
        file="collapse/invariant_sets.py",
        old="num = 2.0 * np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)",
        new="num = np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)",
        tests=(T + "test_invariant_sets_known.py::test_relative_distance_of_unit_vectors_is_two_minus_two_cosine",),
        why="relative distance without the factor 2",
    ),
    Mutant(
        file="collapse/invariant_sets.py",
        old="return np.stack([w_next[list(g)].sum(axis=0) for g in groups], axis=0)",
        new="return np.stack([w_next[list(g)].mean(axis=0) for g in groups], axis=0)",
        tests=(T + "test_invariant_sets_known.py::test_extraction_of_a_hand_built_network_sums_the_outgoing_weights",),
        why="merged neuron's outgoing weights averaged instead of summed over its group",
    ),
    Mutant(
        file="collapse/attractivity.py",
        old="return float(np.sqrt(-2.0 * curv / slope**2))",
        new="return float(np.sqrt(-curv / slope**2))",
        tests=(T + "test_attractivity.py::test_quartic_critical_noise_is_sqrt_3",),
        why="critical noise without the factor 2 (zeta_c = sqrt(mu) instead of sqrt(2 mu))",
    ),
    Mutant(
        file="collapse/attractivity.py",
        old="return float(curv + 0.5 * d2)",
        new="return float(curv + d2)",
        tests=(T + "test_attractivity.py::test_quartic_critical_noise_is_sqrt_3",),
        why="1-D margin L'' + D'' instead of L'' + D''/2",
    ),
    Mutant(
        file="collapse/attractivity.py",
        old="return float((np.var(qh) + label) / batch_size)",
        new="return float(np.var(qh) + label)",
        tests=(T + "test_attractivity.py::test_sgd_noise_curvature_matches_monte_carlo",),
        why="SGD noise curvature not divided by the batch size",
    ),
    Mutant(
        file="collapse/attractivity.py",
        old='return float("inf") if s == 0 else float(-2.0 * h / s)',
        new='return float("inf") if s == 0 else float(-h / s)',
        tests=(T + "test_attractivity.py::test_single_neuron_closed_form_equals_generic_curvature_condition",),
        why="critical learning rate -h / s instead of -2 h / s",
    ),
    Mutant(
        file="collapse/attractivity.py",
        old="z = z - lr * (j @ z)",
        new="z = z + lr * (j @ z)",
        tests=(T + "test_attractivity_known.py::test_noiseless_exponent_is_the_log_of_the_top_multiplier",),
        why="linearised SGD step with the wrong sign (gradient ascent)",
    ),
    Mutant(
        file="collapse/exit_problems.py",
        old="k = -2.0 * drift / diffusion",
        new="k = -drift / diffusion",
        tests=(T + "test_attractivity.py::test_quartic_exit_probability_matches_the_gamblers_ruin_closed_form",),
        why="gambler's-ruin exponent without the factor 2",
    ),
    Mutant(
        file="collapse/teacher_student.py",
        old="se = s - rate * sigma**2 / 2.0",
        new="se = s - rate * sigma**2",
        tests=(T + "test_teacher_student.py::test_mean_field_curve_follows_the_noisy_mean_above_threshold",),
        why="mean-field flow: Ito shift eta sigma^2 instead of eta sigma^2 / 2",
    ),
    Mutant(
        file="collapse/teacher_student.py",
        old="return np.maximum(np.asarray(s) - eta * sigma**2 / 2.0, 0.0)",
        new="return np.maximum(np.asarray(s) - eta * sigma / 2.0, 0.0)",
        tests=(T + "test_teacher_student.py::test_time_average_is_the_soft_threshold",),
        why="soft threshold with sigma for sigma^2",
    ),
    Mutant(
        file="collapse/teacher_student.py",
        old="rate = jnp.where(t < drop, eta, eta * drop_factor)",
        new="rate = jnp.where(t < drop, eta * drop_factor, eta)",
        tests=(T + "test_teacher_student.py::test_mean_field_curve_matches_noiseless_gd_and_the_recorded_history",),
        why="learning-rate drop applied before the drop step instead of after",
    ),
    Mutant(
        file="collapse/teacher_student.py",
        old="alive = np.asarray(s) > eta * sigma**2 / 2.0",
        new="alive = np.asarray(s) > eta * drop_factor * sigma**2 / 2.0",
        tests=(T + "test_teacher_student.py::test_theory_products_and_collapsed_count",),
        why="collapsed modes judged at the low (dropped) rate's threshold",
    ),
]
