"""Headline checks of an icl run for runs/REPORT.md (common.reproduce); every threshold comes from the run's
config (`report.*`, copied into results.json as `report_thresholds`)."""

from __future__ import annotations

import math

_DEFAULTS = {"bayes_ratio_max": 1.5, "ridge_ratio_max": 1.15, "flat_num_se": 2.0, "log2_M_star_range": (2.0, 8.0)}


def _fmt_m(m) -> str:
    return "inf" if m == "inf" else str(m)


def _star(est: dict) -> str:
    if est.get("log2_M_mean") is None:
        return "n/a (not bracketed by the sweep)"
    n, total = est["num_seeds"], len(est.get("per_seed_log2") or [])
    return f"{est['log2_M_mean']:.2f} +- {est['log2_M_se']:.2f} (SE, {n} of {total} seeds)"


def _row(name: str, value, paper: str, ok) -> dict:
    return {"name": name, "value": value, "paper": paper, "ok": ok}


def report(results: dict) -> list[dict]:
    """Headline numbers and pass/fail checks (see icl/README.md, "report checks")."""
    th = {**_DEFAULTS, **results.get("report_thresholds", {})}
    ms = results["M"]
    finite = [j for j, m in enumerate(ms) if m != "inf"]
    inf = ms.index("inf") if "inf" in ms else None
    out = _bayes_and_ridge_rows(results, th, finite, inf)
    if not finite:
        return out
    out += _threshold_rows(results, th, finite, inf)
    out += _distance_rows(results, finite[-1])
    if "batch_crossing" in results["threshold_M"]:
        x = results["threshold_M"]["batch_crossing"]
        lo, hi = th["log2_M_star_range"]
        out.append(
            _row(
                "log2 M* (distance-to-Ridge curves of two batch sizes cross; the paper's definition)",
                ("n/a" if x["log2_M"] is None else f"{x['log2_M']:.2f} (seed means); per seed ") + _star(x),
                f"expected in [{lo}, {hi}] at this scale; 14-15 for the paper's base model",
                None if x["log2_M"] is None else bool(lo <= x["log2_M"] <= hi),
            )
        )
    return out


def _bayes_and_ridge_rows(results: dict, th: dict, finite: list[int], inf: int | None) -> list[dict]:
    """The Bayesian phase at the smallest M, the Ridge phase at the largest finite M and at M = inf."""
    ms, lt, rt = results["M"], results["loss_true"], results["ridge_true"]
    se_t = results.get("loss_true_se", [0.0] * len(ms))
    out = []
    if finite:
        first = finite[0]
        ratio = results["loss_pretrain"][first] / max(results["dmmse_pretrain"][first], 1e-12)
        out.append(
            _row(
                f"loss_pretrain / dMMSE at M={ms[first]} (Bayesian phase)",
                round(ratio, 3),
                "~1 for small M (the model is the Bayes estimator of T_Pretrain)",
                bool(ratio < th["bayes_ratio_max"]),
            )
        )
    for j in ([finite[-1]] if finite else []) + ([inf] if inf is not None else []):
        out.append(
            _row(
                f"loss_true / Ridge at M={_fmt_m(ms[j])}",
                f"{lt[j] / rt[j]:.3f} (loss {lt[j]:.3f} +- {se_t[j]:.3f} SE, n={results.get('num_seeds')})",
                f"-> 1 above M* (check: < {th['ridge_ratio_max']})",
                bool(lt[j] / rt[j] < th["ridge_ratio_max"]),
            )
        )
    return out


def _threshold_rows(results: dict, th: dict, finite: list[int], inf: int | None) -> list[dict]:
    """M* (closer to Ridge from there on), flatness above it, and the non-Bayesian claim above it."""
    ms, lt, dt = results["M"], results["loss_true"], results["dmmse_true"]
    lp, dp = results["loss_pretrain"], results["dmmse_pretrain"]
    se_t = results.get("loss_true_se", [0.0] * len(ms))
    est = results["threshold_M"]["closer_to_ridge"]
    lo, hi = th["log2_M_star_range"]
    out = [
        _row(
            "log2 M* (predictions closer to Ridge than to dMMSE from there on)",
            _star(est),
            f"expected in [{lo}, {hi}] at this scale; 14-15 for the paper's base model (batch crossing)",
            None if est.get("log2_M_mean") is None else bool(lo <= est["log2_M_mean"] <= hi),
        )
    ]
    # M* as a sweep point: the first M at or above the (seed-mean) estimate; "above M*" are the points after it.
    x_star = est.get("log2_M")
    if x_star is None:
        return out
    log2 = [math.log2(ms[j]) for j in finite]
    j_star = next(j for j, v in zip(finite, log2, strict=True) if v >= x_star - 1e-9)
    above = [j for j in finite if j > j_star] + ([inf] if inf is not None else [])
    worst = max(above, key=lambda j: lt[j] - lt[j_star] - th["flat_num_se"] * math.hypot(se_t[j], se_t[j_star]))
    excess = lt[worst] - lt[j_star]
    bar = th["flat_num_se"] * math.hypot(se_t[worst], se_t[j_star])
    out.append(
        _row(
            f"T_True loss flat above M*: worst M={_fmt_m(ms[worst])} minus M={ms[j_star]}",
            f"{excess:+.3f} (allowed {bar:.3f} = {th['flat_num_se']} SE)",
            "task diversity beyond M* does not hurt (nor help much)",
            bool(excess <= bar),
        )
    )
    # The non-Bayesian claim: above M* the model is worse than dMMSE on its own pretraining distribution,
    # yet better than dMMSE on T_True.
    claim = [j for j in finite if j > j_star] or [finite[-1]]
    out.append(
        _row(
            f"non-Bayesian above M*: T_Pretrain loss > dMMSE, T_True < dMMSE, M={[ms[j] for j in claim]}",
            "; ".join(f"M={ms[j]}: {lp[j]:.3f}>{dp[j]:.3f}, {lt[j]:.3f}<{dt[j]:.3f}" for j in claim),
            "worse than the Bayes estimator of T_Pretrain on T_Pretrain, better on T_True",
            bool(all(lp[j] > dp[j] and lt[j] < dt[j] for j in claim)),
        )
    )
    return out


def _distance_rows(results: dict, last: int) -> list[dict]:
    """Distances to Ridge and dMMSE at the largest finite M, and dMMSE's generalisation."""
    ms = results["M"]
    d_r, d_d = results["dist_ridge"][last], results["dist_dmmse"][last]
    out = [
        _row(
            f"Delta(model, Ridge) / Delta(model, dMMSE) on T_True at M={ms[last]}",
            round(d_r / max(d_d, 1e-12), 3),
            "< 1 above M* (the model implements Ridge, not the pool's Bayes estimator)",
            bool(d_r < d_d),
        )
    ]
    if "dist_ridge_pretrain" in results:
        d_r, d_d = results["dist_ridge_pretrain"][last], results["dist_dmmse_pretrain"][last]
        out.append(
            _row(
                f"Delta(model, Ridge) / Delta(model, dMMSE) on T_Pretrain at M={ms[last]}",
                round(d_r / max(d_d, 1e-12), 3),
                "< 1 above M*: even on its pretraining tasks the model is nearer Ridge",
                bool(d_r < d_d),
            )
        )
    dt, rt = results["dmmse_true"], results["ridge_true"]
    out.append(
        _row(
            f"dMMSE_true / Ridge at M={ms[last]}",
            round(dt[last] / rt[last], 3),
            "> 1: the Bayes estimator of T_Pretrain generalises worse than the transformer",
            None,
        )
    )
    return out
