"""Λ of any JAX model from its computation graph: `infer_rates_traced(f, params, x)`.

The model is traced (`jax.make_jaxpr`) with one unknown rate λ_j per parameter leaf; every intermediate array gets a
scaling rate that is a linear function c·λ (inputs and constants: 0), propagated primitive by primitive:
  - products add rates (mul, dot_general, conv_general_dilated), a quotient subtracts them, x^k multiplies by k,
    sqrt / rsqrt by ±1/2;
  - sums, maxima, selections and concatenations need equal rates on their operands (a constraint), an exact zero
    (zero padding, ReLU's 0) matches any rate; linear reshuffles and reductions (reshape, transpose, sums and means,
    average and max pooling, slicing) keep the rate;
  - anything else (exp, tanh, and `var + eps` inside a normalisation) needs its input at rate 0: this is how the
    parameters that feed a BatchNorm or LayerNorm get rate 0 and its output restarts at rate 0;
  - calls (jit, custom_jvp like ReLU, custom_vjp) are followed inside. Only the operations the output depends on
    constrain (running-statistics updates do not).
The output rate must be 1 and every λ_j ≥ 0. The solutions form an affine set; the one returned minimises Σ λ_j² over
the leaves that enter as factors (weights, kernels, scales), the leaves that enter only additively (biases) taking
what the constraints give them. This reproduces Λ = I/L for a homogeneous L-layer net, a bias's summed rate of the
weights before it, rate 0 in a residual branch's weights, and rate 0 for everything that feeds a normalisation.
The result is a Λ consistent with the graph; `quasi_homogeneous.check_rates` verifies the scaling identity itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import scipy.optimize as sopt
from jax.extend import core as jcore

_KEEP = {
    "neg", "reshape", "broadcast_in_dim", "transpose", "squeeze", "expand_dims", "convert_element_type", "copy",
    "copy_p", "reduce_sum", "reduce_max", "reduce_min", "reduce_window_sum", "reduce_window_max", "cumsum", "slice",
    "dynamic_slice", "gather", "rev", "abs", "stop_gradient", "reduce_precision", "real", "sort", "argsort",
}  # fmt: skip
_EQUAL = {"add", "sub", "max", "min", "add_any", "concatenate", "pad", "select_n", "clamp", "dynamic_update_slice"}
_SUM = {"mul", "dot_general", "conv_general_dilated"}
_COMPARE = {"gt", "ge", "lt", "le", "eq", "ne", "sign", "argmax", "argmin", "iota", "is_finite"}
_SCALE = {"sqrt": 0.5, "rsqrt": -0.5, "square": 2.0}
_CALL_PARAMS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


class _Graph:
    """The rate (a vector over the leaves, or None for integers, booleans and exact zeros) of every traced value."""

    def __init__(self, num_leaves: int):
        self.n = num_leaves
        self.rows: list[np.ndarray] = []  # constraints row·λ = 0
        self.factor = np.zeros(num_leaves, bool)  # leaves that enter a product
        self.unhandled: set[str] = set()

    def zero(self) -> np.ndarray:
        return np.zeros(self.n)

    def equal(self, rates: list) -> np.ndarray | None:
        known = [r for r in rates if r is not None]
        for r in known[1:]:
            self.rows.append(r - known[0])
        return known[0] if known else None

    def fix_zero(self, rates: list) -> None:
        for r in rates:
            if r is not None:
                self.rows.append(r)


def _is_float(aval) -> bool:
    return hasattr(aval, "dtype") and np.issubdtype(aval.dtype, np.inexact)


def _read(env: dict, v) -> np.ndarray | None:
    if isinstance(v, jcore.Literal):
        val = np.asarray(v.val)
        return None if (not np.issubdtype(val.dtype, np.inexact) or np.all(val == 0)) else np.zeros_like(env["_zero"])
    return env.get(v, env["_zero"])


def _eqn_rates(g: _Graph, eqn, ins: list, origins: list) -> list:
    """The output rates of one equation (adding its constraints to g); `origins`: the leaf each input is, or -1."""
    name = eqn.primitive.name
    n_out = len(eqn.outvars)
    sub = next((eqn.params[p] for p in _CALL_PARAMS if p in eqn.params), None)
    if sub is not None:
        inner = sub.jaxpr if hasattr(sub, "jaxpr") else sub
        return _walk(g, inner, ins, origins)
    if name in _COMPARE:
        if name not in ("sign", "iota", "argmax", "argmin", "is_finite"):
            g.equal(ins)
        return [None] * n_out
    if name == "select_n":
        return [g.equal(ins[1:])] * n_out
    if name in _KEEP:
        return [ins[0]] * n_out
    if name in _EQUAL:
        return [g.equal(ins)] * n_out
    if name in _SUM:
        known = [r for r in ins if r is not None]
        for o in origins:
            if o >= 0:
                g.factor[o] = True  # a parameter leaf entering a product as it is (a weight, kernel or scale)
        return [sum(known) if known else None] * n_out
    if name == "div":
        a, b = ins
        return [None if a is None else a - (0 if b is None else b)]
    if name == "integer_pow":
        return [None if ins[0] is None else eqn.params["y"] * ins[0]]
    if name in _SCALE:
        return [None if ins[0] is None else _SCALE[name] * ins[0]]
    if name not in ("exp", "log", "tanh", "logistic", "erf", "log1p", "expm1", "sin", "cos", "pow", "erf_inv"):
        g.unhandled.add(name)
    g.fix_zero(ins)
    return [g.zero()] * n_out


def _needed(jaxpr) -> set:
    """The equations (by index) the outputs depend on."""
    live = {v for v in jaxpr.outvars if not isinstance(v, jcore.Literal)}
    keep = set()
    for i in range(len(jaxpr.eqns) - 1, -1, -1):
        eqn = jaxpr.eqns[i]
        if any(o in live for o in eqn.outvars):
            keep.add(i)
            live |= {v for v in eqn.invars if not isinstance(v, jcore.Literal)}
    return keep


def _walk(g: _Graph, jaxpr, in_rates: list, in_origins: list) -> list:
    env: dict = {"_zero": g.zero()}
    origin: dict = {}  # var -> the parameter leaf it is (possibly reshaped or cast)
    for v, r, o in zip(jaxpr.invars, in_rates, in_origins, strict=True):
        env[v], origin[v] = r, o
    for v in jaxpr.constvars:
        env[v] = g.zero()
    needed = _needed(jaxpr)
    for i, eqn in enumerate(jaxpr.eqns):
        ins = [_read(env, v) if _is_float(v.aval) else None for v in eqn.invars]
        origins = [-1 if isinstance(v, jcore.Literal) else origin.get(v, -1) for v in eqn.invars]
        outs = _eqn_rates(g, eqn, ins, origins) if i in needed else [g.zero()] * len(eqn.outvars)
        for v, r in zip(eqn.outvars, outs, strict=True):
            env[v] = r if _is_float(v.aval) else None
        if eqn.primitive.name in _KEEP and origins and origins[0] >= 0:
            origin[eqn.outvars[0]] = origins[0]
    return [_read(env, v) for v in jaxpr.outvars]


def constraints(f: Callable, params: Any, x: Any) -> dict[str, Any]:
    """The linear system of the graph: equality rows, the output rows, which leaves are factors, unhandled ops."""
    leaves, treedef = jax.tree.flatten(params)
    n = len(leaves)
    closed = jax.make_jaxpr(lambda *ls: f(jax.tree.unflatten(treedef, list(ls)), x))(*leaves)
    g = _Graph(n)
    outs = _walk(g, closed.jaxpr, [np.eye(n)[j] for j in range(n)], list(range(n)))
    outs = [o for o in outs if o is not None]
    if not outs:
        raise ValueError("f's output does not depend on the parameters")
    return {"rows": g.rows, "outputs": outs, "factor": g.factor, "unhandled": sorted(g.unhandled), "treedef": treedef}


def _full_rank(eq: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """An equivalent system with independent rows (SVD), and the residual of the original one's least squares."""
    u, sv, vt = np.linalg.svd(eq, full_matrices=False)
    k = int(np.sum(sv > 1e-9 * max(sv.max(initial=0.0), 1.0)))
    sol = vt[:k].T @ ((u[:, :k].T @ rhs) / sv[:k])
    return vt[:k], (u[:, :k].T @ rhs) / sv[:k], float(np.max(np.abs(eq @ sol - rhs), initial=0.0))


