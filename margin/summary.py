"""The results.json sections, from the raw outputs of `margin.stages` (keys documented in margin/README.md)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from margin import neural_collapse as nc
from margin import perceptron, probes, teacher_student, toys
from margin import quasi_homogeneous as qh

NC_KEYS = ("nc1", "nc2_cos_max_dev", "nc2_norm_cv", "nc3", "bias_ratio", "margin")


def monotone(hist: dict) -> dict[str, Any]:
    """Post-separation steps and the fraction at which γ and the smoothed margin did not decrease (all runs)."""
    c = np.asarray(hist["counts"], np.int64).sum(axis=0)
    return {
        "post_separation_steps": int(c[0]),
        "smoothed_non_decreasing": int(c[2]),
        "raw_non_decreasing": int(c[1]),
        "fraction": float(c[2] / c[0]) if c[0] else None,
        "raw_fraction": float(c[1] / c[0]) if c[0] else None,
    }


def toy(stage: dict) -> dict[str, Any]:
    """Per toy: trained direction vs its program over time, ℓ2 margins, γ against γ*, the non-convex program."""
    x, y = stage["x"], stage["y"]
    out = {}
    for model, r in stage["models"].items():
        hist, prog = r["hist"], r["program"]
        beta_end = hist["end"]["beta"][:, -1]
        err = hist["end"]["direction_error"]
        out[model] = {
            "model": r["name"],
            "rates": r["rates"],
            "direction_error": float(np.mean(err[:, -1])),
            "direction_error_per_seed": err[:, -1].tolist(),
            "direction_error_over_time": {"step": hist["chunk_step"].tolist(), "mean": err.mean(0).tolist()},
            "l2_margin": float(np.mean([toys.l2_margin(b, x, y) for b in beta_end])),
            "program_margin": float(prog["prog"]["normalized_margin"]),
            "program_l2_margin": toys.l2_margin(prog["prog"]["beta"], x, y),
            "gamma": float(np.mean(hist["gamma"][:, -1])),
            "program_beta": prog["beta_dir"].tolist(),
            "trained_beta": beta_end.mean(0).tolist(),
            "program_kkt": {k: v for k, v in prog["prog"]["kkt"].items() if k != "multipliers"},
            "nonconvex_program": prog["nonconvex"],
        }
    return out


def _flat_rates(rates) -> dict[str, float]:
    return {qh.path_name(p): float(r) for p, r in jax.tree_util.tree_flatten_with_path(rates)[0]}


def robustness(stage: dict, eps: list) -> dict[str, Any]:
    """Per network: PGD-ℓ2 accuracy vs ε, its rates Λ and the rate-λ_max parameters, separation and γ."""
    out = {}
    for model, r in stage["models"].items():
        flat = _flat_rates(r["rates"])
        top = qh.rate_max(r["rates"])
        out[model] = {
            "eps": list(eps),
            "accuracy": r["accuracy"].mean(0).tolist(),
            "accuracy_per_seed": r["accuracy"].tolist(),
            "rates": flat,
            "rate_max_parameters": [n for n, v in flat.items() if abs(v - top) < 1e-9],
            "rate_check_relative_error": r["check_err"],
            "separated_fraction": float(np.mean(r["hist"]["min_margin"][:, -1] > 0)),
            "gamma": float(np.mean(r["hist"]["gamma"][:, -1])),
        }
    return out


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """The least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def sparsity(stage: dict, fit_from: float) -> dict[str, Any]:
    """The output bias against the rate-½ parameters over training, and its decay exponent against their scale.

    Theory (margin/README.md): |db/dτ| ≤ 1 in loss-normalised time while s = ‖θ_½‖² grows exponentially in τ, so
    the ratio ρ = |b|/s falls at least like s^(-1) up to a logarithm. `slope` is d log ρ / d log s of the seed-mean
    curves over the chunks from the fraction `fit_from` of training on; `slope_per_seed` the same per seed (a seed
    whose bias passes through 0 has a transient of either sign there).
    """
    r = stage["models"]["quasi_homogeneous"]
    end, flat = r["hist"]["end"], _flat_rates(r["rates"])
    top = qh.rate_max(r["rates"])
    ratio, s, b = end["sparsity_ratio"], end["scale_rest"], end["scale_top"]
    first = int(fit_from * ratio.shape[1])
    slopes = [slope(s[i, first:], ratio[i, first:]) for i in range(ratio.shape[0])]
    mean_slope = slope(s[:, first:].mean(0), ratio[:, first:].mean(0))
    bias_slopes = [slope(s[i, first:], b[i, first:]) for i in range(ratio.shape[0])]
    return {
        "parameters": [n for n, v in flat.items() if abs(v - top) < 1e-9],
        "rest_rate": probes.rest_rate(r["rates"]),
        "definition": "‖θ_max‖^(1/λ_max) / ‖θ_rest‖^(1/λ_rest): constant along characteristic curves",
        "step": r["hist"]["chunk_step"].tolist(),
        "ratio": ratio.mean(0).tolist(),
        "ratio_per_seed": ratio.tolist(),
        "scale_rest_per_seed": s.tolist(),
        "decay_factor": float(np.mean(ratio[:, -1]) / np.mean(ratio[:, 0])),
        "fit_from_step": int(r["hist"]["chunk_step"][first]),
        "slope_per_seed": slopes,
        "slope": mean_slope,
        "bias_slope_per_seed": bias_slopes,
        "theory_slope": -1.0,
    }


