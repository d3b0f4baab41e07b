"""The asymmetric maximum-margin program  min ½‖θ‖²_Λ  s.t.  y_i f(θ; x_i) ≥ 1, solved without gradient descent.

Three solvers, each independent of the training code:
  - `linear_program`: linear predictors β·x with a subset of the coordinates penalised, a convex QP (scipy SLSQP
    from an LP-feasible start, so it is global); all coordinates penalised is the hard-margin SVM through the origin.
  - `solve_program`: any small model f(params, x) with rates Λ: scipy SLSQP (or trust-constr) with JAX gradients
    and Jacobians from several random starts; the best feasible point is kept.
  - `min_norm_point`: the hard-margin SVM's dual (the point of the convex hull of {y_i x_i} nearest 0), by
    accelerated projected gradient in JAX, so many draws run as one vmap (Cover's counting, teacher-student).
Each returns KKT residuals: stationarity ‖∇½‖θ‖²_Λ - Σ μ_i ∇(y_i f_i)‖ with μ ≥ 0 from NNLS on the active set,
primal feasibility, complementary slackness. Data that cannot be separated gives ProgramError, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize as sopt
from jax.flatten_util import ravel_pytree

from margin import quasi_homogeneous as qh


class ProgramError(ValueError):
    """The program has no solution: the data are not separable, or the margin is unbounded (degenerate Λ)."""


def separability_lp(z: np.ndarray) -> tuple[float, np.ndarray]:
    """max t s.t. z_i·β ≥ t, |β_j| ≤ 1 (HiGHS LP). Returns (t*, β*); the data are separable iff t* > 0."""
    z = np.asarray(z, np.float64)
    n, d = z.shape
    c = np.zeros(d + 1)
    c[-1] = -1.0  # maximise t
    a_ub = np.hstack([-z, np.ones((n, 1))])  # t - z·β <= 0
    bounds = [(-1.0, 1.0)] * d + [(None, 1.0)]
    res = sopt.linprog(c, A_ub=a_ub, b_ub=np.zeros(n), bounds=bounds, method="highs")
    if res.status != 0:
        raise ProgramError(f"separability LP failed: {res.message}")
    return float(res.x[-1]), res.x[:d]


def is_separable(x: np.ndarray, y: np.ndarray, tol: float = 1e-9) -> bool:
    """Whether some β has y_i β·x_i > 0 for every i (linear separability through the origin), by LP."""
    t, _ = separability_lp(np.asarray(y, np.float64)[:, None] * np.asarray(x, np.float64))
    return t > tol


def kkt_residuals(
    grad_objective: np.ndarray, constraint_jac: np.ndarray, constraint_values: np.ndarray, active_tol: float = 1e-4
) -> dict[str, Any]:
    """KKT residuals of min g(θ) s.t. c(θ) ≥ 0 at a point: μ ≥ 0 by NNLS on the active constraints.

    `grad_objective` ∇g [p], `constraint_jac` ∇c [m, p], `constraint_values` c [m] (here c_i = y_i f_i - 1).
    Returns stationarity (relative to ‖∇g‖), primal infeasibility, complementary slackness, μ and the active set.
    """
    g = np.asarray(grad_objective, np.float64)
    jac = np.asarray(constraint_jac, np.float64)
    c = np.asarray(constraint_values, np.float64)
    active = np.flatnonzero(c <= active_tol * max(1.0, float(np.max(np.abs(c)))))
    mu = np.zeros(c.shape[0])
    if active.size:
        mu_a, _ = sopt.nnls(jac[active].T, g)
        mu[active] = mu_a
    stat = float(np.linalg.norm(g - jac.T @ mu)) / max(float(np.linalg.norm(g)), 1e-12)
    return {
        "stationarity": stat,
        "primal_infeasibility": float(max(0.0, -float(np.min(c)))),
        "complementary_slackness": float(np.max(np.abs(mu * c))) if c.size else 0.0,
        "num_active": int(active.size),
        "multipliers": mu,
    }


def linear_program(x: np.ndarray, y: np.ndarray, penalized: np.ndarray | None = None) -> dict[str, Any]:
    """min ½ Σ_{j penalised} β_j²  s.t.  y_i β·x_i ≥ 1: a convex QP (SLSQP from an LP-feasible start).

    `penalized` is a boolean mask over the d coordinates (default: all, the hard-margin SVM through the origin).
    Raises ProgramError when no β separates the data, or when the unpenalised coordinates alone separate it (then
    the infimum 0 is not attained and the normalised margin is unbounded). Returns β, the objective, the margins,
    the normalised margin min_i y_i β·x_i / ‖β_pen‖ and KKT residuals.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    z = y[:, None] * x
    d = z.shape[1]
    pen = np.ones(d, bool) if penalized is None else np.asarray(penalized, bool)
    t, beta_lp = separability_lp(z)
    if t <= 1e-9:
        raise ProgramError(
            f"the data are not linearly separable through the origin (LP: best min_i y_i β·x_i = {t:.3g} with "
            "|β_j| <= 1): the max-margin program has no feasible point"
        )
    if not pen.all():
        t_free, _ = separability_lp(z[:, ~pen]) if (~pen).any() else (0.0, None)
        if t_free > 1e-9:
            raise ProgramError(
                "the unpenalised coordinates alone separate the data: the infimum of ½‖β‖²_Λ is 0, not attained "
                "(degenerate Λ: the normalised margin is unbounded)"
            )
    beta0 = beta_lp / t  # feasible: z·β0 >= 1
    res = sopt.minimize(
        lambda b: 0.5 * np.sum(np.where(pen, b, 0.0) ** 2),
        beta0,
        jac=lambda b: np.where(pen, b, 0.0),
        constraints=[{"type": "ineq", "fun": lambda b: z @ b - 1.0, "jac": lambda b: z}],
        method="SLSQP",
        options={"maxiter": 500, "ftol": 1e-14},
    )
    beta = res.x
    cons = z @ beta - 1.0
    kkt = kkt_residuals(np.where(pen, beta, 0.0), z, cons)
    norm = float(np.linalg.norm(beta[pen]))
    return {
        "beta": beta,
        "objective": 0.5 * norm**2,
        "margins": z @ beta,
        "normalized_margin": float(np.min(z @ beta)) / norm,
        "kkt": kkt,
        "success": bool(res.success),
    }


