"""Mutants of spectra: the Dozier-Silverstein solver, BBP, the overlaps and outliers, and the RIE / Gavish-Donoho
denoisers."""

from tests.mutants.spec import Mutant

T = "tests/spectra/"

MUTANTS = [
    Mutant(
        file="spectra/theory.py",
        old="above = th > c**0.25",
        new="above = th > c**0.5",
        tests=(T + "test_known_answers.py::test_bbp_below_threshold_between_sqrt_c_and_fourth_root",),
        why="BBP threshold at sqrt(c) instead of c^(1/4)",
    ),
    Mutant(
        file="spectra/denoise.py",
        old="xi_bulk = np.real(f - 1j * eps * fp)",
        new="xi_bulk = np.real(f + 1j * eps * fp)",
        tests=(T + "test_known_answers.py::test_rie_bulk_shrinkage_follows_the_theory_xi",),
        why="RIE bias correction f - i eps f' with the wrong sign",
    ),
    Mutant(
        file="spectra/theory.py",
        old="top = np.where(above, np.sqrt((1 + safe) * (c + safe)) / np.sqrt(safe), 1.0 + math.sqrt(c))",
        new="top = np.where(above, np.sqrt((1 + safe) * (c + safe)) / safe, 1.0 + math.sqrt(c))",
        tests=(T + "test_known_answers.py::test_bbp_above_threshold_hand_values",),
        why="BBP outlier location divided by theta^2 instead of theta",
    ),
    Mutant(
        file="spectra/theory.py",
        old="    g = 1.0 / (t / a - a * z + 1.0 - c)\n    f = m - jnp.sum(w * g)",
        new="    g = 1.0 / (t / a - a * z + 1.0 + c)\n    f = m - jnp.sum(w * g)",
        tests=(T + "test_theory.py::test_marchenko_pastur_density_and_edges",),
        why="Dozier-Silverstein equation with 1 + c for 1 - c",
    ),
    Mutant(
        file="spectra/theory.py",
        old="    at = a - (1.0 - c) / z\n    tt = 1.0 / (t[None] / at - z * a)",
        new="    at = a + (1.0 - c) / z\n    tt = 1.0 / (t[None] / at - z * a)",
        tests=(T + "test_theory.py::test_esm_overlaps_against_simulation_and_normalisation",),
        why="right-overlap resolvent A~ = A + (1 - c)/z (sign)",
    ),
    Mutant(
        file="spectra/theory.py",
        old="fp = -(t0 / a**2 + lam0) * c * dm - a",
        new="fp = -(t0 / a**2 + lam0) * c * dm + a",
        tests=(T + "test_theory.py::test_bbp_closed_form_matches_general_outlier_solver",),
        why="outlier overlap: f'(lambda0) with the wrong sign of its -A term",
    ),
    Mutant(
        file="spectra/denoise.py",
        old="xi_iso = y - (1 - c) / ys + 2 * c * g_loo",
        new="xi_iso = y - (1 - c) / ys + c * g_loo",
        tests=(T + "test_denoise.py::test_rie_matches_gavish_donoho_for_a_rank_one_spike",),
        why="RIE on isolated outliers without the factor 2 in 2 c y m(y^2)",
    ),
    Mutant(
        file="spectra/denoise.py",
        old="cov_bulk = np.imag(a * (1 - bb * m)) / np.imag(m)",
        new="cov_bulk = np.imag(a * (1 + bb * m)) / np.imag(m)",
        tests=(T + "test_denoise.py::test_rie_within_a_few_percent_of_oracle_on_extensive_signal",),
        why="RIE covariance Im[A (1 + B m)] (sign of B m)",
    ),
    Mutant(
        file="spectra/noise.py",
        old="return math.sqrt(2 * (c + 1) + 8 * c / (c + 1 + math.sqrt(c * c + 14 * c + 1)))",
        new="return math.sqrt(2 * (c + 1) + 4 * c / (c + 1 + math.sqrt(c * c + 14 * c + 1)))",
        tests=(T + "test_denoise.py::test_gavish_donoho_constants",),
        why="Gavish-Donoho hard threshold lambda*(c) with 4c for 8c",
    ),
    Mutant(
        file="spectra/denoise.py",
        old="return np.where(above, np.sqrt(np.maximum((ys**2 - c - 1) ** 2 - 4 * c, 0.0)) / ys, 0.0)",
        new="return np.where(above, np.sqrt(np.maximum((ys**2 - c - 1) ** 2 - 4 * c, 0.0)) / ys**2, 0.0)",
        tests=(T + "test_denoise.py::test_rie_matches_gavish_donoho_for_a_rank_one_spike",),
        why="Gavish-Donoho shrinker divided by y^2 instead of y",
    ),
]
