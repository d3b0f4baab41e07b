"""spectra's headline numbers for runs/REPORT.md: theory against simulation, the denoisers against the oracle."""

from __future__ import annotations


def report(results: dict) -> list[dict]:
    """Headline numbers for runs/REPORT.md."""
    out = [
        {
            "name": "density: max |quantile theory - simulation|",
            "value": results["density_max_abs_quantile_error"],
            "paper": "theory matches simulation (Fig. density)",
            "ok": results["density_max_abs_quantile_error"] < 0.03,
        },
        {
            "name": "overlaps: max |theory - simulation|",
            "value": results["overlap_max_abs_error"],
            "paper": "theory matches simulation (Fig. overlaps)",
            "ok": results["overlap_max_abs_error"] < 0.06,
        },
    ]
    den = results["denoise"]
    sig = next(iter(den["rie"]))
    for est, paper in (
        ("gd_hard", "0.91"),
        ("gd_shrink", "0.63"),
        ("rie", "0.41"),
        ("oracle", "0.41"),
    ):
        if est in den:
            v = den[est][sig]
            out.append(
                {
                    "name": f"squared rel. error {est} ({sig})",
                    "value": v * v,
                    "paper": f"{paper} (notes, b=0.5, s=1.5, N=1000, M=2000)",
                    "ok": None,
                }
            )
    gap = max(den["rie"][s] / den["oracle"][s] - 1 for s in den["rie"])
    out.append(
        {
            "name": "RIE error / oracle error - 1 (worst signal)",
            "value": gap,
            "paper": "RIE ~ oracle",
            "ok": gap < 0.03,
        }
    )
    if "phase_simulation_count_agreement" in results:
        v = results["phase_simulation_count_agreement"]
        out.append(
            {
                "name": "phase diagram: simulated bulk counts equal to the theory's",
                "value": v,
                "paper": "phase diagram in (b, s)",
                "ok": v == 1.0,
            }
        )
    pd = results["phase_diagram"]
    b_min = min(pd, key=float)
    out.append(
        {
            "name": f"s_c(b={b_min}) - c^(1/4)",
            "value": pd[b_min] - results["phase_bbp_threshold"],
            "paper": "s_c -> c^(1/4) as b -> 0, ~ b^(1/3)",
            "ok": None,
        }
    )
    return out
