"""Local attractivity as the paper's theorem states it: exit problems. Start outside the collapse radius and inside
a small neighbourhood of an invariant set, and ask whether a run reaches the collapse radius before it leaves the
neighbourhood (and then stays), for the quartic SDE, the single neuron and a hidden neuron of a two-layer network;
with the gambler's-ruin and Euler-Maruyama closed forms they are checked against (see collapse/attractivity.py for
the curvature condition and the linearisation)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from collapse.attractivity import (
    HiddenNeuronProblem,
    _sgd_parts,
    _sgd_step,
    embed,
    normal_coordinates,
    single_neuron_advance,
)

UNDECIDED, REACHED, ESCAPED = 0, 1, 2


def _exit_update(status, left, norm, r_in, r_out):
    """One step of the exit bookkeeping: ``status`` becomes REACHED / ESCAPED at the first exit from
    ``(r_in, r_out)``; ``left`` marks a REACHED run that later went back beyond ``r_out``."""
    status = jnp.where((status == UNDECIDED) & (norm <= r_in), REACHED, status)
    status = jnp.where((status == UNDECIDED) & (norm >= r_out), ESCAPED, status)
    left = left | ((status == REACHED) & (norm >= r_out))
    return status, left


def exit_scan(advance, state0, norm, num_steps: int, r_in: float, r_out: float) -> tuple[jax.Array, jax.Array]:
    """The exit problem's loop, shared by every simulator: ``num_steps`` steps of ``state = advance(state, i)`` with
    the bookkeeping of :func:`_exit_update` on ``norm(state)`` (one norm per run: a scalar or an array of runs).
    Returns ``(status, left)`` with the shape of ``norm(state0)``."""
    shape = jnp.shape(norm(state0))

    def step(carry, i):
        state, status, left = carry
        state = advance(state, i)
        status, left = _exit_update(status, left, norm(state), r_in, r_out)
        return (state, status, left), None

    init = (state0, jnp.zeros(shape, jnp.int32), jnp.zeros(shape, bool))
    (_, status, left), _ = jax.lax.scan(step, init, jnp.arange(num_steps))
    return status, left


def _exit_summary(status, left) -> dict[str, jax.Array]:
    return {
        "reach": jnp.mean(status == REACHED),
        "stay": jnp.mean((status == REACHED) & ~left),
        "undecided": jnp.mean(status == UNDECIDED),
    }


def _start_directions(key: jax.Array, num: int, dim: int, direction: np.ndarray | None) -> jax.Array:
    """``[num, dim]`` unit vectors: ``direction`` with a random sign, or uniformly random ones."""
    if direction is None:
        d = jax.random.normal(key, (num, dim))
        return d / jnp.linalg.norm(d, axis=1, keepdims=True)
    e = jnp.asarray(direction, jnp.float32) / float(np.linalg.norm(direction))
    return jnp.where(jax.random.bernoulli(key, 0.5, (num, 1)), 1.0, -1.0) * e[None]


def exit_probability_log_bm(drift: float, diffusion: float, r0: float, r_in: float, r_out: float) -> float:
    """Closed form: P(``||z||`` hits ``r_in`` before ``r_out``) when ``log ||z||`` is a Brownian motion with
    ``drift`` and variance ``diffusion`` per unit time, started at ``r0`` (the gambler's-ruin formula)."""
    a, b, u = np.log(r_in), np.log(r_out), np.log(r0)
    if drift == 0:
        return float((b - u) / (b - a))
    k = -2.0 * drift / diffusion
    return float((np.exp(k * b) - np.exp(k * u)) / (np.exp(k * b) - np.exp(k * a)))


def em_log_growth(a: float, b: float) -> float:
    """``E log|1 + a + b N(0, 1)|`` (adaptive quadrature, split at the integrable log singularity): the per-step
    drift of ``log |theta|`` under the Euler-Maruyama map ``theta -> theta (1 + a + b eps)``, i.e. of the
    discretised linear SDE ``d theta = (a / dt) theta dt + (b / sqrt dt) theta dW``."""
    from scipy import integrate, stats

    if b == 0:
        return float(np.log(abs(1.0 + a)))
    f = lambda e: np.log(np.abs(1.0 + a + b * e)) * stats.norm.pdf(e)  # noqa: E731
    sing = -(1.0 + a) / b
    if abs(sing) >= 40.0:  # the singularity is beyond 40 standard deviations: nothing there to resolve
        return float(integrate.quad(f, -40.0, 40.0, limit=200)[0])
    with warnings.catch_warnings():  # quad flags the (integrable) log singularity at the split point
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        return float(integrate.quad(f, -40.0, sing, limit=200)[0] + integrate.quad(f, sing, 40.0, limit=200)[0])


def em_critical_noise(rate: float, dt: float) -> float:
    """The ``zeta`` at which the Euler-Maruyama map of ``d theta = rate theta dt + zeta theta dW`` with step
    ``dt`` neither grows nor decays (``E log|1 + rate dt + zeta sqrt(dt) eps| = 0``); ``sqrt(2 rate)`` as
    ``dt -> 0``. The discretisation moves the threshold: the map's own threshold is what a simulation measures."""
    from scipy.optimize import brentq

    f = lambda z: em_log_growth(rate * dt, z * np.sqrt(dt))  # noqa: E731
    hi = np.sqrt(2.0 * rate)
    while f(hi) > 0:
        hi *= 1.5
    return float(brentq(f, 1e-9, hi, xtol=1e-10))


def quartic_exit_probability(
    key: jax.Array,
    zetas: jax.Array,
    *,
    mu: float = 1.5,
    num_seeds: int = 2000,
    dt: float = 0.01,
    time: float = 100.0,
    r_in: float = 1e-8,
    r_out: float = 1e-2,
) -> dict[str, jax.Array]:
    """Local attractivity of ``theta = 0`` for the quartic-well SDE (Euler-Maruyama), at each ``zeta``.

    Every run starts at ``|theta_0| = sqrt(r_in r_out)`` (random sign), outside the collapse radius ``r_in`` and
    inside the neighbourhood ``r_out``. Returns ``reach`` (P(reach ``r_in`` before ``r_out``)), ``stay`` (reached
    and never beyond ``r_out`` again up to ``time``) and ``undecided`` (neither by ``time``), each ``[len(zetas)]``.
    At the threshold ``log |theta|`` is driftless, so ``reach`` = 1/2 there, whatever the horizon.
    """
    num_steps = int(round(time / dt))
    k0, k1 = jax.random.split(key)
    r0 = np.sqrt(r_in * r_out)
    theta0 = r0 * jnp.sign(jax.random.normal(k0, (num_seeds,)))
    sqdt = np.sqrt(dt)

    def one(zeta):
        def advance(th, i):
            eps = jax.random.normal(jax.random.fold_in(k1, i), th.shape)
            return th - (th**3 - mu * th) * dt + zeta * th * sqdt * eps

        return _exit_summary(*exit_scan(advance, theta0, jnp.abs, num_steps, r_in, r_out))

    return jax.jit(jax.vmap(one))(jnp.asarray(zetas, jnp.float32))


def quartic_collapse_over_time(
    key: jax.Array,
    zetas: jax.Array,
    times: Sequence[float],
    *,
    mu: float = 1.5,
    num_seeds: int = 2000,
    dt: float = 0.01,
    init_scale: float = 2.0,
    eps: float = 1e-15,
) -> jax.Array:
    """P(|theta_t| < eps) at each of ``times`` (one simulation read at several times, as the paper's Fig. 1),
    ``theta_0 ~ init_scale N(0, 1)``: the finite-time, global measure. Returns ``[len(times), len(zetas)]``."""
    marks = [int(round(t / dt)) for t in times]
    if any(b <= a for a, b in zip(marks[:-1], marks[1:], strict=False)) or marks[0] <= 0:
        raise ValueError(f"times must be positive and increasing, got {list(times)}")
    k0, k1 = jax.random.split(key)
    theta0 = init_scale * jax.random.normal(k0, (num_seeds,))
    sqdt = np.sqrt(dt)

    def one(zeta):
        def step(th, i):
            e = jax.random.normal(jax.random.fold_in(k1, i), th.shape)
            return th - (th**3 - mu * th) * dt + zeta * th * sqdt * e, None

        out, th, start = [], theta0, 0
        for m in marks:
            th, _ = jax.lax.scan(step, th, jnp.arange(start, m))
            out.append(jnp.mean(jnp.abs(th) < eps))
            start = m
        return jnp.stack(out)

    return jax.jit(jax.vmap(one))(jnp.asarray(zetas, jnp.float32)).T


def quartic_trajectories(
    key: jax.Array,
    zetas: Sequence[float],
    *,
    mu: float = 1.5,
    num_paths: int = 5,
    dt: float = 0.01,
    time: float = 20.0,
    init_scale: float = 2.0,
) -> np.ndarray:
    """A few Euler-Maruyama paths ``[len(zetas), num_steps + 1, num_paths]`` of the quartic-well SDE (Fig. 1a)."""
    num_steps = int(round(time / dt))
    k0, k1 = jax.random.split(key)
    theta0 = init_scale * jax.random.normal(k0, (num_paths,))

    def one(zeta):
        def step(th, i):
            e = jax.random.normal(jax.random.fold_in(k1, i), th.shape)
            th = th - (th**3 - mu * th) * dt + zeta * th * np.sqrt(dt) * e
            return th, th

        _, path = jax.lax.scan(step, theta0, jnp.arange(num_steps))
        return jnp.concatenate([theta0[None], path])

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(zetas, jnp.float32)))


