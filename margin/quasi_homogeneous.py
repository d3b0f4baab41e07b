"""Quasi-homogeneity: rate vectors Λ, their numerical check, the Λ-seminorm, the normalised margin, Euler's identity.

f is Λ-quasi-homogeneous (Λ = diag(λ_i) ⪰ 0) when f(e^{αΛ}θ; x) = e^α f(θ; x) for every α (the paper's Def. 1);
homogeneity of order L is Λ = I/L. Here Λ is a pytree `rates` with the structure of `params` whose leaves are the
rates (scalars, or arrays broadcastable to the leaf). Parameters of rate 0 are left alone by the scaling.

    check_rates(f, params, rates, x)          # raises NotQuasiHomogeneous naming the offending parameter
    infer_rates(models.residual_net(16))     # Λ of a standard stack
    normalized_margin(f(params, x), y, params, rates)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from margin import models
from margin import rates as rates_mod

DEFAULT_ALPHAS = (-1.0, -0.3, 0.4, 1.2)


class NotQuasiHomogeneous(ValueError):
    """The declared Λ does not satisfy f(e^{αΛ}θ; x) = e^α f(θ; x); the message names the offending parameter."""


def _paths(tree: Any) -> set[str]:
    return {path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_tree(params: Any, rates: Any) -> None:
    """Raises ValueError (one line, naming `rates`) unless `rates` has the tree structure of `params`."""
    if jax.tree.structure(params) == jax.tree.structure(rates):
        return
    p, r = _paths(params), _paths(rates)
    missing, extra = sorted(p - r), sorted(r - p)
    parts = ([f"missing {', '.join(missing[:4])}"] if missing else []) + (
        [f"not parameters: {', '.join(extra[:4])}"] if extra else []
    )
    detail = "; ".join(parts) or f"{jax.tree.structure(rates)} vs {jax.tree.structure(params)}"
    raise ValueError(f"rates: its tree does not match the parameters' ({detail})")


def check_binary_labels(y: Any) -> None:
    """Raises ValueError (one line, naming `y`) unless concrete binary labels are all -1 or +1."""
    if isinstance(y, jax.core.Tracer):
        return
    values = np.unique(np.asarray(y))
    if not np.all(np.isin(values, (-1.0, 1.0))):
        shown = ", ".join(f"{v:g}" for v in values[:4])
        raise ValueError(f"y: binary labels must be -1 or +1, got {shown} (map {{0, 1}} labels with 2 y - 1)")


def leaf_rates(params: Any, rates: Any) -> Any:
    """`rates` broadcast to the shape of every leaf of `params` (float32)."""
    check_tree(params, rates)
    return jax.tree.map(lambda p, r: jnp.broadcast_to(jnp.asarray(r, jnp.float32), jnp.shape(p)), params, rates)


def scale(params: Any, rates: Any, alpha: float | jax.Array) -> Any:
    """e^{αΛ} θ: every parameter multiplied by exp(α λ_i)."""
    check_tree(params, rates)
    return jax.tree.map(lambda p, r: p * jnp.exp(alpha * jnp.asarray(r, jnp.float32)), params, rates)


def rate_max(rates: Any) -> float:
    """λ_max, the largest rate (must be > 0)."""
    leaves = [np.max(np.asarray(r, np.float64)) for r in jax.tree.leaves(rates)]
    if not leaves or max(leaves) <= 0:
        raise ValueError("Λ needs at least one positive rate")
    return float(max(leaves))


def max_rate_mask(params: Any, rates: Any, rtol: float = 1e-6) -> Any:
    """1.0 on the parameters whose rate is λ_max (the ones the Λ-seminorm counts), 0.0 elsewhere."""
    top = rate_max(rates)
    full = leaf_rates(params, rates)
    return jax.tree.map(lambda r: (jnp.abs(r - top) <= rtol * top).astype(jnp.float32), full)


def seminorm(params: Any, rates: Any) -> jax.Array:
    """‖θ‖_Λ = sqrt(Σ_{i: λ_i = λ_max} θ_i²), the Λ-seminorm."""
    mask = max_rate_mask(params, rates)
    sq = jax.tree.map(lambda p, m: jnp.sum(m * jnp.square(p)), params, mask)
    return jnp.sqrt(sum(jax.tree.leaves(sq)))


def margins(outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example margins: y_i f_i for binary outputs [n] (y in {-1, +1}); f_{i,y} - max_{k≠y} f_{i,k} for [n, K]."""
    if outputs.ndim == 1:
        check_binary_labels(y)
        return y * outputs
    true = jnp.take_along_axis(outputs, y[:, None], axis=1)[:, 0]
    others = jnp.where(jax.nn.one_hot(y, outputs.shape[1], dtype=bool), -jnp.inf, outputs)
    return true - jnp.max(others, axis=1)


