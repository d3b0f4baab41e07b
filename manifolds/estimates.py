"""Running and recording d* estimates with the config's estimator settings: one `Estimator` per run.

Every estimate of a run uses the same subspaces for the same target (its key is a fold_in chain of the target's
classes, never of the model), so differences between models are not blurred by different random subspaces.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from common import app
from manifolds import closed_form as cf
from manifolds import cutting_planes as cp

# fold_in purposes of the run's root key
_ESTIMATES, _KNOWN, _STARTS = 10, 11, 12


def budgets(config, image_norm: float = 1.0) -> tuple[cp.Budget, cp.Budget | None]:
    """(the estimator's budget, the convergence check's budget: same rate and reach, check_factor x the steps).
    The reach (`estimator.reach`) is in units of `image_norm`, the median norm of the test images (0: unlimited)."""
    e = config.estimator
    base = cp.RELEASED if e.optimizer == "released" else cp.DEFAULT
    radius = float(e.reach) * float(image_norm) if e.reach else math.inf
    budget = dataclasses.replace(base, lr=float(e.lr), steps=int(e.steps), radius=radius)
    return budget, (budget.longer(int(e.check_factor)) if e.check_factor else None)


def target_key(root: jax.Array, classes: tuple[int, ...]) -> jax.Array:
    """The subspace key of a target: fold_in(root, class) for each class, then the count of classes."""
    k = root
    for c in classes:
        k = jax.random.fold_in(k, int(c))
    return jax.random.fold_in(k, len(classes))


class Estimator:
    """Runs and records d* estimates (`records[name]`, `curves[name]`) with the config's settings."""

    def __init__(self, config, ds: dict, writer):
        e = config.estimator
        self.config, self.ds, self.writer = config, ds, writer
        self.dims = tuple(int(d) for d in e.dims)
        self.image_norm = float(np.median(np.linalg.norm(ds["xt"], axis=1)))
        self.budget, self.check = budgets(config, self.image_norm)
        self.bounds = None if e.bounds is None else (float(e.bounds[0]), float(e.bounds[1]))
        root = jax.random.key(config.seed)
        self.key = jax.random.fold_in(root, _ESTIMATES)
        self.start_key = jax.random.fold_in(root, _STARTS)
        self.records: dict[str, dict] = {}
        self.curves: dict[str, cp.CriticalDimension] = {}

    def starts(self, log_prob, params, target: tuple[int, ...], kind: str | None = None) -> np.ndarray | None:
        """Start points outside the target (None if there are none): `num_starts` test images ("test") or training
        images ("train"), in a fixed shuffled order, whose label (and, with filter_starts, prediction) is not in
        `target`; or, for "train_fresh", one random training image per (d, repeat) (the released protocol)."""
        e = self.config.estimator
        kind = kind or e.starts
        fresh = kind == "train_fresh"
        x, y = (self.ds["x"], self.ds["y"]) if kind != "test" else (self.ds["xt"], self.ds["yt"])
        k = target_key(self.start_key, target)
        order = np.asarray(jax.random.permutation(k, len(y)))
        lp = np.asarray(log_prob(params, jnp.asarray(x[order])))
        ok = ~np.isin(y[order], target)
        if e.filter_starts or fresh:  # else the estimator refuses points already in the target
            boundary = len(target) * np.exp(lp[:, list(target)]).min(axis=1) >= 0.5
            ok &= ~np.isin(np.argmax(lp, 1), target) & ~boundary
        n = len(self.dims) * int(e.repeats) if fresh else int(e.num_starts)
        idx = order[ok]
        if idx.size == 0:
            return None
        if fresh:  # a fresh draw per (d, repeat), with replacement when the pool is small
            pick = np.asarray(jax.random.choice(jax.random.fold_in(k, 1), idx.size, (n,), replace=idx.size < n))
            return x[idx[pick]]
        return x[idx[:n]]

    def __call__(self, name: str, log_prob, params, target, starts: str | None = None) -> dict:
        """One estimate, recorded under `name` (a name already recorded is returned as it is); value NaN when no
        start point lies outside the target. `starts` overrides `estimator.starts` ("test", "train")."""
        if name in self.records:
            return self.records[name]
        e = self.config.estimator
        t = cp.as_target(target)
        x0s = self.starts(log_prob, params, t.classes, starts)
        if x0s is None:
            logging.warning("d* %s: every start point is already in the target %s; recorded as NaN", name, t.classes)
            rec = {"value": math.nan, "error": math.nan, "converged": None, "note": "no start point outside target"}
            self.records[name] = rec
            return rec
        try:
            res = cp.critical_dimension(
                log_prob, x0s, t, self.dims, int(e.repeats), target_key(self.key, t.classes), params=params,
                budget=self.budget, check_budget=self.check, check_repeats=int(e.check_repeats),
                tolerance=float(e.tolerance) or None, basis=e.basis, bounds=self.bounds, fit_to=e.fit_to,
                num_boot=int(e.num_boot), max_per_call=int(e.max_per_call) or None,
                fresh_starts=(starts or e.starts) == "train_fresh",
            )  # fmt: skip
        except cp.EstimatorInputError as err:
            raise app.UserError(f"{name}: {err}") from err
        return self._record(name, res, len(x0s))

    def _record(self, name: str, res: cp.CriticalDimension, n_starts: int) -> dict:
        conv = res.convergence or {}
        rec = {
            "value": res.d_star,
            "error": res.d_star_error,
            "bracket": res.d_star_bracket,
            "effective_dimension": res.effective_dimension,
            "d_star_success": res.d_star_success["d_star"],
            "d_star_probability": res.d_star_probability["d_star"],
            "d_star_grid": res.d_star_grid,
            "converged": res.converged,
            "moved": conv.get("moved", math.nan),
            "d_star_subset_check": conv.get("d_star_subset_check", math.nan),
            "saturated_fraction": res.saturated_fraction,
            "num_starts": int(n_starts),
        }
        self.records[name] = rec
        self.curves[name] = res
        self.writer.write(0, run=f"estimate/{name}", **{k: v for k, v in rec.items() if k != "bracket"})
        logging.info("d* %-28s %.2f ± %.2f (grid %.0f, probability fit %.2f) converged=%s moved=%+.2f saturated=%.2f",
                     name, res.d_star, _finite(res.d_star_error), res.d_star_grid, res.d_star_probability["d_star"],
                     res.converged, _finite(rec["moved"]), res.saturated_fraction)  # fmt: skip
        return rec

    def mean_over(self, prefix: str, log_prob, params, classes, starts: str | None = None) -> dict:
        """d* averaged over `classes` (each its own estimate named prefix/class<c>; inf counted as D, NaN left
        out): `value` with the configured fit, `probability` with the released probability fit."""
        recs = [self(f"{prefix}/class{c}", log_prob, params, int(c), starts) for c in classes]

        def mean(key):  # a target never reached at any swept d counts as d* = D (no effective dimension left)
            vals = np.minimum(np.array([r.get(key, math.nan) for r in recs], float), float(self.ds["dim"]))
            return (float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan), vals.tolist()

        value, per_class = mean("value")
        return {
            "value": value,
            "probability": mean("d_star_probability")[0],
            "per_class": per_class,
            "converged": bool(all(r["converged"] for r in recs)),
        }