def quartic_stationary_density(theta: np.ndarray, zeta: float, mu: float = 1.5) -> np.ndarray:
    """Unnormalised stationary density of ``d theta = -(theta^3 - mu theta) dt + zeta theta dW`` on theta > 0:
    ``p ~ theta^(2 mu / zeta^2 - 2) exp(-theta^2 / zeta^2)`` (Fokker-Planck zero flux); integrable at 0 only
    for ``zeta^2 < 2 mu``: above the threshold all mass ends at the invariant point (Fig. 1b)."""
    theta = np.asarray(theta, np.float64)
    return theta ** (2.0 * mu / zeta**2 - 2.0) * np.exp(-(theta**2) / zeta**2)


def single_neuron_linear_rates(x: np.ndarray, y: np.ndarray, lr: float, label_noise: float) -> tuple[float, float]:
    """For the single-neuron SDE near ``w = 0``: ``u = (w1 + w2) / sqrt 2`` follows ``du = c u dt + s u dW`` with
    ``c = mean(x y)`` and ``s = zeta sqrt(eta mean(x^2))`` (the noise is rank one along ``(w2, w1)``), so
    ``log |u|`` has drift ``c - s^2 / 2`` and variance ``s^2``; ``v = (w1 - w2) / sqrt 2`` always decays."""
    return float(np.mean(x * y)), float(label_noise * np.sqrt(lr * np.mean(x * x)))


