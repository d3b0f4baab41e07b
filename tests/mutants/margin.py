"""margin's mutants: realistic bugs in its headline computations and the tests that catch them."""

from tests.mutants.spec import Mutant

T = "tests/margin/"

MUTANTS = [
    Mutant(
        file="margin/neural_collapse.py",
        old="return math.sqrt(num_classes * dim) / (num_classes - 1)",
        new="return math.sqrt(num_classes * dim) / num_classes",
        tests=(
            T + "test_perceptron_and_collapse.py::test_etf_margin_formula_and_metrics_at_the_etf",
            T + "test_perceptron_and_collapse.py::test_unconstrained_features_reach_the_etf_by_training",
        ),
        why="the simplex-ETF margin divided by K instead of K - 1",
    ),
    Mutant(
        file="margin/neural_collapse.py",
        old="jnp.abs(cos + 1.0 / (k - 1))",
        new="jnp.abs(cos + 1.0 / k)",
        tests=(T + "test_perceptron_and_collapse.py::test_etf_margin_formula_and_metrics_at_the_etf",),
        why="NC2 measured against the wrong equiangular cosine -1/K",
    ),
    Mutant(
        file="margin/teacher_student.py",
        old="error_from_overlap(math.sqrt(gibbs_overlap(float(a))))",
        new="error_from_overlap(gibbs_overlap(float(a)))",
        tests=(T + "test_statmech.py::test_teacher_student_theory_limits",),
        why="the Bayes student given the Gibbs overlap instead of its square root",
    ),
    Mutant(
        file="margin/teacher_student.py",
        old="np.exp(-r * _Z**2 / 2 - log_h)",
        new="np.exp(-r * _Z**2 - log_h)",
        tests=(
            T + "test_statmech.py::test_teacher_student_theory_limits",
            T + "test_statmech.py::test_gibbs_overlap_solves_its_saddle_point_equation",
        ),
        why="the Gibbs saddle-point integrand missing the 1/2 in exp(-R t²/2)",
    ),
    Mutant(
        file="margin/teacher_student.py",
        old="v_new - 2 * (z[mu] @ v_new) / sq[mu] * z[mu]",
        new="v_new - (z[mu] @ v_new) / sq[mu] * z[mu]",
        tests=(T + "test_statmech.py::test_exact_hmc_is_uniform_on_a_wedge",),
        why="the HMC bounce projects the velocity onto the wall instead of reflecting it",
    ),
    Mutant(
        file="margin/committee.py",
        old="(cbc * caa - cab * cac)",
        new="(cbc * caa + cab * cac)",
        tests=(T + "test_statmech.py::test_committee_gaussian_averages_match_monte_carlo",),
        why="a sign error in the closed form of <g'(u_a) u_b g(u_c)>",
    ),
    Mutant(
        file="margin/committee.py",
        old="return j + (eta / jnp.sqrt(float(n))) * delta[:, None] * x[None, :], None",
        new="return j + (eta / float(n)) * delta[:, None] * x[None, :], None",
        tests=(T + "test_statmech.py::test_committee_online_sgd_follows_the_odes",),
        why="online SGD's step scaled by 1/N instead of 1/sqrt(N) (the ODE's time α = steps/N no longer matches)",
    ),
    Mutant(
        file="margin/rates.py",
        old="or np.all(val == 0))",
        new="or np.all(val == 1))",
        tests=(T + "test_rates_traced.py::test_traced_rates_equal_the_structural_rule",),
        why="the literal 0 of ReLU's max(x, 0) treated as a rate-0 operand, so every ReLU input is forced to rate 0",
    ),
    Mutant(
        file="margin/report.py",
        old='max(ps["nc1"]) <= NC1_TOL',
        new='min(ps["nc1"]) <= NC1_TOL',
        tests=(T + "test_summary_report.py::test_collapse_rows_need_every_seed_within_tolerance",),
        why="the neural-collapse check passes when any one seed collapses instead of every seed",
    ),
    Mutant(
        file="margin/quasi_homogeneous.py",
        old="return jnp.sqrt(sum(jax.tree.leaves(sq)))",
        new="return sum(jax.tree.leaves(sq))",
        tests=(T + "test_quasi_homogeneous.py::test_seminorm_margin_and_normalisation_invariances",),
        why="the Λ-seminorm returned squared (no square root)",
    ),
]