def _min_norm_on(eq, rhs, factor, support) -> np.ndarray:
    """The solution of eq λ = rhs with λ = 0 off `support` that minimises Σ λ² over the factor leaves, the additive
    leaves taking the minimum-norm values the constraints leave them (exact linear algebra)."""
    lam = np.zeros(eq.shape[1])
    f_idx, a_idx = np.flatnonzero(support & factor), np.flatnonzero(support & ~factor)
    e_f, e_a = eq[:, f_idx], eq[:, a_idx]
    proj = np.eye(eq.shape[0]) - e_a @ np.linalg.pinv(e_a) if a_idx.size else np.eye(eq.shape[0])
    lam[f_idx] = np.linalg.pinv(proj @ e_f) @ (proj @ rhs)
    if a_idx.size:
        lam[a_idx] = np.linalg.pinv(e_a) @ (rhs - e_f @ lam[f_idx])
    return lam


def _solve(eq: np.ndarray, rhs: np.ndarray, factor: np.ndarray) -> np.ndarray | None:
    eq, rhs, resid = _full_rank(eq, rhs)
    if resid > 1e-8:
        return None  # the equalities alone are inconsistent
    n = eq.shape[1]
    weight = np.where(factor, 1.0, 1e-6)  # additive-only leaves: whatever the constraints leave them
    res = sopt.minimize(
        lambda lam: float(np.sum(weight * lam**2)),
        np.full(n, 1.0 / n),
        jac=lambda lam: 2 * weight * lam,
        constraints=[{"type": "eq", "fun": lambda lam: eq @ lam - rhs, "jac": lambda lam: eq}],
        bounds=[(0.0, None)] * n,
        method="SLSQP",
        options={"maxiter": 1000, "ftol": 1e-15},
    )
    lam = res.x
    polished = _min_norm_on(eq, rhs, factor, lam > 1e-6)  # exact on the support SLSQP found
    if np.all(polished >= -1e-9) and np.max(np.abs(eq @ polished - rhs)) < 1e-9:
        lam = polished
    if np.min(lam) < -1e-7 or np.max(np.abs(eq @ lam - rhs)) > 1e-6:
        return None
    return np.where(np.abs(lam) < 1e-9, 0.0, np.round(lam, 12))


def infer_rates_traced(f: Callable, params: Any, x: Any) -> Any:
    """Λ of f(params, x) from its graph (module docstring): a pytree like `params` with one rate per leaf.

    Raises ValueError when no Λ ⪰ 0 makes the output scale (e.g. a tanh network: its inputs must keep rate 0).
    """
    sys = constraints(f, params, x)
    n = len(sys["factor"])
    eq = np.array(sys["rows"] + list(sys["outputs"])).reshape(-1, n)
    rhs = np.concatenate([np.zeros(len(sys["rows"])), np.ones(len(sys["outputs"]))])
    lam = _solve(eq, rhs, sys["factor"])
    if lam is None:
        ops = f" (operations taken as scale-breaking: {', '.join(sys['unhandled'])})" if sys["unhandled"] else ""
        raise ValueError(f"no rates Λ ⪰ 0 make the output of f scale with the parameters{ops}")
    return jax.tree.unflatten(sys["treedef"], [float(v) for v in lam])
