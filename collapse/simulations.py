"""The simulations beside the trained networks: local attractivity of invariant sets in the SDE / SGD toys
(paper Fig. 1-3) and the linear teacher-student (Fig. 5). Each returns plain numpy results for results.json and
the figures."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from collapse import attractivity as attr
from collapse import exit_problems
from collapse import teacher_student as ts

_DT_GRID = (0.04, 0.02, 0.01, 0.005, 0.0025, 0.00125, 0.000625)


def _exit(r: dict, values: np.ndarray) -> dict[str, Any]:
    """The local-attractivity fractions on the host, and the measured threshold (``reach`` crosses 1/2)."""
    r = {k: np.asarray(v, np.float64) for k, v in r.items()}
    return {
        "measured": attr.crossing(values, r["reach"]),
        "collapse_probability": r["reach"],
        "stay_probability": r["stay"],
        "undecided": r["undecided"],
    }


def attractivity(config: ml_collections.ConfigDict, key: jax.Array) -> dict[str, Any]:
    """Predicted vs measured thresholds of local attractivity for the SDE toys, a vanishing hidden neuron and an
    identical pair (paper Fig. 1-3, Theorem 4.1 / Sec. 4).

    "Measured" is the exit problem: runs start outside the collapse radius ``r_in`` and inside a small
    neighbourhood ``r_out`` (at ``sqrt(r_in r_out)``, along the most unstable mode); the measured threshold is
    where P(reach ``r_in`` before leaving ``r_out``) crosses 1/2, which for a driftless log-distance is exact at
    any horizon. The finite-time global measure (P(collapsed at time T) from a wide start) is kept beside it.
    """
    keys = iter(jax.random.split(key, 12))  # consumed in a fixed order: quartic, single neuron, the two sets
    out: dict[str, Any] = {"quartic": _quartic(config.sde, keys), "single_neuron": _single_neuron(config, keys)}
    for name in ("hidden_neuron", "merging"):
        out[name] = _invariant_set(config, name, keys)
    return out


def _quartic(c: ml_collections.ConfigDict, keys) -> dict[str, Any]:
    """The quartic well: the SDE threshold sqrt(2 mu); Euler-Maruyama has its own, which moves with dt."""
    r_in, r_out = float(c.r_in), float(c.r_out)
    zetas = np.asarray(c.zetas, np.float64)
    dts = [float(d) for d in c.dts]
    q: dict[str, Any] = {
        "predicted": attr.critical_noise_1d(lambda t: attr.quartic_loss(t, c.mu), lambda t: t),
        "values": zetas,
        "dts": dts,
        "predicted_discrete": [exit_problems.em_critical_noise(c.mu, d) for d in dts],
        "predicted_discrete_dt_grid": {f"{d:g}": exit_problems.em_critical_noise(c.mu, d) for d in _DT_GRID},
        "measured_by_dt": [],
        "collapse_probability_by_dt": [],
    }
    k = next(keys)
    for d in dts:
        r = _exit(
            exit_problems.quartic_exit_probability(
                k, zetas, mu=c.mu, num_seeds=c.num_seeds, dt=d, time=c.exit_time, r_in=r_in, r_out=r_out
            ),
            zetas,
        )
        q["measured_by_dt"].append(r["measured"])
        q["collapse_probability_by_dt"].append(r["collapse_probability"])
        if d == dts[0]:
            q.update(r)
    times = [float(t) for t in c.times]
    ft = np.asarray(
        exit_problems.quartic_collapse_over_time(
            next(keys), zetas, times, mu=c.mu, num_seeds=c.num_seeds, dt=c.dt, eps=c.eps
        )
    )
    q["finite_time"] = {
        "times": times,
        "collapse_probability": ft,
        "measured": [attr.crossing(zetas, p) for p in ft],
    }
    return q


def _single_neuron(config: ml_collections.ConfigDict, keys) -> dict[str, Any]:
    """The single-neuron SDE (Fig. 2): closed form, the generic curvature condition, Euler-Maruyama's threshold."""
    c = config.sde
    r_in, r_out = float(c.r_in), float(c.r_out)
    x, y = attr.single_neuron_data(config.seed)
    lin = attr.linearize(attr.single_neuron_output, jnp.asarray(x), jnp.asarray(y), 2)
    lrs = np.asarray(c.neuron_lrs, np.float64)
    rate, _ = exit_problems.single_neuron_linear_rates(x, y, 1.0, c.neuron_label_noise)
    m2 = float(np.mean(x * x))

    def neuron_discrete(dt: float) -> float:  # s^2 = eta zeta^2 mean(x^2) at the map's own threshold
        return exit_problems.em_critical_noise(rate, dt) ** 2 / (c.neuron_label_noise**2 * m2)

    _, e_neuron = lin.most_unstable()
    sn: dict[str, Any] = {
        "predicted": attr.single_neuron_critical_lr(x, y, c.neuron_label_noise),
        "predicted_curvature": lin.critical_lr(c.neuron_label_noise, None),
        "predicted_discrete": neuron_discrete(c.neuron_dt),
        "predicted_discrete_dt_grid": {f"{d:g}": neuron_discrete(d) for d in _DT_GRID},
        "dt": float(c.neuron_dt),
        "values": lrs,
    }
    sn.update(
        _exit(
            exit_problems.single_neuron_exit_probability(
                next(keys),
                x,
                y,
                lrs,
                c.neuron_label_noise,
                num_seeds=c.neuron_num_seeds,
                dt=c.neuron_dt,
                time=c.exit_time,
                r_in=r_in,
                r_out=r_out,
                direction=e_neuron,
            ),
            lrs,
        )
    )
    p_ft = np.asarray(
        attr.simulate_single_neuron_sde(
            next(keys),
            x,
            y,
            lrs,
            c.neuron_label_noise,
            num_seeds=c.neuron_num_seeds,
            dt=c.neuron_dt,
            time=c.neuron_time,
        )
    )
    sn["finite_time"] = {
        "time": float(c.neuron_time),
        "collapse_probability": p_ft,
        "measured": attr.crossing(lrs, p_ft),
    }
    return sn


