"""Teacher-student perceptrons: Hebb, max-margin, Gibbs and Bayes-optimal students, theory and simulation.

Setting (Gardner; Opper et al. 1990; Engel & Van den Broeck, *Statistical Mechanics of Learning*, ch. 2-3): inputs
x ~ N(0, I_N), labels y = sign(T·x) from a unit teacher T, α = P/N examples per weight, N -> ∞. A student J with
overlap R = J·T/(|J||T|) errs on a new input with probability ε = arccos(R)/π. Replica-symmetric closed forms:

  - Hebb, J = Σ_μ y_μ x_μ: R = sqrt(2α/π) / sqrt(1 + 2α/π).
  - Max-margin (maximal stability): writing J = R T + sqrt(1-R²) J⊥, the constraints y_μ J·x_μ ≥ κ become a
    spherical perceptron for J⊥ with thresholds κ(t) = (κ - R|t|)/sqrt(1-R²), t ~ N(0, 1) the teacher's field;
    Gardner's capacity condition α E_t[∫_{-∞}^{κ(t)} Dz (κ(t) - z)²] = 1 gives κ_max(R), and the max-margin
    student has the R that maximises it. Large α: ε ≈ 0.5005/α.
  - Gibbs (a student drawn uniformly from the version space, the J on the sphere that classify every example as the
    teacher does): R solves R / sqrt(1 - R) = (α/π) ∫ Dt exp(-R t²/2) / H(-sqrt(R) t), H(u) = ∫_u^∞ Dz
    (Engel & Van den Broeck Eq. 2.42). Large α: ε ≈ 0.625/α.
  - Bayes-optimal (the centre of mass of the version space): R_Bayes = sqrt(R_Gibbs), the mean of many independent
    Gibbs students (Eq. 3.9). Large α: ε ≈ 0.442/α.

Simulation is vmapped over draws (data drawn on device). The max-margin student is `max_margin.min_norm_point`. The
Gibbs student is a hit-and-run chain on the version space: the Gaussian N(0, I_N) restricted to the cone
{J: y_μ J·x_μ > 0} is uniform in direction over the version space, and along a random line its conditional is a
1-D Gaussian truncated to the interval the constraints allow, sampled exactly; the chain starts at the max-margin
student (strictly inside). The Bayes student is the mean of the chain's normalised samples after burn-in.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize as sopt
from scipy.special import log_ndtr
from scipy.stats import norm

from common import sweep
from margin import max_margin as mm


def error_from_overlap(r):
    """ε = arccos(R)/π."""
    return np.arccos(np.clip(r, -1.0, 1.0)) / np.pi


def hebb_error(alpha: np.ndarray) -> np.ndarray:
    """ε_Hebb(α) = arccos(R)/π with R = sqrt(2α/π)/sqrt(1 + 2α/π)."""
    a = np.asarray(alpha, np.float64)
    r = np.sqrt(2 * a / np.pi) / np.sqrt(1 + 2 * a / np.pi)
    return error_from_overlap(r)


_T = np.linspace(0.0, 12.0, 4001)  # quadrature grid for the half-normal teacher field |t|
_W = 2 * norm.pdf(_T) * np.gradient(_T)
_Z = np.linspace(-12.0, 12.0, 8001)  # quadrature grid for Dt over the real line
_WZ = norm.pdf(_Z) * np.gradient(_Z)


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
    return np.array([error_from_overlap(max_margin_overlap(float(a))[0]) for a in np.atleast_1d(alpha)])


def _gibbs_rhs(r: float) -> float:
    """∫ Dt exp(-R t²/2) / H(-sqrt(R) t), with 1/H evaluated in log space (H(-u) -> 0 as u -> -∞)."""
    log_h = log_ndtr(np.sqrt(r) * _Z)  # H(-sqrt(R) t) = Φ(sqrt(R) t)
    return float(np.sum(_WZ * np.exp(-r * _Z**2 / 2 - log_h)))


def gibbs_overlap(alpha: float) -> float:
    """The Gibbs student's R at load α: the root of R/sqrt(1-R) = (α/π) ∫ Dt e^{-R t²/2}/H(-sqrt(R) t) in (0, 1)."""
    if alpha <= 0:
        return 0.0

    def g(r):
        return r / math.sqrt(1 - r) - alpha / math.pi * _gibbs_rhs(r)

    return float(sopt.brentq(g, 1e-12, 1 - 1e-12, xtol=1e-14))


def gibbs_error(alpha: np.ndarray) -> np.ndarray:
    """ε_Gibbs(α) = arccos(R_Gibbs(α))/π (Engel & Van den Broeck Eq. 2.42)."""
    return np.array([error_from_overlap(gibbs_overlap(float(a))) for a in np.atleast_1d(alpha)])


def bayes_error(alpha: np.ndarray) -> np.ndarray:
    """ε_Bayes(α) = arccos(sqrt(R_Gibbs(α)))/π: the centre of mass of the version space."""
    return np.array([error_from_overlap(math.sqrt(gibbs_overlap(float(a)))) for a in np.atleast_1d(alpha)])


THEORY = {"hebb": hebb_error, "max_margin": max_margin_error, "gibbs": gibbs_error, "bayes": bayes_error}