def _minimize(obj, obj_grad, cons, cons_jac, mask, t0, method: str, maxiter: int):
    """One scipy solve of min obj s.t. cons >= 0 from t0 (SLSQP or trust-constr)."""
    if method == "SLSQP":
        return sopt.minimize(
            obj,
            t0,
            jac=obj_grad,
            constraints=[{"type": "ineq", "fun": cons, "jac": cons_jac}],
            method="SLSQP",
            options={"maxiter": maxiter, "ftol": 1e-12},
        )
    if method == "trust-constr":
        return sopt.minimize(
            obj,
            t0,
            jac=obj_grad,
            hess=lambda t: np.diag(mask),
            constraints=[sopt.NonlinearConstraint(cons, 0.0, np.inf, jac=cons_jac)],
            method="trust-constr",
            options={"maxiter": maxiter, "gtol": 1e-10, "xtol": 1e-12},
        )
    raise ValueError(f"method must be 'SLSQP' or 'trust-constr', got {method!r}")


def _best(results, obj_grad, cons_jac, unravel, rates, num_starts, feasibility_tol) -> dict[str, Any]:
    """The best feasible start's solution with its KKT residuals; ProgramError if no start is feasible."""
    feasible = [r for r in results if np.min(r[2]) >= -feasibility_tol]
    if not feasible:
        worst = max(float(np.min(r[2])) for r in results)
        raise ProgramError(
            f"none of {num_starts} starts found a feasible point (best min_i y_i f_i - 1 = {worst:.3g}): the data "
            "may not be separable by this model"
        )
    best = min(feasible, key=lambda r: r[0])
    theta = best[1]
    kkt = kkt_residuals(obj_grad(theta), cons_jac(theta), best[2])
    params = unravel(jnp.asarray(theta, jnp.float32))
    return {
        "params": params,
        "direction": qh.normalize(params, rates),
        "objective": best[0],
        "margins": best[2] + 1.0,
        "normalized_margin": float(np.min(best[2] + 1.0)) / np.sqrt(2 * best[0]) ** (1.0 / qh.rate_max(rates)),
        "kkt": kkt,
        "start_objectives": [r[0] for r in results],
        "num_feasible_starts": len(feasible),
    }


