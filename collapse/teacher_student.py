"""Linear teacher-student model (paper Sec. 5): label noise soft-thresholds the student's singular values.

A rank-``r`` teacher ``W`` (``n x m``) labels orthonormal inputs ``X`` (``N x n``) with small output noise. A
two-layer linear student trained by full-batch gradient descent from a balanced, SVD-aligned start stays aligned,
so each mode ``i`` of ``X^T y = V diag(s) U`` evolves independently as a product ``p_i = u_i v_i``:

    residual = u v - s + sigma xi,     u -= eta residual v,     v -= eta residual u,     eta = lr / N

with label noise ``sigma xi`` (``xi ~ N(0, 1)``) on each residual. In the SDE limit the stationary law of ``p`` is
a Gamma distribution with shape ``s / (eta sigma^2) - 1/2`` and scale ``eta sigma^2``, whose mean is

    E[p] = max(s - eta sigma^2 / 2, 0)                                                       (soft threshold)

and which exists only when ``s > eta sigma^2 / 2``: weaker modes collapse to zero (the vanishing invariant set
of that mode). Modes below the threshold are mostly noise, so removing them lowers the test error."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Problem:
    """Teacher ``w`` ``[n, m]``; SVD ``X^T y = v_basis diag(s) u_basis`` of the noisy data correlation."""

    w: np.ndarray
    s: np.ndarray
    v_basis: np.ndarray
    u_basis: np.ndarray
    num_samples: int


def _orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))  # Haar-distributed


def make_problem(
    seed: int = 0,
    *,
    num_samples: int = 1024,
    n: int = 64,
    m: int = 64,
    rank: int = 8,
    sv_low: float = 0.5,
    sv_high: float = 1.0,
    output_noise: float = 0.5,
) -> Problem:
    """The paper's setting: rank-8 teacher with singular values evenly in [0.5, 1], 1024 orthonormal inputs,
    label noise ``output_noise * N(0, 1) / sqrt(m)`` per output."""
    if rank > min(n, m) or n > num_samples:
        raise ValueError("need rank <= min(n, m) and n <= num_samples")
    rng = np.random.default_rng(seed)
    sv = np.zeros((n, m))
    sv[np.arange(rank), np.arange(rank)] = np.linspace(sv_low, sv_high, rank)
    w = _orthogonal(rng, n) @ sv @ _orthogonal(rng, m)
    x = _orthogonal(rng, num_samples)[:, :n] @ _orthogonal(rng, n)  # orthonormal columns
    y = x @ w + output_noise * rng.normal(size=(num_samples, m)) / np.sqrt(m)
    v_basis, s, u_basis = np.linalg.svd(x.T @ y, full_matrices=False)
    return Problem(w=w, s=s, v_basis=v_basis, u_basis=u_basis, num_samples=num_samples)


def train_modes(
    key: jax.Array,
    s: jax.Array,
    sigma: jax.Array,
    *,
    lr: float,
    num_samples: int,
    num_steps: int,
    drop_step: int | None = None,
    drop_factor: float = 0.1,
    average_from: int | None = None,
    record_every: int | None = None,
) -> tuple[jax.Array, ...]:
    """Gradient descent with label noise on each mode product; pure, vmappable over ``key`` and ``sigma``.

    Args:
      key: PRNG key of the run.
      s: ``[k]`` target singular values.
      sigma: label-noise scale.
      lr: learning rate (the step is ``lr / num_samples``, as in the released script).
      num_samples: N.
      num_steps: total steps; the rate is multiplied by ``drop_factor`` from ``drop_step`` on.
      average_from: start of the window over which the time-averaged product is returned.
      record_every: also return the products after every ``record_every`` steps (must divide ``num_steps``).

    Returns:
      ``(p_final [k], p_time_average [k])``, and ``p_history [num_steps // record_every, k]`` when
      ``record_every`` is given.
    """
    k = s.shape[0]
    drop = num_steps if drop_step is None else drop_step
    start = num_steps // 2 if average_from is None else average_from
    eta = lr / num_samples

    def step(carry, t):
        u, v, acc = carry
        xi = jax.random.normal(jax.random.fold_in(key, t), (k,))
        rate = jnp.where(t < drop, eta, eta * drop_factor)
        r = u * v - s + sigma * xi
        u, v = u - rate * r * v, v - rate * r * u
        acc = acc + jnp.where(t >= start, u * v, 0.0)
        return (u, v, acc), None

    init = (jnp.ones(k), jnp.ones(k), jnp.zeros(k))
    if record_every is None:
        (u, v, acc), _ = jax.lax.scan(step, init, jnp.arange(num_steps))
        return u * v, acc / max(num_steps - start, 1)
    if record_every <= 0 or num_steps % record_every:
        raise ValueError(f"record_every={record_every} must be positive and divide num_steps={num_steps}")

    def block(carry, b):
        carry, _ = jax.lax.scan(step, carry, b * record_every + jnp.arange(record_every))
        return carry, carry[0] * carry[1]

    (u, v, acc), hist = jax.lax.scan(block, init, jnp.arange(num_steps // record_every))
    return u * v, acc / max(num_steps - start, 1), hist


def mean_field_products(
    s: np.ndarray,
    sigma: float,
    steps: np.ndarray,
    *,
    lr: float,
    num_samples: int,
    drop_step: int | None = None,
    drop_factor: float = 0.1,
    p0: float = 1.0,
) -> np.ndarray:
    """The finite-time theory of :func:`train_modes`: each product's mean follows the logistic flow
    ``dp/dt = -2 eta p (p - s_eff)`` toward the soft threshold ``s_eff = s - eta sigma^2 / 2`` (the Ito drift of the
    label noise, ``+eta^2 sigma^2 p`` per step, balances ``-2 eta p s``), with ``eta`` dropping by ``drop_factor``
    at ``drop_step``; after the drop the modes below the high-rate threshold stay collapsed at 0 (see
    :func:`theory_products`). Fluctuations around the mean (the Gamma law) are ignored here (see
    :func:`mean_field_test_mse`). Returns ``[len(steps), k]``."""
    s = np.asarray(s, float)
    steps = np.asarray(steps, float)
    eta = lr / num_samples
    drop = np.inf if drop_step is None else float(drop_step)

    def flow(p_start, t, rate):
        se = s - rate * sigma**2 / 2.0
        # p(t) = se / (1 - (1 - se / p_start) exp(-2 rate se t)): tends to se (se > 0) or to 0 (se < 0) without
        # overflowing; se = 0 is the limit p_start / (1 + 2 rate p_start t).
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            decay = np.exp(-2.0 * rate * se * t[:, None])
            out = se / (1.0 - (1.0 - se / p_start) * decay)
        limit = p_start / (1.0 + 2.0 * rate * p_start * t[:, None])
        return np.where(np.abs(se) < 1e-12, limit, out)

    before = flow(np.full_like(s, p0), np.minimum(steps, drop), eta)
    if not np.isfinite(drop):
        return before
    at_drop = flow(np.full_like(s, p0), np.array([drop]), eta)[0]
    after = flow(at_drop, np.maximum(steps - drop, 0.0), eta * drop_factor)
    # Modes below the high-rate threshold have collapsed by the drop (log p drifts down at 2 eta (s - eta sigma^2/2)
    # per step) and do not regrow in the low-rate phase, as in theory_products; the mean alone would let them.
    after = np.where(s > eta * sigma**2 / 2.0, after, 0.0)
    return np.where((steps <= drop)[:, None], before, after)


def soft_threshold(s: np.ndarray, eta: float, sigma: float) -> np.ndarray:
    """``max(s - eta sigma^2 / 2, 0)``: the mean stationary product of each mode (see module docstring)."""
    return np.maximum(np.asarray(s) - eta * sigma**2 / 2.0, 0.0)


def theory_products(s: np.ndarray, sigma: float, lr: float, num_samples: int, drop_factor: float = 0.1) -> np.ndarray:
    """Predicted products after high-rate training then a rate drop: modes below the high-rate threshold have
    collapsed (and cannot regrow from ~0 in the short low-rate phase); the others sit at the low-rate
    soft threshold."""
    eta = lr / num_samples
    alive = np.asarray(s) > eta * sigma**2 / 2.0
    return np.where(alive, soft_threshold(s, eta * drop_factor, sigma), 0.0)


def mean_field_test_mse(
    problem: Problem,
    sigma: float,
    steps: np.ndarray,
    *,
    lr: float,
    drop_step: int | None = None,
    drop_factor: float = 0.1,
) -> np.ndarray:
    """Expected test MSE over training, ``[len(steps)]``: :func:`test_mse` of the mean-field products plus their
    variance, ``sum_k Var(p_k) / (n m)`` (the modes are orthonormal rank-one matrices), with the stationary Gamma
    law's ``Var(p) = eta sigma^2 E[p]`` at the current rate taken as quasi-stationary along the flow."""
    steps = np.asarray(steps, float)
    mean = mean_field_products(
        problem.s, sigma, steps, lr=lr, num_samples=problem.num_samples, drop_step=drop_step, drop_factor=drop_factor
    )
    eta = lr / problem.num_samples
    rate = np.where(steps < (np.inf if drop_step is None else drop_step), eta, eta * drop_factor)
    var = rate[:, None] * sigma**2 * np.maximum(mean, 0.0)
    return test_mse(problem, mean) + var.sum(axis=1) / problem.w.size


def test_mse(problem: Problem, products: np.ndarray) -> np.ndarray:
    """``mean((V diag(p) U - W)^2)`` for products ``[..., k]`` (the released script's test loss)."""
    p = np.asarray(products)
    w_hat = np.einsum("ik,...k,kj->...ij", problem.v_basis, p, problem.u_basis)
    return np.mean((w_hat - problem.w) ** 2, axis=(-2, -1))
