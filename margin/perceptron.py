"""Perceptron known answers: Cover's counting theorem; teacher-student errors of Hebb and max-margin students.

Cover (1965): P points in general position in R^N with random ±1 labels are separable by a hyperplane through the
origin with probability C(P, N) = 2^{1-P} Σ_{k<N} binom(P-1, k) (exact at finite N; 1/2 at P = 2N).

Teacher-student (Gardner; Opper et al. 1990; the statistical-mechanics review): x ~ N(0, I_N), y = sign(T·x),
α = P/N, N -> ∞. A student J with overlap R = J·T/(|J||T|) errs with probability ε = arccos(R)/π.
  - Hebb, J = Σ_μ y_μ x_μ: R = sqrt(2α/π) / sqrt(1 + 2α/π) (the teacher component of J is Σ|t_μ| ≈ P sqrt(2/π)/√N
    per unit, the N-1 others are N(0, α) each).
  - Max-margin (maximal stability): writing J = R T + sqrt(1-R²) J⊥, the constraints y_μ J·x_μ ≥ κ become a
    spherical perceptron for J⊥ with thresholds κ(t) = (κ - R|t|)/sqrt(1-R²), t ~ N(0, 1) the teacher's field;
    Gardner's capacity condition α E_t[∫_{-∞}^{κ(t)} Dz (κ(t) - z)²] = 1 gives κ_max(R), and the max-margin
    student has the R that maximises it. At large α this gives ε ≈ 0.5005/α, the known asymptote.
The simulations are vmapped over draws: labels and data are drawn on device, and the hard-margin SVM through the
origin is `max_margin.min_norm_point` (its separability certificate gives Cover's experiment).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize as sopt
from scipy.stats import norm

from common import sweep
from margin import max_margin as mm


def cover_probability(p: int, n: int) -> float:
    """C(P, N) = 2^{1-P} Σ_{k=0}^{N-1} binom(P-1, k): the probability that P random points in N dims are separable."""
    if p <= n:
        return 1.0
    return float(sum(math.comb(p - 1, k) for k in range(n)) / 2 ** (p - 1))


def count_separable_dichotomies(x: np.ndarray) -> int:
    """The number of the 2^P labelings of the points x [P, N] that a hyperplane through the origin separates (LP).

    Cover's function counting theorem: 2 Σ_{k<N} binom(P-1, k) for points in general position.
    """
    p = x.shape[0]
    count = 0
    for bits in range(2**p):
        y = np.array([1.0 if (bits >> i) & 1 else -1.0 for i in range(p)])
        count += mm.is_separable(x, y)
    return count


def _padded_problem(key: jax.Array, p: jax.Array, n: int, p_max: int) -> jax.Array:
    """z = y x for P = p random points (x ~ N(0, I_n), y = ±1), padded to p_max rows with copies of row 0."""
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (p_max, n), jnp.float32)
    y = jnp.where(jax.random.bernoulli(ky, 0.5, (p_max,)), 1.0, -1.0)
    z = y[:, None] * x
    rows = jnp.arange(p_max)
    return jnp.where((rows < p)[:, None], z, z[0][None, :])  # duplicates do not change the convex hull


def cover_draws(seed: int, n: int, p_values: list[int], num_draws: int, num_iters: int = 1500) -> dict[str, np.ndarray]:
    """The fraction of separable draws for each P: one vmapped max-margin solve per draw, LP for the rest.

    A draw is separable when `min_norm_point` certifies it (a w with all y_i w·x_i > 0) or, failing that, when the
    LP finds one: the certificate is exact, so only uncertified draws need the LP. Returns the fraction per P, how
    many draws the LP had to settle and how many of those it found separable (the vmapped solver's misses).
    """
    p_max = max(p_values)
    ps = np.repeat(np.asarray(p_values, np.int32), num_draws)
    keys = jax.random.split(jax.random.key(seed), ps.size)

    def one(key, p):
        z = _padded_problem(key, p, n, p_max)
        out = mm.min_norm_point(z, num_iters)
        return {"separable": out["separable"], "z": z}

    out = sweep.to_numpy(sweep.vmapped(one)(keys, ps), ps.size)
    sep = out["separable"].astype(bool)
    lp_used = np.flatnonzero(~sep)
    lp_found = 0
    for i in lp_used:
        z = out["z"][i, : ps[i]]
        if mm.separability_lp(z)[0] > 1e-9:
            sep[i] = True
            lp_found += 1
    frac = sep.reshape(len(p_values), num_draws).mean(axis=1)
    return {"fraction": frac, "lp_checked": int(lp_used.size), "lp_found_separable": lp_found}


# --- teacher-student ---------------------------------------------------------------------------------------------


def hebb_error(alpha: np.ndarray) -> np.ndarray:
    """ε_Hebb(α) = arccos(R)/π with R = sqrt(2α/π)/sqrt(1 + 2α/π)."""
    a = np.asarray(alpha, np.float64)
    r = np.sqrt(2 * a / np.pi) / np.sqrt(1 + 2 * a / np.pi)
    return np.arccos(r) / np.pi


_T = np.linspace(0.0, 12.0, 4001)  # quadrature grid for the half-normal teacher field |t|
_W = 2 * norm.pdf(_T) * np.gradient(_T)


def _gardner_cost(k: np.ndarray) -> np.ndarray:
    """∫_{-∞}^{k} Dz (k - z)² = (k² + 1) Φ(k) + k φ(k)."""
    return (k**2 + 1) * norm.cdf(k) + k * norm.pdf(k)


def _kappa_max(r: float, alpha: float) -> float:
    s = math.sqrt(1 - r * r)

    def g(kappa):
        return alpha * float(np.sum(_W * _gardner_cost((kappa - r * _T) / s))) - 1.0

    lo, hi = -10.0, 10.0
    while g(hi) < 0:  # small α: κ_max is large
        lo, hi = hi, 2 * hi
    return sopt.brentq(g, lo, hi, xtol=1e-12)


def max_margin_overlap(alpha: float) -> tuple[float, float]:
    """(R, κ) of the max-margin student at load α (the R maximising Gardner's κ_max(R, α))."""
    res = sopt.minimize_scalar(
        lambda r: -_kappa_max(r, alpha), bounds=(1e-6, 1 - 1e-9), method="bounded", options={"xatol": 1e-10}
    )
    return float(res.x), float(-res.fun)


def max_margin_error(alpha: np.ndarray) -> np.ndarray:
    """ε_max-margin(α) = arccos(R(α))/π from the replica-symmetric calculation (module docstring)."""
    return np.array([np.arccos(max_margin_overlap(float(a))[0]) / np.pi for a in np.atleast_1d(alpha)])


def teacher_student_draws(
    seed: int, n: int, alphas: list[float], num_draws: int, num_iters: int = 3000
) -> dict[str, np.ndarray]:
    """Measured generalisation errors arccos(R)/π of Hebb and max-margin students, [len(alphas), num_draws].

    Each draw: a random unit teacher, P = round(α N) Gaussian inputs labelled by it, the Hebb student Σ y x and
    the hard-margin SVM through the origin (`min_norm_point`); P is padded to the largest with duplicate rows.
    """
    p_values = [max(1, round(a * n)) for a in alphas]
    p_max = max(p_values)
    ps = np.repeat(np.asarray(p_values, np.int32), num_draws)
    keys = jax.random.split(jax.random.key(seed), ps.size)

    def one(key, p):
        kt, kx = jax.random.split(key)
        teacher = jax.random.normal(kt, (n,), jnp.float32)
        teacher = teacher / jnp.linalg.norm(teacher)
        x = jax.random.normal(kx, (p_max, n), jnp.float32)
        y = jnp.sign(x @ teacher)
        z = y[:, None] * x
        z = jnp.where((jnp.arange(p_max) < p)[:, None], z, z[0][None, :])
        hebb = jnp.sum(jnp.where((jnp.arange(p_max) < p)[:, None], z, 0.0), axis=0)
        w = mm.min_norm_point(z, num_iters)["w"]

        def err(j):
            r = jnp.clip(j @ teacher / jnp.linalg.norm(j), -1.0, 1.0)
            return jnp.arccos(r) / jnp.pi

        return {"hebb": err(hebb), "max_margin": err(w)}

    out = sweep.to_numpy(sweep.vmapped(one)(keys, ps), ps.size)
    return {k: v.reshape(len(alphas), num_draws) for k, v in out.items()}