def collapse_model(r: dict, k: int, dim: int, description: str) -> dict[str, Any]:
    """One neural-collapse model: final metrics (mean and per seed), margin / γ_ETF, the metrics over training."""
    end = r["hist"]["end"]
    etf = nc.etf_margin(k, dim)
    per_seed = {key: end[key][:, -1].tolist() for key in NC_KEYS}
    per_seed["margin_over_etf"] = (end["margin"][:, -1] / etf).tolist()
    return {
        "model": description,
        **{key: float(np.mean(end[key][:, -1])) for key in NC_KEYS},
        "margin_over_etf": float(np.mean(end["margin"][:, -1]) / etf),
        "per_seed": per_seed,
        "etf_margin": etf,
        "K": int(k),
        "d": int(dim),
        "num_examples": r["num_examples"],
        "rate_check_relative_error": r["check_err"],
        "over_time": {
            "step": r["hist"]["chunk_step"].tolist(),
            **{key: end[key].mean(0).tolist() for key in NC_KEYS},
            "margin_over_etf_per_seed": (end["margin"] / etf).tolist(),
        },
    }


def neural_collapse(stage: dict, config) -> dict[str, Any]:
    u, m = config.nc_ufm, config.nc_mlp
    res = collapse_model(stage["ufm"], u.classes, u.dim, "unconstrained features -> BatchNorm -> (W, b)")
    src = stage["source"]
    res["mlp"] = collapse_model(stage["mlp"], 10, m.dim, f"MLP {tuple(m.hidden)} with BatchNorm on {src}")
    res["control"] = collapse_model(
        stage["control"], 10, m.dim, f"the same MLP without normalisation or classifier bias (Λ = I/L) on {src}"
    )
    return res


def cover(raw: dict, p) -> dict[str, Any]:
    ps = list(p.cover_p)
    theory = np.asarray([perceptron.cover_probability(q, p.cover_n) for q in ps])
    se = np.sqrt(np.maximum(theory * (1 - theory), 1e-12) / p.cover_draws)
    return {
        "N": p.cover_n,
        "P": ps,
        "measured": raw["fraction"].tolist(),
        "theory": theory.tolist(),
        "draws": p.cover_draws,
        "max_abs_z": float(np.max(np.abs(raw["fraction"] - theory) / np.maximum(se, 0.5 / p.cover_draws))),
        "lp_checked": raw["lp_checked"],
        "lp_found_separable": raw["lp_found_separable"],
    }


def teacher_student_summary(raw: dict, p) -> dict[str, Any]:
    """Per student: mean error and its standard error over draws, the theory, and the largest |mean - theory|."""
    alphas = np.asarray(p.ts_alphas, np.float64)
    out: dict[str, Any] = {"N": p.ts_n, "alpha": alphas.tolist(), "draws": p.ts_draws}
    for name, theory_fn in teacher_student.THEORY.items():
        e = raw[name]
        mean, se = e.mean(1), e.std(1, ddof=1) / np.sqrt(e.shape[1])
        theory = theory_fn(alphas)
        out[name] = mean.tolist()
        out[f"{name}_se"] = se.tolist()
        out[f"{name}_theory"] = theory.tolist()
        out[f"{name}_max_abs_dev"] = float(np.max(np.abs(mean - theory)))
    return out


def committee(raw: dict, c) -> dict[str, Any]:
    """ε_g over α: simulation (mean ± s.e. over seeds) and the ODEs; plateau height, escape time, final error.

    The plateau is read at α = `plateau_alpha`; a run has escaped at the first record where ε_g < plateau / 2.
    """
    alpha, sim, ode = raw["alpha"], raw["eps_sim"], raw["eps_ode"]
    i_plat = int(np.argmin(np.abs(alpha - c.plateau_alpha)))

    def escape(eps):
        plat = eps[:, i_plat : i_plat + 1]
        below = eps < plat / 2
        below[:, : i_plat + 1] = False
        return np.where(below.any(1), alpha[np.argmax(below, axis=1)], np.inf)

    n = sim.shape[0]
    return {
        "K": c.student_units,
        "M": c.teacher_units,
        "N": c.n,
        "lr": c.lr,
        "seeds": n,
        "alpha": alpha.tolist(),
        "eps_sim": sim.mean(0).tolist(),
        "eps_sim_se": (sim.std(0, ddof=1) / np.sqrt(n)).tolist(),
        "eps_ode": ode.mean(0).tolist(),
        "eps_sim_per_seed": sim.tolist(),
        "eps_ode_per_seed": ode.tolist(),
        "plateau_alpha": float(alpha[i_plat]),
        "plateau_sim": float(sim[:, i_plat].mean()),
        "plateau_sim_se": float(sim[:, i_plat].std(ddof=1) / np.sqrt(n)),
        "plateau_ode": float(ode[:, i_plat].mean()),
        "escape_alpha_sim": escape(sim).tolist(),
        "escape_alpha_ode": escape(ode).tolist(),
        "final_sim": float(sim[:, -1].mean()),
        "final_ode": float(ode[:, -1].mean()),
        "max_abs_dev_mean_curve": float(np.max(np.abs(sim.mean(0) - ode.mean(0)))),
    }
