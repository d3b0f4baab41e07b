"""Flatness: Hessian-vector products, Lanczos top eigenvalues, full spectra, and the paper's prune-fraction bound.

The Hessian is taken over the *unpruned prunable* weights (the coordinates IMP may prune next; biases and pruned
weights held fixed), flattened into one vector of dimension D = the number of remaining weights.

The bound (Sec. 3.3, after Larsen et al. 2022): near a solution w the epsilon-sublevel set of the training loss is
approximately the ellipsoid with radii r_i = sqrt(2 epsilon / lambda_i) (lambda_i the Hessian eigenvalues; directions
with lambda_i <= 0 are treated as flat, r_i = inf). Pruning a fraction p of the D weights projects w onto an
axis-aligned subspace of dimension (1 - p) D at distance R(p) = ||pruned weights||. Seen from that distance, the
ellipsoid's squared Gaussian width (of its projection onto the sphere of radius R around the pruned point) is

    w^2(p) = sum_i r_i^2 / (R(p)^2 + r_i^2),

and a random subspace of dimension (1 - p) D meets the sublevel set when its codimension p D is at most w^2(p). The
largest fraction prunable in one iteration is therefore the p* with p* D = w^2(p*) (w^2 falls and p D rises with p,
so the crossing is unique). R(p)^2 = p ||w||^2 in expectation for random pruning; for magnitude pruning it is the sum
of the p D smallest squared weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def hvp(loss_fn: Callable[[Any], jax.Array], params: Any, v: Any) -> Any:
    """Hessian-vector product H(params) v of the scalar `loss_fn`, as forward-over-reverse `jvp(grad)`."""
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def restricted(loss_fn: Callable[[Any], jax.Array], params: Any, mask: Any, rates: Any):
    """The loss as a function of the flat vector of unpruned prunable weights (everything else fixed).

    Returns (f, x0, unflatten): f(x) = loss_fn(params with those weights set to x), x0 their current values,
    unflatten(x) the full parameter tree. The selection is done on the host (`mask` must be concrete).
    """
    flat_p, unravel = ravel_pytree(params)
    idx = np.flatnonzero(_selection(mask, rates))
    idx_j = jnp.asarray(idx)

    def full(x):
        return unravel(flat_p.at[idx_j].set(x))

    return (lambda x: loss_fn(full(x))), flat_p[idx_j], full


def lanczos(
    matvec: Callable[[jax.Array], jax.Array], dim: int, num_iters: int, key: jax.Array
) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos with full re-orthogonalisation: (Ritz values ascending, their Ritz vectors [dim, k]).

    k = min(num_iters, dim) iterations as one compiled `lax.scan` (fewer if an invariant subspace is found, in which
    case the Ritz values are exact eigenvalues). The extreme Ritz values converge first: the top few equal the
    largest eigenvalues of the symmetric operator `matvec` to high accuracy once num_iters is a few times the
    number wanted.
    """
    k = int(min(num_iters, dim))
    evals_t, basis, n_valid = _lanczos_scan(matvec, dim, k, key)
    alphas, betas = (np.asarray(a, np.float64) for a in evals_t)
    n = int(n_valid)
    t = np.diag(alphas[:n]) + np.diag(betas[: n - 1], 1) + np.diag(betas[: n - 1], -1)
    evals, evecs = np.linalg.eigh(t)
    return evals, np.asarray(basis[:n], np.float64).T @ evecs


def _lanczos_scan(matvec, dim: int, k: int, key: jax.Array):
    @jax.jit
    def run(key):
        v0 = jax.random.normal(key, (dim,), jnp.float32)
        v0 = v0 / jnp.linalg.norm(v0)

        def body(carry, j):
            basis, v, alive = carry
            basis = basis.at[j].set(v)
            w = matvec(v)
            alpha = jnp.dot(w, v)
            live = (jnp.arange(k) <= j)[:, None] * basis
            for _ in range(2):  # twice is enough (Kahan)
                w = w - live.T @ (live @ w)
            beta = jnp.linalg.norm(w)
            ok = alive & (beta > 1e-6 * jnp.maximum(jnp.abs(alpha), 1.0))
            v_next = jnp.where(ok, w / jnp.where(ok, beta, 1.0), 0.0)
            return (basis, v_next, ok), (alpha, jnp.where(ok, beta, 0.0), alive)

        init = (jnp.zeros((k, dim), jnp.float32), v0, jnp.array(True))
        (basis, _, _), (alphas, betas, valid) = jax.lax.scan(body, init, jnp.arange(k))
        return (alphas, betas), basis, jnp.sum(valid)

    return run(key)