def _finite(x: float) -> float:
    return x if isinstance(x, float) and math.isfinite(x) else 0.0


def _known_case(config, dims, params, x0s, m, budget, check, bounds) -> dict[str, Any]:
    k = config.known_answer
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), _KNOWN), m)
    r = cp.critical_dimension(
        cf.closed_form, x0s, 1, dims, int(k.repeats), key, params=params, budget=budget, check_budget=check,
        check_repeats=int(k.repeats), num_boot=int(config.estimator.num_boot), bounds=bounds,
    )  # fmt: skip
    out = {"d_star": r.d_star, "error": r.d_star_error, "d_star_grid": r.d_star_grid, "converged": r.converged}
    return out | {"success_rate": r.success_rate.tolist(), "moved": (r.convergence or {}).get("moved")}


def known_answer(config, dim: int, est: Estimator) -> dict[str, Any]:
    """d* of closed-form regions of known codimension m.

    Tubes of codimension m inside the pixel box (`cf.box_tube`), measured as the data are: the estimator's
    budget, its convergence check and the box; and a halfspace in R^D at a distance (no box), measured with the
    released budget and its convergence check (4x the steps at the same rate): the released budget's upward bias
    on unbounded regions, and whether the check detects it.
    """
    k = config.known_answer
    dims = tuple(d for d in est.dims if d <= 2 * max([*k.codims, 1]) + 2)
    box = est.bounds if est.bounds is not None else (0.0, 1.0)
    out = {}
    for m in k.codims:
        params, x0s = cf.box_tube(dim, int(m), int(k.num_starts), distance=float(k.tube_distance), seed=int(m))
        out[f"codim{m}"] = {"truth": int(m), "dims": list(dims), "where": f"box {box}"}
        out[f"codim{m}"]["ours"] = _known_case(config, dims, params, x0s, int(m), est.budget, est.check, box)
    params, x0s = cf.halfspace(dim, float(k.halfspace_distance), int(k.num_starts))
    row = {"truth": 1, "dims": list(dims), "where": "R^D, no box"}
    row["released"] = _known_case(config, dims, params, x0s, 1, cp.RELEASED, cp.RELEASED.longer(4), None)
    out["halfspace"] = row
    for name, r in out.items():
        for label in ("ours", "released"):
            if label in r:
                logging.info("known answer %s (truth %d), %s: d* %.2f, grid %s, converged %s", name, r["truth"],
                             label, r[label]["d_star"], r[label]["d_star_grid"], r[label]["converged"])  # fmt: skip
    return out