def normalized_margin(outputs: jax.Array, y: jax.Array, params: Any, rates: Any) -> jax.Array:
    """γ = min_i margin_i / ‖θ‖_Λ^{1/λ_max}: constant along the characteristic curves θ -> e^{αΛ}θ."""
    return jnp.min(margins(outputs, y)) / seminorm(params, rates) ** (1.0 / rate_max(rates))


def normalize(params: Any, rates: Any) -> Any:
    """The point e^{-τΛ}θ of θ's characteristic curve with ‖·‖_Λ = 1 (τ = log‖θ‖_Λ / λ_max): the 'direction'."""
    tau = jnp.log(seminorm(params, rates)) / rate_max(rates)
    return scale(params, rates, -tau)


def euler_residual(f: Callable, params: Any, rates: Any, x: jax.Array) -> jax.Array:
    """⟨∇_θ f(θ; x), Λθ⟩ - f(θ; x) for every output (0 for a Λ-quasi-homogeneous f, the derivative of Def. 1 at α=0)."""

    @jax.jit
    def resid(params, x):
        tangent = jax.tree.map(lambda p, r: p * r, params, leaf_rates(params, rates))
        out, dout = jax.jvp(lambda p: f(p, x), (params,), (tangent,))
        return dout - out

    return resid(params, x)