def top_eigenvalues(
    loss_fn: Callable[[Any], jax.Array],
    params: Any,
    k: int,
    *,
    key: jax.Array,
    mask: Any | None = None,
    rates: Any | None = None,
    num_iters: int | None = None,
) -> np.ndarray:
    """The `k` largest Hessian eigenvalues (descending) of `loss_fn` at `params` by Lanczos on `jvp(grad)` HVPs.

    With `mask` and `rates`, over the unpruned prunable weights only; otherwise over every parameter.
    """
    if mask is None:
        flat, unravel = ravel_pytree(params)

        def f(x):
            return loss_fn(unravel(x))

        x0 = flat
    else:
        f, x0, _ = restricted(loss_fn, params, mask, rates)
    iters = num_iters or max(3 * k, 30)
    evals, _ = lanczos(lambda v: hvp(f, x0, v), int(x0.shape[0]), iters, key)
    return np.sort(evals)[::-1][:k]


def hessian_matrix(
    loss_fn: Callable[[Any], jax.Array],
    params: Any,
    *,
    mask: Any | None = None,
    rates: Any | None = None,
    batch: int = 256,
) -> np.ndarray:
    """The full Hessian [D, D] (float64 on the host, symmetrised), built from HVPs with basis vectors, `batch` at
    a time (vmapped). For networks of a few thousand weights."""
    if mask is None:
        flat, unravel = ravel_pytree(params)
        f, x0 = (lambda x: loss_fn(unravel(x))), flat
    else:
        f, x0, _ = restricted(loss_fn, params, mask, rates)
    d = int(x0.shape[0])
    cols = jax.jit(jax.vmap(lambda v: hvp(f, x0, v)))
    eye = np.eye(d, dtype=np.float32)
    out = np.zeros((d, d), np.float64)
    for s in range(0, d, batch):
        block = eye[s : s + batch]
        pad = batch - block.shape[0]
        if pad:
            block = np.concatenate([block, np.zeros((pad, d), np.float32)])
        res = np.asarray(cols(jnp.asarray(block)), np.float64)
        out[s : s + batch] = res[: batch - pad]
    return 0.5 * (out + out.T)


def full_spectrum(loss_fn: Callable[[Any], jax.Array], params: Any, **kw) -> np.ndarray:
    """Every Hessian eigenvalue (ascending, float64) by dense eigendecomposition (see `hessian_matrix`)."""
    return np.linalg.eigvalsh(hessian_matrix(loss_fn, params, **kw))


NONPOSITIVE = ("flat", "drop", "abs")


def _check_epsilon(epsilon: float) -> None:
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")


def gaussian_width_sq(
    eigenvalues: np.ndarray, epsilon: float, distance: float | np.ndarray, *, nonpositive: str = "flat"
) -> np.ndarray:
    """Squared Gaussian width of the epsilon-sublevel ellipsoid seen from `distance`: sum r_i^2 / (R^2 + r_i^2).

    r_i^2 = 2 epsilon / lambda_i. Eigenvalues <= 0, by `nonpositive`: "flat" (the quadratic model's reading: the
    loss does not rise along them, the sublevel set is unbounded, r_i = inf and each contributes 1), "drop" (they
    contribute 0: the set is taken as bounded along them by higher-order terms), "abs" (|lambda_i| as the
    curvature).
    """
    _check_epsilon(epsilon)
    if nonpositive not in NONPOSITIVE:
        raise ValueError(f"nonpositive must be one of {NONPOSITIVE}, got {nonpositive!r}")
    lam = np.asarray(eigenvalues, np.float64)
    if nonpositive == "abs":
        lam = np.abs(lam)
    elif nonpositive == "drop":
        lam = lam[lam > 0]
    r2 = np.where(lam > 0, 2.0 * float(epsilon) / np.where(lam > 0, lam, 1.0), np.inf)
    big_r2 = np.square(np.asarray(distance, np.float64))[..., None]
    terms = np.where(np.isinf(r2), 1.0, r2 / (big_r2 + np.where(np.isinf(r2), 0.0, r2)))
    return terms.sum(axis=-1)


