"""The sparsity exponent and the report's neural-collapse and teacher-student rules on made-up numbers."""

import numpy as np

from margin import report, summary


def test_slope_of_a_power_law():
    s = np.geomspace(10.0, 300.0, 12)
    assert abs(summary.slope(s, 3.0 * s**-1.0) + 1) < 1e-12
    assert abs(summary.slope(s, 0.2 * s**0.5) - 0.5) < 1e-12


def _nc(nc1, cos, ratio, k=10, d=18):
    return {
        "K": k,
        "d": d,
        "per_seed": {"nc1": nc1, "nc2_cos_max_dev": cos, "margin_over_etf": ratio},
    }


def _rows(mlp, control_cos):
    ufm = _nc([1e-6] * 3, [0.01] * 3, [0.995] * 3, k=4, d=6)
    ufm["mlp"] = mlp
    ufm["control"] = {"per_seed": {"nc1": [1.0] * 3, "nc2_cos_max_dev": control_cos}}
    return report._nc_rows({"neural_collapse": ufm, "gamma_monotone_fraction": 1.0})


def test_collapse_rows_need_every_seed_within_tolerance():
    good = _nc([1e-5, 2e-5, 1e-5], [0.02, 0.03, 0.04], [0.99, 0.985, 0.995])
    rows = _rows(good, [0.7, 0.6, 0.8])
    assert [r["ok"] for r in rows] == [True, True, True, True]
    # one seed off in one metric fails the row (NC1, NC2, margin above or below)
    for bad in (
        _nc([1e-5, 2e-2, 1e-5], [0.02] * 3, [0.99] * 3),
        _nc([1e-5] * 3, [0.02, 0.06, 0.02], [0.99] * 3),
        _nc([1e-5] * 3, [0.02] * 3, [0.99, 0.97, 0.99]),
        _nc([1e-5] * 3, [0.02] * 3, [0.99, 1.03, 0.99]),
    ):
        assert _rows(bad, [0.7] * 3)[1]["ok"] is False
    # a control that collapsed in one seed fails its row
    assert _rows(good, [0.7, 0.1, 0.8])[2]["ok"] is False


def test_teacher_student_rows_use_the_standard_errors():
    alpha = [1.0, 2.0]
    t = {"N": 100, "draws": 16, "alpha": alpha}
    for name in ("hebb", "max_margin", "gibbs", "bayes"):
        t[name], t[f"{name}_se"], t[f"{name}_theory"] = [0.30, 0.20], [0.005, 0.005], [0.30, 0.20]
        t[f"{name}_max_abs_dev"] = 0.0
    t["gibbs"] = [0.30, 0.23]  # 0.03 off: more than 3 s.e. + 0.01
    results = {
        "perceptron": {"cover": {"N": 10, "max_abs_z": 1.0}, "teacher_student": t},
        "committee": {
            "K": 2,
            "N": 500,
            "plateau_alpha": 25.0,
            "plateau_sim": 0.021,
            "plateau_sim_se": 0.0003,
            "plateau_ode": 0.0207,
            "escape_alpha_sim": [70.0, 80.0],
            "escape_alpha_ode": [75.0, 75.0],
            "final_sim": 1e-5,
            "final_ode": 1e-5,
        },
    }
    ok = {r["name"].split(" (")[0]: r["ok"] for r in report._statmech_rows(results)}
    assert ok["teacher-student gibbs"] is False
    assert ok["teacher-student bayes"] is True and ok["teacher-student hebb"] is True
