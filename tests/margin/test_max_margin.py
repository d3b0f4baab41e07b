"""The max-margin programs against closed forms and against each other; non-separable data fails fast and clearly."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from margin import max_margin as mm
from margin import models, toys


def test_svm_closed_form_two_points():
    # z = y x: (2, 0) and (0, 1): the hard-margin SVM is β = (1/2, 1) (both support vectors), margin 1/‖β‖
    x = np.array([[2.0, 0.0], [0.0, -1.0]])
    y = np.array([1.0, -1.0])
    res = mm.linear_program(x, y)
    np.testing.assert_allclose(res["beta"], [0.5, 1.0], atol=1e-7)
    np.testing.assert_allclose(res["normalized_margin"], 1 / np.sqrt(1.25), rtol=1e-7)
    assert res["kkt"]["stationarity"] < 1e-8 and res["kkt"]["num_active"] == 2


def test_asymmetric_program_closed_form():
    # min ½w² s.t. w + s ≥ 1, 3w - 0.5s ≥ 1 (s unpenalised): the vertex w = 3/7, s = 4/7
    z = np.array([[1.0, 1.0], [3.0, -0.5]])
    res = mm.linear_program(z, np.ones(2), penalized=np.array([True, False]))
    np.testing.assert_allclose(res["beta"], [3 / 7, 4 / 7], atol=1e-7)
    assert res["kkt"]["stationarity"] < 1e-7


def test_min_norm_point_matches_qp():
    x, y = toys.toy_data(0, 16)
    res = mm.linear_program(x, y)
    out = mm.min_norm_point(jnp.asarray(y[:, None] * x, jnp.float32), num_iters=3000)
    w = np.asarray(out["w"])
    np.testing.assert_allclose(w / np.linalg.norm(w), res["beta"] / np.linalg.norm(res["beta"]), atol=1e-4)
    np.testing.assert_allclose(float(out["margin"]), res["normalized_margin"], rtol=1e-4)
    assert bool(out["separable"])
    v = mm.project_simplex(jnp.array([0.5, 2.0, -1.0, 0.6]))
    np.testing.assert_allclose(v, [0.0, 1.0, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(mm.project_simplex(jnp.array([0.2, 0.3, 0.1])), [0.3333333, 0.4333333, 0.2333333])


def test_nonconvex_solver_matches_convex_program():
    # f = w x1 + u v x2 (Λ = (1, 1/2, 1/2)): solved in (w, u, v) by SLSQP, it must equal the convex QP in (w, s=uv)
    x, y = toys.toy_data(0, 12)
    qp = mm.linear_program(x, y, penalized=np.array([True, False]))
    res = mm.solve_program(
        models.toy_quasi_homogeneous,
        toys.toy_init("toy_quasi_homogeneous"),
        models.TOY_RATES,
        x,
        y,
        key=jax.random.key(0),
        num_starts=3,
    )
    p = res["params"]
    np.testing.assert_allclose([p["w"], p["u"] * p["v"]], qp["beta"], rtol=1e-4)
    np.testing.assert_allclose(res["objective"], qp["objective"], rtol=1e-5)
    assert res["kkt"]["stationarity"] < 1e-4 and res["kkt"]["primal_infeasibility"] < 1e-5
    # the homogeneous toy through the same solver is the SVM
    res = mm.solve_program(
        models.linear, toys.toy_init("linear"), models.LINEAR_RATES, x, y, key=jax.random.key(1), num_starts=2
    )
    np.testing.assert_allclose(res["params"]["w"], mm.linear_program(x, y)["beta"], rtol=1e-4)


def test_non_separable_data_fails_fast_with_a_clear_message():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = np.sign(x[:, 0] * x[:, 1])  # XOR labels: no line through the origin
    t = time.time()
    with pytest.raises(mm.ProgramError, match="not linearly separable"):
        mm.linear_program(x, y)
    with pytest.raises(mm.ProgramError, match="feasible point"):
        mm.solve_program(
            models.linear,
            toys.toy_init("linear"),
            models.LINEAR_RATES,
            x,
            y,
            key=jax.random.key(0),
            num_starts=2,
            maxiter=200,
        )
    assert time.time() - t < 30
    out = mm.min_norm_point(jnp.asarray(y[:, None] * x, jnp.float32), num_iters=500)
    assert not bool(out["separable"]) and float(out["upper_bound"]) < 0.05
    # degenerate Λ: the unpenalised coordinate alone separates -> margin unbounded, said so
    z = np.array([[0.3, 1.0], [-0.2, 2.0]])
    with pytest.raises(mm.ProgramError, match="unpenalised coordinates alone"):
        mm.linear_program(z, np.ones(2), penalized=np.array([True, False]))