def pruned_distance(weights: np.ndarray, fractions: np.ndarray, kind: str) -> np.ndarray:
    """R(p) = ||pruned weights|| after removing a fraction p of `weights` (a flat vector of the remaining ones).

    kind "magnitude": the p D smallest in magnitude (exact); "random": sqrt(p) ||w|| (its expectation of R^2).
    """
    w2 = np.square(np.asarray(weights, np.float64).ravel())
    p = np.asarray(fractions, np.float64)
    if kind == "random":
        return np.sqrt(p * w2.sum())
    if kind == "magnitude":
        cum = np.concatenate([[0.0], np.cumsum(np.sort(w2))])
        n = np.floor(p * w2.size + 0.5).astype(int)
        return np.sqrt(cum[np.clip(n, 0, w2.size)])
    raise ValueError(f"kind must be 'random' or 'magnitude', got {kind!r}")


def max_prune_fraction(
    eigenvalues: np.ndarray,
    weights: np.ndarray,
    epsilon: float,
    kind: str,
    *,
    grid: int = 4001,
    nonpositive: str = "flat",
) -> float:
    """The predicted largest fraction prunable in one iteration: the p* in [0, 1] where p D = w^2(R(p)).

    `eigenvalues`: the Hessian spectrum over the D remaining weights `weights` (a flat vector). Solved on a grid
    of `grid` fractions with linear interpolation at the crossing.
    """
    d = np.asarray(weights).size
    if np.asarray(eigenvalues).size != d:
        raise ValueError(f"{np.asarray(eigenvalues).size} eigenvalues for {d} weights")
    p = np.linspace(0.0, 1.0, grid)
    width = gaussian_width_sq(eigenvalues, epsilon, pruned_distance(weights, p, kind), nonpositive=nonpositive)
    gap = width - p * d  # decreasing
    if gap[-1] >= 0:
        return 1.0
    j = int(np.argmax(gap < 0))
    if j == 0:
        return 0.0
    g0, g1 = gap[j - 1], gap[j]
    return float(p[j - 1] + (p[j] - p[j - 1]) * g0 / (g0 - g1))


def flat_weights(params: Any, mask: Any, rates: Any) -> np.ndarray:
    """The unpruned prunable weights as one flat host vector (the order `restricted` and the spectrum use)."""
    return np.asarray(ravel_pytree(params)[0])[_selection(mask, rates)]


def _selection(mask: Any, rates: Any) -> np.ndarray:
    """Boolean host vector over the flattened parameters: unpruned and prunable."""
    leaves = [
        np.asarray(m, bool).ravel() & (float(r) != 0)
        for m, r in zip(jax.tree.leaves(mask), jax.tree.leaves(rates), strict=True)
    ]
    return np.concatenate(leaves)


def pruned_set(weights: np.ndarray, fraction: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Boolean vector: the round(fraction D) entries of `weights` pruned by `kind` ("magnitude": the smallest |w|,
    ties by position; "random": a uniform subset drawn from `rng`)."""
    if kind not in ("magnitude", "random"):
        raise ValueError(f"kind must be 'magnitude' or 'random', got {kind!r}")
    w = np.asarray(weights).ravel()
    n = int(np.floor(float(fraction) * w.size + 0.5))
    order = np.argsort(np.abs(w), kind="stable") if kind == "magnitude" else rng.permutation(w.size)
    out = np.zeros(w.size, bool)
    out[order[:n]] = True
    return out


def quadratic_check(
    f: Callable[[jax.Array], jax.Array], x0: jax.Array, hess: np.ndarray, fractions, kind: str, seed: int = 0
) -> dict[str, list[float]]:
    """How well the quadratic model describes pruning: for each fraction p, the loss rise of the pruned point
    (the pruned weights set to 0, nothing retrained) as the model predicts it, 0.5 d^T H d with d = -w on the pruned
    set (the gradient term is dropped, as at a minimum), and as measured, f(x0 + d) - f(x0).

    `f`, `x0`: the restricted loss and weights (`restricted`); `hess`: its Hessian at x0 ([D, D], `hessian_matrix`).
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x0, np.float64)
    base = float(f(x0))
    quad, actual = [], []
    for p in fractions:
        d = np.where(pruned_set(x, p, kind, rng), -x, 0.0)
        quad.append(float(0.5 * d @ hess @ d))
        actual.append(float(f(jnp.asarray(x + d, jnp.float32))) - base)
    return {"fractions": [float(p) for p in fractions], "quadratic_rise": quad, "actual_rise": actual}
