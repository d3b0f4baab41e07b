"""The headline checks of a pruning results.json against the paper's claims (rows for `common.app`'s report)."""

from __future__ import annotations

import numpy as np

KINDS = ("magnitude", "random")


def _row(name: str, value, paper: str, ok) -> dict:
    return {"name": name, "value": value, "paper": paper, "ok": ok}


def _density(x) -> float:
    return 1.0 if x is None else float(x)


def report(results: dict) -> list[dict]:
    """Matching well below density 1 with rewinding, every control worse, matching <=> zero barrier level by level,
    k > 0 deeper than k = 0, instability at k = 0 only, new small weights, predicted vs measured prune fraction."""
    e = results["imp"]
    low = e["lowest_matching_density"]
    out = [
        _row(
            "IMP (rewinding): lowest density with every level matching",
            "none" if low is None else round(low, 4),
            "matching down to a density well below 1 (here: <= 0.3)",
            bool(low is not None and low <= 0.3),
        )
    ]
    out += _ablation_rows(results)
    out += _lmc_rows(results)
    out += _stability_rows(results)
    nsw = results.get("new_small_weights")
    if nsw:
        ov = np.asarray(nsw["rank_overlap"]["mean"], float)
        ov = ov[np.isfinite(ov)]
        out.append(
            _row(
                "new small weights: rank overlap of the next level's pruned set with the smallest at w_k (mean)",
                round(float(np.mean(ov)), 3) if ov.size else "n/a",
                f"close to chance ({nsw['chance']}): retraining makes the weights the next level prunes",
                None,
            )
        )
    out += _flatness_rows(results.get("max_prune_fraction") or {})
    return out


def _ablation_rows(results: dict) -> list[dict]:
    e = results["imp"]
    low = e["lowest_matching_density"]
    dens = np.asarray(e["density"])
    j = int(np.argmin(np.abs(dens - (low if low is not None else dens[-1]))))
    imp_err = e["test_error"]["mean"][j]
    rows = []
    for name, a in results["ablations"].items():
        err = a["test_error"]["mean"][j]
        rows.append(
            _row(
                f"{name}: test error at density {dens[j]:.3f} (IMP {imp_err:.4f})",
                round(err, 4),
                "worse than IMP with rewinding",
                bool(err > imp_err) if name != "retrain_final" else None,
            )
        )
    return rows


def _lmc_rows(results: dict) -> list[dict]:
    rows = []
    conf = results.get("lmc_confusion", {})
    agree = total = 0
    for k, c in conf.items():
        n = sum(c.values())
        a = c["match_flat"] + c["nomatch_barrier"]
        agree, total = agree + a, total + n
        rows.append(
            _row(
                f"k = {k}: levels (over seeds) matching & flat / matching & barrier / not & flat / not & barrier",
                f"{c['match_flat']} / {c['match_barrier']} / {c['nomatch_flat']} / {c['nomatch_barrier']}",
                "zero barrier to the previous level if and only if matching",
                None,
            )
        )
    if total:
        rows.append(
            _row(
                f"levels where (barrier_error <= {results['barrier_tolerance']}) == matching, all k",
                round(agree / total, 3),
                "barrier ~0 if and only if matching (at higher sparsities)",
                bool(agree / total >= 0.8),
            )
        )
    rew = results.get("rewind", {})
    ks = sorted(rew, key=int)
    if len(ks) >= 2 and "0" in rew:
        deep = {k: _density(rew[k]) for k in ks}
        best_k = min((k for k in ks if k != "0"), key=lambda k: deep[k])
        rows.append(
            _row(
                "lowest matching density, k = 0 vs k = " + best_k,
                f"{deep['0']:.4f} vs {deep[best_k]:.4f}",
                "rewinding to k > 0 matches at lower density than k = 0",
                bool(deep[best_k] < deep["0"]),
            )
        )
    inst = results.get("instability")
    if inst:
        tol = results["barrier_tolerance"]
        b = [x["mean"] for x in inst["barrier_error"]]
        rows.append(
            _row(
                "instability (twin test-error barrier) at k = " + ", ".join(str(k) for k in inst["k"]),
                " / ".join(f"{x:.3f}" for x in b),
                "unstable at k = 0 (barrier > 0), stable after a few steps",
                bool(inst["k"][0] == 0 and b[0] > tol and min(b[1:], default=np.inf) <= tol),
            )
        )
    return rows


def _stability_rows(results: dict) -> list[dict]:
    e = results["imp"]
    match = np.asarray(e["matching"][1:], bool)
    tol = results["barrier_tolerance"]
    st = results.get("stability", {})
    rows = []
    for c, what in (("twin", "stable to SGD noise"), ("perturbed", "SGD returns to the same linearly connected mode")):
        if f"{c}_barrier_error" not in st or not match.any():
            continue
        b = np.asarray(st[f"{c}_barrier_error"]["mean"][1:], float)[match]
        rows.append(
            _row(
                f"{c}: test-error barrier to the IMP solution, matching levels (max)",
                round(float(np.nanmax(b)), 4),
                f"~0: {what} while matching",
                bool(np.nanmax(b) <= tol),
            )
        )
    return rows


def _flatness_rows(flat: dict) -> list[dict]:
    rows = []
    for key, entry in flat.items():
        if not key.startswith("level_"):
            continue
        for kind in KINDS:
            k = entry[kind]
            rows.append(
                _row(
                    f"{key}, {kind} pruning: predicted / measured largest fraction (eps = {flat['epsilon']})",
                    f"{k['predicted']:.3f} / {k['measured']:.3f}",
                    "predicted matches measured for random pruning; magnitude does a little better",
                    bool(abs(k["predicted"] - k["measured"]) <= flat["tolerance"]) if kind == "random" else None,
                )
            )
            q = entry.get("quadratic_check", {}).get(kind)
            if q:
                act, mod = np.mean(q["actual_rise"], axis=0)[0], np.mean(q["quadratic_rise"], axis=0)[0]
                rows.append(
                    _row(
                        f"{key}, {kind} pruning of {q['fractions'][0]}: train-loss rise actual / quadratic model",
                        f"{act:.4g} / {mod:.4g}",
                        "the bound assumes the quadratic model holds out to the pruned point",
                        None,
                    )
                )
    return rows