def exact_hmc(
    key: jax.Array, z: jax.Array, real: jax.Array, j0: jax.Array, num_iters: int, burn_in: int, max_bounces: int = 2000
) -> dict[str, jax.Array]:
    """Exact HMC for N(0, I) restricted to the cone {J: z_μ·J > 0 for the rows with `real`} (Pakman & Paninski 2014).

    Each iteration draws a velocity v ~ N(0, I) and follows the Hamiltonian flow of the Gaussian, J(t) = J cos t +
    v sin t, for a time π/2, reflecting v off every wall z_μ·J = 0 it meets (the first hitting time of wall μ is
    φ_μ + π/2 with φ_μ = atan2(z_μ·v, z_μ·J)). The flow preserves the truncated Gaussian exactly, so every iteration
    is an exact MCMC step; the direction of J is then uniform on the version space. Returns the last state `last`
    and `mean_direction`: the mean of J/|J| over the iterations after `burn_in` (the version space's centre of mass).
    """
    sq = jnp.sum(z * z, axis=1)

    def flow(j, v):
        def cond(c):
            return (c[2] > 0) & (c[3] < max_bounces)

        def body(c):
            j, v, left, count, last = c
            phi = jnp.arctan2(z @ v, z @ j)
            t_hit = jnp.where(real & (jnp.arange(z.shape[0]) != last), phi + jnp.pi / 2, jnp.inf)
            t_hit = jnp.where(t_hit > 1e-7, t_hit, jnp.inf)
            mu = jnp.argmin(t_hit)
            t = jnp.minimum(t_hit[mu], left)
            j_new = j * jnp.cos(t) + v * jnp.sin(t)
            v_new = -j * jnp.sin(t) + v * jnp.cos(t)
            hit = t_hit[mu] < left
            v_new = jnp.where(hit, v_new - 2 * (z[mu] @ v_new) / sq[mu] * z[mu], v_new)
            return j_new, v_new, jnp.where(hit, left - t, 0.0), count + 1, jnp.where(hit, mu, -1)

        return jax.lax.while_loop(cond, body, (j, v, jnp.asarray(jnp.pi / 2, j.dtype), 0, -1))[0]

    def step(j, k):
        j_new = flow(j, jax.random.normal(k, j.shape, j.dtype))
        # a state outside the cone (float rounding at a wall, or too many bounces) is rejected
        j_new = jnp.where(jnp.min(jnp.where(real, z @ j_new, 1.0)) > 0, j_new, j)
        return j_new, j_new / jnp.linalg.norm(j_new)

    keys = jax.random.split(key, num_iters)
    j, _ = jax.lax.scan(step, j0, keys[:burn_in])
    j, dirs = jax.lax.scan(step, j, keys[burn_in:])
    return {"last": j, "mean_direction": jnp.mean(dirs, axis=0)}


def _one_draw(n, p_max, num_iters, chain_steps, burn_in, key, p):
    kt, kx, kc = jax.random.split(key, 3)
    teacher = jax.random.normal(kt, (n,), jnp.float32)
    teacher = teacher / jnp.linalg.norm(teacher)
    x = jax.random.normal(kx, (p_max, n), jnp.float32)
    y = jnp.sign(x @ teacher)
    z = y[:, None] * x
    real = (jnp.arange(p_max) < p)[:, None]
    z = jnp.where(real, z, z[0][None, :])  # duplicates of row 0 change neither the version space nor the SVM
    hebb = jnp.sum(jnp.where(real, z, 0.0), axis=0)
    w = mm.min_norm_point(z, num_iters)["w"]
    start = w / jnp.linalg.norm(w) * jnp.sqrt(float(n))  # a typical norm for N(0, I_N)
    chain = exact_hmc(kc, z, real[:, 0], start, chain_steps, burn_in)

    def err(j):
        r = jnp.clip(j @ teacher / jnp.linalg.norm(j), -1.0, 1.0)
        return jnp.arccos(r) / jnp.pi

    return {
        "hebb": err(hebb),
        "max_margin": err(w),
        "gibbs": err(chain["last"]),
        "bayes": err(chain["mean_direction"]),
    }


def teacher_student_draws(
    key: jax.Array,
    n: int,
    alphas: list[float],
    num_draws: int,
    num_iters: int = 3000,
    chain_steps: int = 4000,
    burn_in: int = 1000,
) -> dict[str, np.ndarray]:
    """Measured errors arccos(R)/π of the four students, each [len(alphas), num_draws].

    Each draw: a random unit teacher, P = round(α N) Gaussian inputs labelled by it; Hebb Σ y x, the hard-margin
    SVM through the origin (`min_norm_point`, `num_iters` FISTA steps), the last state of a `chain_steps` hit-and-run
    chain on the version space (Gibbs) and its mean direction after `burn_in` (Bayes). P is padded to the largest.
    """
    p_values = [max(1, round(a * n)) for a in alphas]
    p_max = max(p_values)
    ps = np.repeat(np.asarray(p_values, np.int32), num_draws)
    keys = jax.random.split(key, ps.size)
    one = sweep.vmapped(_one_draw, static=(n, p_max, num_iters, chain_steps, burn_in), in_axes=(0, 0))
    out = sweep.to_numpy(one(keys, ps), ps.size)
    return {k: v.reshape(len(alphas), num_draws) for k, v in out.items()}