def solve_program(
    f: Callable,
    init_fn: Callable[[jax.Array], Any],
    rates: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    key: jax.Array,
    num_starts: int = 8,
    method: str = "SLSQP",
    maxiter: int = 1000,
    feasibility_tol: float = 1e-6,
) -> dict[str, Any]:
    """min ½‖θ‖²_Λ s.t. y_i f(θ; x_i) ≥ 1 for a small model, by scipy (`method` SLSQP or trust-constr).

    `init_fn(key)` draws a starting point (its pytree fixes the structure); JAX supplies the gradient and the
    constraint Jacobian (float64 on the host side). The best feasible result over `num_starts` starts is returned
    with its KKT residuals, the objective of every start, and the parameters normalised along Λ's characteristic
    curve (‖·‖_Λ = 1). Raises ProgramError if no start reaches a feasible point (e.g. data this model cannot
    separate); every scipy call is bounded by `maxiter`.
    """
    x = jnp.asarray(x, jnp.float32)
    y_np = np.asarray(y)
    template = init_fn(key)
    flat0, unravel = ravel_pytree(template)
    mask, _ = ravel_pytree(qh.max_rate_mask(template, rates))
    mask = np.asarray(mask, np.float64)
    yj = jnp.asarray(y_np)

    def cons_fn(theta):
        return qh.margins(f(unravel(theta), x), yj) - 1.0

    cons_j = jax.jit(cons_fn)
    jac_j = jax.jit(jax.jacfwd(cons_fn))

    def cons(t):
        return np.asarray(cons_j(jnp.asarray(t, jnp.float32)), np.float64)

    def cons_jac(t):
        return np.asarray(jac_j(jnp.asarray(t, jnp.float32)), np.float64)

    def obj(t):
        return 0.5 * float(np.sum(mask * t**2))

    def obj_grad(t):
        return mask * t

    keys = jax.random.split(key, num_starts)
    results = []
    for k in keys:
        t0 = np.asarray(ravel_pytree(init_fn(k))[0], np.float64)
        res = _minimize(obj, obj_grad, cons, cons_jac, mask, t0, method, maxiter)
        results.append((obj(res.x), res.x, cons(res.x)))
    return _best(results, obj_grad, cons_jac, unravel, rates, num_starts, feasibility_tol)


# --- the hard-margin SVM's dual in JAX (vmappable) ---------------------------------------------------------------


def project_simplex(v: jax.Array) -> jax.Array:
    """Euclidean projection onto the probability simplex {a ≥ 0, Σa = 1} (sort-based)."""
    n = v.shape[-1]
    u = jnp.sort(v)[::-1]
    css = jnp.cumsum(u) - 1.0
    idx = jnp.arange(1, n + 1, dtype=v.dtype)
    rho = jnp.sum(u - css / idx > 0)  # the condition holds exactly for the first rho sorted entries
    theta = css[rho - 1] / rho.astype(v.dtype)
    return jnp.maximum(v - theta, 0.0)


def min_norm_point(z: jax.Array, num_iters: int = 2000) -> dict[str, jax.Array]:
    """The point w = Σ a_i z_i (a in the simplex) of conv{z_i} nearest the origin, by FISTA.

    With z_i = y_i x_i, w/‖w‖ is the hard-margin SVM direction through the origin and min_i z_i·w/‖w‖ its margin
    (Gordan/Gilbert duality): the data are separable iff some w has min_i z_i·w > 0. Returns w, the certified margin
    min_i z_i·ŵ (> 0 proves separability), the upper bound ‖w‖ on the max margin, and `separable` (certified).
    """
    zz = z @ z.T
    # the largest eigenvalue of zz (the gradient's Lipschitz constant), by power iteration
    v = jnp.ones(z.shape[0], z.dtype) / jnp.sqrt(z.shape[0])

    def power(v, _):
        w = zz @ v
        return w / (jnp.linalg.norm(w) + 1e-30), None

    v, _ = jax.lax.scan(power, v, None, length=30)
    lip = jnp.maximum(v @ zz @ v, 1e-12) * 1.05
    a0 = jnp.ones(z.shape[0], z.dtype) / z.shape[0]

    def step(carry, _):
        a, b, t = carry
        a_new = project_simplex(b - (zz @ b) / lip)
        t_new = 0.5 * (1 + jnp.sqrt(1 + 4 * t * t))
        b_new = a_new + ((t - 1) / t_new) * (a_new - a)
        return (a_new, b_new, t_new), None

    (a, _, _), _ = jax.lax.scan(step, (a0, a0, jnp.asarray(1.0, z.dtype)), None, length=num_iters)
    w = a @ z
    norm = jnp.linalg.norm(w)
    margin = jnp.min(z @ w) / jnp.maximum(norm, 1e-30)
    return {"w": w, "margin": margin, "upper_bound": norm, "separable": margin > 0, "weights": a}