def _invariant_set(config: ml_collections.ConfigDict, name: str, keys) -> dict[str, Any]:
    """A vanishing hidden neuron of a 1-2-1 tanh net under minibatch SGD ("hidden_neuron"), or an identical pair
    of a 1-2-1 GELU net (the released merging toy) under full-batch GD on noisy labels ("merging")."""
    c = config.sde
    r_out = float(c.r_out)
    if name == "hidden_neuron":
        problem, zeta, batch = attr.make_hidden_neuron_problem(config.seed), c.hidden_label_noise, c.hidden_batch_size
    else:
        problem, zeta, batch = attr.make_merging_problem(config.seed), c.merge_label_noise, None
    hlin = attr.hidden_neuron_linearization(problem)
    eta_c = hlin.critical_lr(zeta, batch) if batch else hlin.critical_lr_full_batch(zeta)
    factors = c.hidden_lr_factors if name == "hidden_neuron" else c.merge_lr_factors
    hlrs = eta_c * np.asarray(factors, np.float64)
    _, e = hlin.most_unstable()
    # An identical pair's difference is resolved only to float32 rounding of the pair's weights (~1e-7 of
    # their size), so its collapse radius is larger.
    r_in_set = float(c.r_in) if problem.kind == "vanishing" else float(c.merge_r_in)
    kw = dict(num_seeds=c.hidden_num_seeds, num_steps=c.hidden_num_steps, r_in=r_in_set, r_out=r_out, direction=e)
    lyap_kw = dict(num_steps=c.hidden_num_steps, num_seeds=c.lyapunov_num_seeds)
    lyap = np.asarray(
        exit_problems.lyapunov_on_set(next(keys), problem, hlrs, zeta, batch, train_rest=False, **lyap_kw)
    )
    frozen = _exit(
        exit_problems.hidden_neuron_exit(next(keys), problem, hlrs, zeta, batch, train_rest=False, **kw), hlrs
    )
    r: dict[str, Any] = {
        "kind": problem.kind,
        "predicted": eta_c,
        "predicted_lyapunov": attr.root(hlrs, lyap),
        "lyapunov_exponent": lyap,
        "values": hlrs,
        "measured_rest_frozen": frozen["measured"],
        "collapse_probability_rest_frozen": frozen["collapse_probability"],
        "stay_probability_rest_frozen": frozen["stay_probability"],
        "undecided_rest_frozen": frozen["undecided"],
        "r_in": r_in_set,
    }
    if name == "hidden_neuron":
        moving = np.asarray(
            exit_problems.lyapunov_on_set(next(keys), problem, hlrs, zeta, batch, train_rest=True, **lyap_kw)
        )
        r["predicted_lyapunov_moving"] = attr.root(hlrs, moving)
        r["lyapunov_exponent_moving"] = moving
        r.update(_exit(exit_problems.hidden_neuron_exit(next(keys), problem, hlrs, zeta, batch, **kw), hlrs))
        p_ft = np.asarray(
            attr.simulate_hidden_neuron_sgd(
                next(keys), problem, hlrs, zeta, batch, num_seeds=c.hidden_num_seeds, num_steps=c.hidden_num_steps
            )
        )
        r["finite_time"] = {"collapse_probability": p_ft, "measured": attr.crossing(hlrs, p_ft)}
    return r


