"""The report rows of a manifolds run (`runs/REPORT.md`): the headline numbers beside the paper's claims.

Each trend is checked by its sign against the paper with its error bar over seeds (`summary.trends`): ok when the
change has the paper's sign and exceeds twice its standard error, False when it does not, with the size of the
change in the value column.
"""

from __future__ import annotations

import math

from manifolds import summary


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.2f}"


def _floats(obj):
    """results.json stores non-finite numbers as "inf" / "-inf" / "nan": back to floats."""
    if isinstance(obj, dict):
        return {k: _floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_floats(v) for v in obj]
    if obj in ("inf", "-inf", "nan"):
        return float(obj)
    return obj


def _known(results: dict) -> list[dict]:
    ka = results["known_answer"]
    rows = []
    codims = [k for k in ka if k.startswith("codim")]
    if codims:
        rows.append({
            "name": "codimension-m tubes in the pixel box: d_star_grid (converged?)",
            "value": ", ".join(f"m={ka[k]['truth']}: {_fmt(ka[k]['ours']['d_star_grid'])} "
                               f"({ka[k]['ours']['converged']})" for k in codims),
            "paper": "d* = m (Gordon's escape theorem)",
            "ok": bool(all(ka[k]["ours"]["d_star_grid"] == ka[k]["truth"] and ka[k]["ours"]["converged"]
                           for k in codims)),
        })  # fmt: skip
    if "halfspace" in ka:
        h = ka["halfspace"]["released"]
        rows.append({
            "name": "halfspace in R^D (truth 1), released budget: d* (check says converged?)",
            "value": f"{_fmt(h['d_star'])} (converged: {h['converged']}, moved {_fmt(h['moved'])})",
            "paper": "the released settings bias d* up (~2.5 for a halfspace); the check must say so",
            "ok": bool(h["d_star"] > 1.2 and h["converged"] is False),
        })  # fmt: skip
    return rows


def _trend_rows(results: dict) -> list[dict]:
    rows = []
    for name, t in results.get("trends", {}).items():
        if name == "robustness":
            value = f"Spearman {_fmt(t['delta'])} ± {_fmt(t['error'])} over {t['models']} models"
        else:
            key = summary.TRENDS[name][0]
            pts = results[key]
            line = " -> ".join(f"{k}: {_fmt(p['value'])}±{_fmt(p['error'])}" for k, p in pts.items())
            value = f"{line}; change {t['delta']:+.2f} ± {_fmt(t['error'])} ({_fmt(t['z'])} sigma)"
        verdict = "holds" if t["holds"] else ("opposite to the paper" if t["opposite"] else "not resolved")
        alt = results.get("trends_probability_fit", {}).get(name)
        if alt:
            value += f"; probability fit: change {alt['delta']:+.2f} ± {_fmt(alt['error'])} ({_fmt(alt['z'])} sigma)"
        rows.append({"name": f"trend: {name} ({verdict})", "value": value, "paper": t["claim"], "ok": t["holds"]})
    return rows


def report(results: dict) -> list[dict]:
    """Headline numbers and the paper's directions for runs/REPORT.md."""
    results = _floats(results)
    dstar = results["d_star"]
    vals = [r["value"] for r in dstar.values() if math.isfinite(r["value"])]
    dim = results["D"]
    out = [{
        "name": f"d* per class (D={dim}), min / max",
        "value": f"{min(vals):.2f} / {max(vals):.2f} (effective dim {dim - max(vals):.1f}-{dim - min(vals):.1f})"
        + (f"; {len(dstar) - len(vals)} classes never reached" if len(vals) < len(dstar) else ""),
        "paper": "CIFAR-10 ResNet-20: 21-330 of 3072 (class manifolds nearly full-dimensional)",
        "ok": bool(max(vals) < 0.25 * dim) if vals else False,
    }] if vals else [{"name": "d* per class", "value": "never reached", "paper": "21-330", "ok": False}]  # fmt: skip
    out += _known(results)
    b = results["d_star_boundary"]
    ks = sorted(b, key=int)
    bv = [b[k]["value"] for k in ks]
    out.append({
        "name": "d* of k-class boundaries, k = " + "/".join(ks),
        "value": " / ".join(f"{x:.2f}" for x in bv),
        "paper": "boundaries are lower-dimensional: d* grows with k",
        "ok": bool(all(b2 > b1 for b1, b2 in zip(bv, bv[1:], strict=False))),
    })  # fmt: skip
    out += _trend_rows(results)
    c = results["converged"]
    out.append({
        "name": "estimates converged (4x the steps at the same rate: d* moved by at most its error)",
        "value": f"{c['fraction']:.0%} of {len(c['by_estimate'])}",
        "paper": "the estimate must not depend on the optimiser budget (target: >= 90%)",
        "ok": bool(c["fraction"] >= 0.9),
    })  # fmt: skip
    return out