def single_neuron_exit_probability(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    lrs: jax.Array,
    label_noise: float,
    *,
    num_seeds: int = 1000,
    dt: float = 0.02,
    time: float = 200.0,
    r_in: float = 1e-8,
    r_out: float = 1e-2,
    direction: np.ndarray | None = None,
) -> dict[str, jax.Array]:
    """Local attractivity of ``w = 0`` for the single-neuron SDE (same dynamics as
    :func:`simulate_single_neuron_sde`), started at ``||w_0|| = sqrt(r_in r_out)`` in a random direction; the
    ``reach`` / ``stay`` / ``undecided`` fractions of :func:`quartic_exit_probability` per learning rate.
    ``direction``: start along this unit vector (random sign), e.g. the unstable mode ``(1, 1) / sqrt 2``; a
    start with a component along the decaying mode begins closer to ``r_in`` in the mode that decides, which
    biases ``reach`` up at the threshold."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    num_steps = int(round(time / dt))
    k0, k1 = jax.random.split(key)
    w0 = np.sqrt(r_in * r_out) * _start_directions(k0, num_seeds, 2, direction)

    def one(lr):
        def advance(w, i):
            return single_neuron_advance(w, i, k1, lr, x, y, label_noise, dt)

        norm = lambda w: jnp.linalg.norm(w, axis=1)  # noqa: E731
        return _exit_summary(*exit_scan(advance, w0, norm, num_steps, r_in, r_out))

    return jax.jit(jax.vmap(one))(jnp.asarray(lrs, jnp.float32))


def hidden_neuron_exit(
    key: jax.Array,
    problem: HiddenNeuronProblem,
    lrs: jax.Array,
    label_noise: float,
    batch_size: int | None,
    *,
    num_seeds: int = 512,
    num_steps: int = 4000,
    r_in: float = 1e-7,
    r_out: float = 1e-2,
    train_rest: bool = True,
    direction: np.ndarray | None = None,
) -> dict[str, jax.Array]:
    """Local attractivity of the problem's invariant set under nonlinear SGD: ``z`` starts at norm
    ``sqrt(r_in r_out)`` in a random direction; ``reach`` / ``stay`` / ``undecided`` per learning rate (see
    :func:`quartic_exit_probability`). ``train_rest``: every parameter trains (else only ``z`` moves).
    ``direction``: start along this unit vector with a random sign (e.g. the most unstable eigenvector of the
    linearisation), else in a uniformly random direction."""
    loss, draw = _sgd_parts(problem, label_noise, batch_size)
    base = jax.tree.map(jnp.asarray, problem.params)
    kind = problem.kind
    r0 = np.sqrt(r_in * r_out)

    def run(lr, k):
        k_init, k = jax.random.split(k)
        p0 = embed(kind, base, r0 * _start_directions(k_init, 1, problem.dim, direction)[0])

        def advance(p, i):
            idx, xi = draw(jax.random.fold_in(k, i))
            return _sgd_step(kind, loss, p, idx, xi, lr, train_rest)

        norm = lambda p: jnp.linalg.norm(normal_coordinates(kind, p))  # noqa: E731
        return exit_scan(advance, p0, norm, num_steps, r_in, r_out)

    keys = jax.random.split(key, num_seeds)

    def per_lr(lr):
        status, left = jax.vmap(lambda k: run(lr, k))(keys)
        return _exit_summary(status, left)

    return jax.jit(jax.vmap(per_lr))(jnp.asarray(lrs, jnp.float32))


def lyapunov_on_set(
    key: jax.Array,
    problem: HiddenNeuronProblem,
    lrs: jax.Array,
    label_noise: float,
    batch_size: int | None,
    *,
    num_steps: int = 4000,
    num_seeds: int = 64,
    train_rest: bool = True,
) -> jax.Array:
    """Top Lyapunov exponent per step of the normal coordinates, linearised along the SGD trajectory that the
    other parameters follow *on* the invariant set (``train_rest``; they fluctuate under the same minibatch and
    label noise) or held at the problem's point (then this is :func:`lyapunov_exponent` of
    :func:`hidden_neuron_linearization`). Negative: the set attracts. The tangent map is the exact Jacobian of
    the SGD step in ``z`` at ``z = 0`` (``jax.jvp``), so no second-order expansion is involved."""
    loss, draw = _sgd_parts(problem, label_noise, batch_size)
    base = jax.tree.map(jnp.asarray, problem.params)
    kind = problem.kind

    def run(lr, k):
        k_init, k = jax.random.split(k)
        v0 = jax.random.normal(k_init, (problem.dim,))

        def step(carry, i):
            p, v = carry
            idx, xi = draw(jax.random.fold_in(k, i))

            def z_grad(z):
                return normal_coordinates(kind, jax.grad(loss)(embed(kind, p, z), idx, xi))

            _, jv = jax.jvp(z_grad, (jnp.zeros_like(v),), (v,))
            v = v - lr * jv
            nv = jnp.linalg.norm(v)
            if train_rest:  # on the set: z stays 0 exactly, the rest does SGD
                p = _sgd_step(kind, loss, p, idx, xi, lr, True)
                p = embed(kind, p, jnp.zeros_like(v))
            return (p, v / nv), jnp.log(nv)

        _, logs = jax.lax.scan(step, (base, v0 / jnp.linalg.norm(v0)), jnp.arange(num_steps))
        return logs.mean()

    keys = jax.random.split(key, num_seeds)
    per_lr = jax.vmap(lambda lr: jnp.mean(jax.vmap(lambda k: run(lr, k))(keys)))
    return jax.jit(per_lr)(jnp.asarray(lrs, jnp.float32))