def teacher_student(config: ml_collections.ConfigDict, key: jax.Array) -> dict[str, Any]:
    """Simulated and predicted test MSE / collapsed modes per label-noise level."""
    c = config.teacher_student
    problem = ts.make_problem(config.seed)
    s = jnp.asarray(problem.s, jnp.float32)
    sigmas = jnp.asarray(c.sigmas, jnp.float32)
    keys = jax.random.split(key, c.num_seeds)

    record = int(c.get("record_every", 0)) or None

    def one(k, sigma):
        r = ts.train_modes(
            k,
            s,
            sigma,
            lr=c.lr,
            num_samples=problem.num_samples,
            num_steps=c.num_steps,
            drop_step=c.drop_step,
            record_every=record,
        )
        return r[0], (r[2] if record else r[0][None])

    products, history = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(keys, sigmas)
    products, history = np.asarray(products), np.asarray(history)  # [seeds, sigmas, k], [seeds, sigmas, T, k]
    out = {}
    for j, sigma in enumerate(c.sigmas):
        p = products[:, j]
        theory = ts.theory_products(problem.s, sigma, c.lr, problem.num_samples)
        out[f"{sigma:g}"] = {
            "test_mse": float(ts.test_mse(problem, p).mean()),
            "test_mse_sd": float(ts.test_mse(problem, p).std()),
            "collapsed_modes": float(np.mean(np.sum(p < c.collapse_threshold, axis=1))),
            "theory_test_mse": float(ts.test_mse(problem, theory)),
            "theory_collapsed_modes": int(np.sum(theory == 0)),
            "products": p.mean(axis=0),
        }
    out["_target"] = problem.s
    fine = np.linspace(0.0, float(max(c.sigmas)), 60)
    theory = [ts.theory_products(problem.s, f, c.lr, problem.num_samples) for f in fine]
    out["_theory_line"] = {
        "sigma": fine,
        "test_mse": [float(ts.test_mse(problem, t)) for t in theory],
        "collapsed_modes": [int(np.sum(t == 0)) for t in theory],
    }
    if record:  # Fig. 5's loss curves: simulated test MSE over training (mean over seeds) and the mean-field theory
        steps = record * np.arange(1, c.num_steps // record + 1)
        out["_curves"] = {"steps": steps, "test_mse": {}, "theory": {}}
        for j, sigma in enumerate(c.sigmas):
            out["_curves"]["test_mse"][f"{sigma:g}"] = ts.test_mse(problem, history[:, j]).mean(axis=0)
            out["_curves"]["theory"][f"{sigma:g}"] = ts.mean_field_test_mse(
                problem, sigma, steps, lr=c.lr, drop_step=c.drop_step
            )
    return out


def quartic_illustration(config: ml_collections.ConfigDict, key: jax.Array) -> dict[str, Any]:
    """Paths below / above the threshold and the stationary density below it (Fig. 1a-b; figure only)."""
    c = config.sde
    zc = float(np.sqrt(2.0 * c.mu))
    zetas = (round(0.8 * zc, 2), round(1.2 * zc, 2))
    theta = np.linspace(0.01, 3.0, 300)
    dens_z = (0.6, 1.0, 1.4)
    dens = [exit_problems.quartic_stationary_density(theta, z, c.mu) for z in dens_z]
    return {
        "zetas": zetas,
        "dt": float(c.dt),
        "paths": exit_problems.quartic_trajectories(key, zetas, mu=c.mu, dt=c.dt, time=20.0),
        "density": {"theta": theta, "zetas": dens_z, "p": [p / np.trapezoid(p, theta) for p in dens]},
    }


# Tolerances of the report's local-attractivity checks (relative, on the measured threshold): the exit problem
