"""The flatness bound on the fraction prunable in one IMP iteration: predicted from the Hessian spectrum at an IMP
solution, measured by training inside the pruned subspace from the projected solution.

Predicted (`hessian.max_prune_fraction`): the full spectrum over the D remaining weights of the level's solution
(reached at the end of the schedule, after the learning-rate drops: close to a minimum), per epsilon and pruning
kind. Measured: from the same solution, a fraction p of the remaining weights is pruned (magnitude or uniformly at
random), the other weights keep their solution values (the projection onto the axial subspace), and the network is
trained inside the subspace from step `flatness.refine_from` of the schedule (the low-rate tail); p succeeds at
epsilon when the trained loss is within epsilon of the solution's (loss only: does the subspace meet the sublevel
set). The measured largest fraction is the largest grid value with every smaller one succeeding.
How far the quadratic model behind the bound holds is checked directly (`hessian.quadratic_check`): the train-loss
rise of each pruned point before any retraining, actual vs 0.5 d^T H d.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from common import sweep
from pruning import hessian, imp, masks, summary
from pruning.hessian import NONPOSITIVE

KINDS = {"magnitude": "retrain_final", "random": "random_final"}  # kind -> the run that prunes that way, keeps w


def _row(tree, r: int, j: int | None = None):
    return jax.tree.map(lambda a: np.asarray(a[r] if j is None else a[r, j]), tree)


def predicted(config, setup: imp.Setup, params, mask, stats, x_tr, y_tr) -> dict[str, Any]:
    """Spectrum and predicted largest fractions (per epsilon, per kind) at one solution."""
    f = config.flatness
    rates = setup.rates(params)

    def loss_fn(p):
        return imp._loss_and_error(setup, p, stats, x_tr, y_tr)[0]

    hess = hessian.hessian_matrix(loss_fn, params, mask=mask, rates=rates, batch=int(f.hvp_batch))
    lam = np.linalg.eigvalsh(hess)
    w = hessian.flat_weights(params, mask, rates)
    fr, x0, _ = hessian.restricted(loss_fn, params, mask, rates)
    f_jit = jax.jit(fr)
    check = {kind: hessian.quadratic_check(f_jit, x0, hess, f.fractions, kind) for kind in KINDS}
    pred = {
        kind: [hessian.max_prune_fraction(lam, w, float(e), kind, nonpositive=f.nonpositive) for e in f.epsilons]
        for kind in KINDS
    }
    e0 = float(f.epsilons[0])
    sens = {rule: hessian.max_prune_fraction(lam, w, e0, "random", nonpositive=rule) for rule in NONPOSITIVE}
    return {"lam": lam, "loss": float(loss_fn(params)), "pred": pred, "sensitivity": sens, "quadratic": check}


def analyse(config, workdir: str, setup: imp.Setup, fsetup: imp.Setup, runs, state, arrays, writer) -> dict:
    """Predicted vs measured largest prune fraction at every `flatness.levels` level of the IMP runs."""
    f = config.flatness
    imp_rows = [i for i, r in enumerate(runs) if r.name == "imp"]
    host = {k: sweep.to_numpy(state[k]) for k in ("snap_params", "snap_masks", "w_rewind", "s_rewind", "stats")}
    x_tr, y_tr = jnp.asarray(arrays[0]), jnp.asarray(arrays[1])
    eps = [float(e) for e in f.epsilons]
    out: dict[str, Any] = {
        "epsilons": eps,
        "epsilon": eps[0],
        "fractions": list(f.fractions),
        "nonpositive": f.nonpositive,
        "tolerance": float(np.max(np.diff([0.0, *f.fractions]))),
    }
    for j, level in enumerate(f.levels):
        per_seed = []
        for r in imp_rows:
            params = jax.tree.map(jnp.asarray, _row(host["snap_params"], r, j))
            per_seed.append(
                predicted(config, setup, params, _row(host["snap_masks"], r, j), _row(host["stats"], r), x_tr, y_tr)
            )
        fh = _measured_sweep(config, workdir, fsetup, runs, imp_rows, host, j, f"level_{level}", arrays, writer)
        out[f"level_{level}"] = _entry(config, level, per_seed, fh, len(imp_rows))
    return out


def tail_setup(setup: imp.Setup, start: int) -> imp.Setup:
    """The schedule's steps `start` .. end as a level of its own (steps counted from 0, the rate drops shifted, a
    drop at or before `start` applying from the first step): training there costs only the tail's steps."""
    if not 0 <= start < setup.steps:
        raise ValueError(f"refine_from must be in [0, steps={setup.steps}), got {start}")
    if start < setup.warmup_steps:
        raise ValueError(f"refine_from={start} falls inside the warm-up ({setup.warmup_steps} steps)")
    return dataclasses.replace(
        setup, steps=setup.steps - start, lr_drops=tuple(max(d - start, 0) for d in setup.lr_drops), warmup_steps=0
    )


