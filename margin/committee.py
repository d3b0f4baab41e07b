"""Online learning in a soft committee machine: the order-parameter ODEs against simulated online SGD.

Student σ(x) = Σ_{i<K} g(J_i·x/√N) learns a teacher τ(x) = Σ_{n<M} g(B_n·x/√N), g(u) = erf(u/√2), from a stream of
fresh Gaussian inputs x ~ N(0, I_N) by online SGD on ½(σ - τ)²:

    J_i <- J_i + (η/√N) δ_i x,   δ_i = g'(h_i) (τ - σ),   h_i = J_i·x/√N.

As N -> ∞ the order parameters Q_ik = J_i·J_k/N, R_in = J_i·B_n/N (T_nm = B_n·B_m/N fixed) self-average and obey
ODEs in α = steps/N (Saad & Solla 1995; Biehl & Schwarze 1995; the online-learning chapter of the review):

    dR_in/dα = η <δ_i y_n>,    dQ_ik/dα = η <δ_i h_k + δ_k h_i> + η² <δ_i δ_k>,

with Gaussian averages of erf in closed form, the covariance C of the fields u = (h_1..h_K, y_1..y_M) being
[[Q, R], [Rᵀ, T]]:
    I2(a,b)     = <g(u_a) g(u_b)>       = (2/π) arcsin(C_ab / sqrt((1+C_aa)(1+C_bb)))
    I3(a,b,c)   = <g'(u_a) u_b g(u_c)>  = (2/π) (C_bc(1+C_aa) - C_ab C_ac) / ((1+C_aa) sqrt(Λ3))
    I4(a,b,c,d) = <g'(u_a) g'(u_b) g(u_c) g(u_d)> = (4/π²) arcsin(Λ0 / sqrt(Λ1 Λ2)) / sqrt(Λ4)
(Λ's in `_i4`), and ε_g = ½<(σ - τ)²> = ½ Σ_ab s_a s_b I2(a,b) with s = -1 on student fields, +1 on teacher fields.
Both the ODEs and the simulation run in JAX; the simulation's ε_g is the exact Gaussian error of its (Q, R).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from common import sweep


def covariance(q: jax.Array, r: jax.Array, t: jax.Array) -> jax.Array:
    """C = [[Q, R], [Rᵀ, T]], the covariance of the student and teacher fields (h, y)."""
    return jnp.block([[q, r], [r.T, t]])


def _i2(c: jax.Array) -> jax.Array:
    d = 1.0 + jnp.diag(c)
    return (2 / jnp.pi) * jnp.arcsin(c / jnp.sqrt(d[:, None] * d[None, :]))


def _i3(c: jax.Array) -> jax.Array:
    """I3[a, b, c] = <g'(u_a) u_b g(u_c)>."""
    d = 1.0 + jnp.diag(c)
    caa = d[:, None, None]
    cab, cac, cbc = c[:, :, None], c[:, None, :], c[None, :, :]
    lam3 = caa * d[None, None, :] - cac**2
    return (2 / jnp.pi) * (cbc * caa - cab * cac) / (caa * jnp.sqrt(lam3))


def _i4(c: jax.Array) -> jax.Array:
    """I4[a, b, c, d] = <g'(u_a) g'(u_b) g(u_c) g(u_d)>."""
    n = c.shape[0]
    d = 1.0 + jnp.diag(c)
    ix = jnp.ix_(*(jnp.arange(n),) * 4)
    a, b, cc, dd = ix

    def cov(i, j):
        return c[i, j]

    caa, cbb, ccc, cdd = d[a], d[b], d[cc], d[dd]
    cab, cac, cad, cbc, cbd, ccd = cov(a, b), cov(a, cc), cov(a, dd), cov(b, cc), cov(b, dd), cov(cc, dd)
    lam4 = caa * cbb - cab**2
    lam0 = lam4 * ccd - cbc * cbd * caa - cac * cad * cbb + cab * cac * cbd + cab * cad * cbc
    lam1 = lam4 * ccc - cbc**2 * caa - cac**2 * cbb + 2 * cab * cac * cbc
    lam2 = lam4 * cdd - cbd**2 * caa - cad**2 * cbb + 2 * cab * cad * cbd
    return (4 / jnp.pi**2) * jnp.arcsin(lam0 / jnp.sqrt(lam1 * lam2)) / jnp.sqrt(lam4)


def _signs(k: int, m: int) -> jax.Array:
    return jnp.concatenate([-jnp.ones(k), jnp.ones(m)])


def generalization_error(q: jax.Array, r: jax.Array, t: jax.Array) -> jax.Array:
    """ε_g = ½<(σ - τ)²> over x ~ N(0, I) for the order parameters (Q, R, T)."""
    s = _signs(q.shape[0], t.shape[0])
    return 0.5 * s @ _i2(covariance(q, r, t)) @ s


def ode_rhs(q: jax.Array, r: jax.Array, t: jax.Array, eta: float) -> tuple[jax.Array, jax.Array]:
    """(dQ/dα, dR/dα) of online SGD (module docstring)."""
    k = q.shape[0]
    s = _signs(k, t.shape[0])
    c = covariance(q, r, t)
    i3 = jnp.einsum("abc,c->ab", _i3(c), s)  # <g'(u_a) u_b (τ - σ)>
    i4 = jnp.einsum("abcd,c,d->ab", _i4(c), s, s)  # <g'(u_a) g'(u_b) (τ - σ)²>
    dr = eta * i3[:k, k:]
    dq = eta * (i3[:k, :k] + i3[:k, :k].T) + eta**2 * i4[:k, :k]
    return dq, dr