def path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _leaf_contributions(f: Callable, params: Any, x: jax.Array) -> list[tuple[str, np.ndarray]]:
    """g_j = ⟨∇_{θ_j} f, θ_j⟩ for every leaf j: the Euler residual is linear in the rates, Σ_j λ_j g_j - f."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)

    @jax.jit
    def all_g(params, x):
        leaves = jax.tree.leaves(params)
        gs = []
        for j in range(len(leaves)):
            tangent = jax.tree.unflatten(
                treedef, [leaf if i == j else jnp.zeros_like(leaf) for i, leaf in enumerate(leaves)]
            )
            gs.append(jax.jvp(lambda p: f(p, x), (params,), (tangent,))[1])
        return gs

    gs = all_g(params, x)
    return [(path_name(path), np.asarray(g, np.float64).ravel()) for (path, _), g in zip(flat, gs, strict=True)]


def check_rates(
    f: Callable,
    params: Any,
    rates: Any,
    x: jax.Array,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    rtol: float = 1e-3,
) -> float:
    """Checks f(e^{αΛ}θ; x) = e^α f(θ; x) for each α in `alphas`; returns the largest relative error.

    On failure raises NotQuasiHomogeneous naming the parameter whose rate is wrong: the Euler residual
    r = Σ_j λ_j g_j - f is linear in the rates, so a single wrong leaf j is the one for which some shift δ of its
    rate makes r + δ g_j vanish; the message gives that leaf, its declared rate and the rate that would hold.
    Errors are relative to max |f(θ; x)| (scaled by e^α).
    """
    check_tree(params, rates)
    scaled_f = jax.jit(lambda p, x, a: f(scale(p, rates, a), x))
    base = np.asarray(scaled_f(params, x, 0.0), np.float64)
    ref = max(float(np.max(np.abs(base))), 1e-30)
    worst, worst_alpha = 0.0, None
    for a in alphas:
        scaled = np.asarray(scaled_f(params, x, a), np.float64)
        err = float(np.max(np.abs(scaled - np.exp(a) * base))) / (np.exp(a) * ref)
        if not np.isfinite(err) or err > worst:
            worst, worst_alpha = (err if np.isfinite(err) else np.inf), a
    if worst <= rtol:
        return worst
    raise NotQuasiHomogeneous(_diagnose(f, params, rates, x, worst, worst_alpha))


def _diagnose(f, params, rates, x, worst, alpha) -> str:
    head = f"f(e^(αΛ)θ; x) != e^α f(θ; x) for the declared Λ (relative error {worst:.3g} at α={alpha:g})"
    fx = np.asarray(jax.jit(f)(params, x), np.float64).ravel()
    r = np.asarray(euler_residual(f, params, rates, x), np.float64).ravel()
    norm_f = max(float(np.linalg.norm(fx)), 1e-30)
    declared = {
        path_name(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(leaf_rates(params, rates))[0]
    }
    fits = []
    for name, g in _leaf_contributions(f, params, x):
        gg = float(g @ g)
        if gg <= 1e-24 * norm_f**2:
            continue  # this leaf does not affect f here: its rate cannot be told
        delta = -float(r @ g) / gg
        left = float(np.linalg.norm(r + delta * g)) / norm_f
        fits.append((left, name, delta))
    if not fits:
        return head + "; no parameter changes f at this point, so none can be named"
    fits.sort()
    uniform = _uniform_fix(r, fx, declared)
    if uniform:
        return f"{head}: {uniform}"
    tol = max(1e-4, 1e-3 * float(np.linalg.norm(r)) / norm_f)
    good = [(name, delta) for left, name, delta in fits if left <= tol]

    def describe(name, delta):
        d = declared[name]
        shown = f"{float(d.ravel()[0]):g}" if np.all(d == d.ravel()[0]) else "(array)"
        return f"parameter '{name}' (declared rate {shown}; rate {float(d.ravel()[0]) + delta:.4g} would hold)"

    if good:
        names = "; or ".join(describe(n, d) for n, d in good)
        return f"{head}: the offending {names}"
    left, name, delta = fits[0]
    return (
        f"{head}: no single parameter's rate explains it (several are wrong, or f is not quasi-homogeneous); "
        f"closest: {describe(name, delta)}, leaving relative Euler residual {left:.3g}"
    )


def _uniform_fix(r: np.ndarray, fx: np.ndarray, declared: dict) -> str | None:
    """When Λ rescaled by one factor s satisfies Euler's identity (Σ λ_j g_j = f up to s), the fix it suggests.

    Σ_j λ_j g_j = r + f, so s Λ holds when r + f ∝ f with s = 1/(that factor); a uniform Λ = c I then becomes I/L
    with L = 1/(c s), the homogeneous order.
    """
    ff = float(fx @ fx)
    if ff <= 0:
        return None
    k = float((r + fx) @ fx) / ff  # Σ λ_j g_j = k f
    if abs(k) < 1e-9 or np.linalg.norm(r + fx - k * fx) > 1e-4 * np.sqrt(ff) or abs(k - 1) < 1e-6:
        return None
    values = np.unique(np.concatenate([np.ravel(v) for v in declared.values()]))
    if values.size == 1 and values[0] > 0:
        order = k / float(values[0])
        return (
            f"f is homogeneous of order {order:.4g}: use the uniform Λ = I/{order:.4g} (every rate {1 / order:.4g}), "
            f"not {float(values[0]):g}"
        )
    return f"every declared rate divided by {k:.4g} would hold (the declared Λ is right up to its scale)"


# --- rates of standard stacks ------------------------------------------------------------------------------------


def infer_rates(layers: Any, params: Any = None, x: Any = None, *, normalize_output: bool = True) -> Any:
    """Λ of a model: `infer_rates(layers)` for a stack of `models` layers, `infer_rates(f, params, x)` for any model.

    The second form traces f(params, x) (a Flax NNX or linen model's apply, convolutions, affine BatchNorm and
    LayerNorm, pooling, residual blocks: `margin.rates`) and returns one rate per leaf of `params`.
    """
    if callable(layers) and not isinstance(layers, (tuple, list)):
        if params is None or x is None:
            raise ValueError("params: infer_rates(f, params, x) needs the parameters and a batch x to trace f")
        return rates_mod.infer_rates_traced(layers, params, x)
    return _infer_stack_rates(layers, normalize_output)


def _infer_stack_rates(layers: Sequence, normalize_output: bool) -> dict:
    """Λ of a stack of `models` layers (Dense / ReLU / Residual / BatchNorm / LayerNorm) from its structure.

    Walking the stack with the scaling rate s of the current activations (inputs: 0): a Dense weight has rate 1,
    its bias the rate of the layer's output s + 1 (the summed rate of the weights before it); ReLU keeps s; inside a
    residual branch entered at rate s the weights get rate 0 and the biases s, so the branch matches the skip; a
    normalisation layer makes its output invariant to its input's scale, so every parameter before it gets rate 0
    and s restarts at 0. With `normalize_output` the rates are divided by the output's rate, so f(e^{αΛ}θ) = e^α f
    (order-L homogeneous stacks get Λ = I/L). Normalisation inside a residual branch is not supported (the skip
    path would bypass it).
    """
    rates: dict = {}

    def walk(layers, s, in_branch):
        for layer in layers:
            if isinstance(layer, models.Dense):
                w = 0.0 if in_branch else 1.0
                rates[layer.name] = {"w": w}
                s = s + w
                if layer.bias:
                    rates[layer.name]["b"] = s
            elif isinstance(layer, models.ReLU):
                pass
            elif isinstance(layer, models.Residual):
                walk(layer.layers, s, True)
            elif isinstance(layer, (models.BatchNorm, models.LayerNorm)):
                if in_branch:
                    raise NotImplementedError("a normalisation inside a residual branch: declare Λ by hand")
                for sub in rates.values():
                    for k in sub:
                        sub[k] = 0.0
                s = 0.0
            else:
                raise TypeError(f"unknown layer {layer!r}")
        return s

    out = walk(layers, 0.0, False)
    if out <= 0:
        raise ValueError("the stack's output does not scale with any parameter (every rate is 0)")
    if normalize_output:
        rates = {k: {n: v / out for n, v in sub.items()} for k, sub in rates.items()}
    return rates