def _measured_sweep(config, workdir, fsetup, runs, imp_rows, host, j, key, arrays, writer) -> dict[str, np.ndarray]:
    """Every fraction x kind x seed pruned from the level's solution and trained inside the subspace (one sweep)."""
    f = config.flatness
    fruns, parents = [], []
    for name in KINDS.values():
        for p in f.fractions:
            for r in imp_rows:
                b = runs[r]
                fruns.append(imp.Run(b.seed, name, len(fruns), b.lr, b.weight_decay, float(p), 0))
                parents.append(r)
    tail = tail_setup(fsetup, int(f.refine_from))
    fsw = imp.Sweep(tail, fruns, math.gcd(int(config.train.chunk_steps), tail.steps))
    pidx = np.asarray(parents)
    st = sweep.to_numpy(fsw.init(), len(fruns))
    st["params"] = jax.tree.map(lambda a: a[pidx, j], host["snap_params"])
    st["opt"] = masks.set_masks(st["opt"], jax.tree.map(lambda a: a[pidx, j], host["snap_masks"]))
    for name in ("w_rewind", "s_rewind", "stats"):
        st[name] = jax.tree.map(lambda a: a[pidx], host[name])
    ckpt = os.path.join(workdir, "checkpoints", f"flatness_{key}")
    fstate = fsw.run(st, arrays, first_level=1, num_levels=1, ckpt_dir=ckpt, writer=writer, desc=f"flatness_{key}")
    return imp.history(fstate, len(fruns))


def _entry(config, level: int, per_seed: list[dict], fh: dict[str, np.ndarray], n_seeds: int) -> dict[str, Any]:
    f = config.flatness
    nf = len(f.fractions)
    base = np.asarray([s["loss"] for s in per_seed])
    entry: dict[str, Any] = {
        "level": int(level),
        "remaining_weights": int(per_seed[0]["lam"].size),
        "train_loss": base.tolist(),
        "top_eigenvalue": [float(np.max(s["lam"])) for s in per_seed],
        "negative_eigenvalues": [int(np.sum(s["lam"] < 0)) for s in per_seed],
        "nonpositive_sensitivity": {rule: [s["sensitivity"][rule] for s in per_seed] for rule in NONPOSITIVE},
        "quadratic_check": {
            kind: {
                "fractions": per_seed[0]["quadratic"][kind]["fractions"],
                "quadratic_rise": [s["quadratic"][kind]["quadratic_rise"] for s in per_seed],
                "actual_rise": [s["quadratic"][kind]["actual_rise"] for s in per_seed],
            }
            for kind in KINDS
        },
    }
    for kind_i, kind in enumerate(KINDS):
        sl = slice(kind_i * nf * n_seeds, (kind_i + 1) * nf * n_seeds)
        loss = fh["train_loss"][sl, 1].reshape(nf, n_seeds)
        measured = []  # [eps][seed]
        for e in f.epsilons:
            ok = loss <= base[None] + float(e)
            measured.append([summary.measured_max_fraction(list(f.fractions), ok[:, s]) for s in range(n_seeds)])
        pred = np.asarray([s["pred"][kind] for s in per_seed]).T  # [eps][seed]
        entry[kind] = {
            "predicted": float(np.mean(pred[0])),
            "measured": float(np.mean(measured[0])),
            "predicted_per_seed": pred[0].tolist(),
            "measured_per_seed": measured[0],
            "predicted_per_epsilon": pred.mean(axis=1).tolist(),
            "measured_per_epsilon": np.mean(measured, axis=1).tolist(),
            "retrained_train_loss": loss.mean(axis=1).tolist(),
            "retrained_test_error": fh["test_error"][sl, 1].reshape(nf, n_seeds).mean(axis=1).tolist(),
            "success_fraction": (loss <= base[None] + float(f.epsilons[0])).mean(axis=1).tolist(),
        }
    return entry