def integrate(q0, r0, t, eta: float, alpha_max: float, d_alpha: float, record_every: int) -> dict[str, jax.Array]:
    """RK4 integration of the ODEs from (Q0, R0) to α_max; ε_g, Q, R every `record_every` steps (α = 0 first)."""
    num = int(round(alpha_max / d_alpha))
    if num % record_every:
        raise ValueError(f"record_every={record_every} must divide the {num} ODE steps")

    def f(y):
        return ode_rhs(y[0], y[1], t, eta)

    def rk4(y, _):
        k1 = f(y)
        k2 = f(jax.tree.map(lambda a, b: a + 0.5 * d_alpha * b, y, k1))
        k3 = f(jax.tree.map(lambda a, b: a + 0.5 * d_alpha * b, y, k2))
        k4 = f(jax.tree.map(lambda a, b: a + d_alpha * b, y, k3))
        new = jax.tree.map(lambda a, b1, b2, b3, b4: a + d_alpha / 6 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4)
        return new, None

    def block(y, _):
        y, _ = jax.lax.scan(rk4, y, None, length=record_every)
        return y, (generalization_error(y[0], y[1], t), y[0], y[1])

    y0 = (q0, r0)
    _, (eps, q, r) = jax.lax.scan(block, y0, None, length=num // record_every)
    first = generalization_error(q0, r0, t)
    return {
        "alpha": d_alpha * record_every * jnp.arange(num // record_every + 1),
        "eps": jnp.concatenate([first[None], eps]),
        "q": jnp.concatenate([q0[None], q]),
        "r": jnp.concatenate([r0[None], r]),
    }


def g(u: jax.Array) -> jax.Array:
    """The activation erf(u/√2)."""
    return jax.scipy.special.erf(u / math.sqrt(2.0))


def g_prime(u: jax.Array) -> jax.Array:
    return math.sqrt(2.0 / math.pi) * jnp.exp(-0.5 * u * u)


def init_networks(key: jax.Array, k: int, m: int, n: int, init_std: float) -> tuple[jax.Array, jax.Array]:
    """A teacher B [M, N] with B_n·B_m/N = δ_nm (orthonormal rows × √N), and a student J [K, N] ~ N(0, init_std²)."""
    kb, kj = jax.random.split(key)
    b = jnp.linalg.qr(jax.random.normal(kb, (n, m), jnp.float32))[0].T * jnp.sqrt(float(n))
    return jax.random.normal(kj, (k, n), jnp.float32) * init_std, b


def order_parameters(j: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    n = j.shape[1]
    return j @ j.T / n, j @ b.T / n, b @ b.T / n


def simulate(k: int, m: int, n: int, eta: float, num_records: int, steps_per_record: int, init_std: float, key):
    """Online SGD from one seed: (Q, R, T, ε_g) at the start and after every `steps_per_record` examples."""
    kn, kd = jax.random.split(key)
    j, b = init_networks(kn, k, m, n, init_std)

    def step(j, kx):
        x = jax.random.normal(kx, (n,), jnp.float32)
        h, y = j @ x / jnp.sqrt(float(n)), b @ x / jnp.sqrt(float(n))
        delta = g_prime(h) * (jnp.sum(g(y)) - jnp.sum(g(h)))
        return j + (eta / jnp.sqrt(float(n))) * delta[:, None] * x[None, :], None

    def record(j, kr):
        j, _ = jax.lax.scan(step, j, jax.random.split(kr, steps_per_record))
        q, r, t = order_parameters(j, b)
        return j, (q, r, generalization_error(q, r, t))

    q0, r0, t = order_parameters(j, b)
    _, (q, r, eps) = jax.lax.scan(record, j, jax.random.split(kd, num_records))
    return {
        "q": jnp.concatenate([q0[None], q]),
        "r": jnp.concatenate([r0[None], r]),
        "t": t,
        "eps": jnp.concatenate([generalization_error(q0, r0, t)[None], eps]),
    }


def _ode_from(eta, alpha_max, d_alpha, record_every, q0, r0, t):
    return integrate(q0, r0, t, eta, alpha_max, d_alpha, record_every)


def compare(
    keys: jax.Array,
    *,
    k: int,
    m: int,
    n: int,
    eta: float,
    alpha_max: float,
    records: int,
    init_std: float,
    d_alpha: float = 0.01,
) -> dict[str, np.ndarray]:
    """Simulated online SGD from each key and the ODEs integrated from each run's own initial (Q, R).

    Returns `alpha` [records + 1] and, per run [R, records + 1], `eps_sim`, `eps_ode`, and the final `q`, `r`.
    """
    steps = int(round(alpha_max * n / records))
    num_runs = int(keys.shape[0])
    sim = sweep.vmapped(simulate, static=(k, m, n, eta, records, steps, init_std))(keys)
    record_every = int(round(alpha_max / records / d_alpha))
    ode = sweep.vmapped(_ode_from, static=(eta, alpha_max, d_alpha, record_every))(
        sim["q"][:, 0], sim["r"][:, 0], sim["t"]
    )
    sim, ode = sweep.to_numpy(sim, num_runs), sweep.to_numpy(ode, num_runs)
    return {
        "alpha": ode["alpha"][0],
        "eps_sim": sim["eps"],
        "eps_ode": ode["eps"],
        "q_sim": sim["q"][:, -1],
        "r_sim": sim["r"][:, -1],
        "q_ode": ode["q"][:, -1],
        "r_ode": ode["r"][:, -1],
    }
