"""The asymmetric max-margin bias (Kunin, Yamamura, Ma, Ganguli 2023), wired end to end; keys in margin/README.md.

(a) toy: f = w·x (homogeneous) and f = w x1 + uv x2 (Λ = (1, 1/2, 1/2)) trained to the limit on 2-D data; each
    trained direction against its own program (convex QP, and SLSQP in the model's own parameters), ℓ2 margins.
(b) sparsity / (c) robustness: a ReLU net with biases and a residual block against its homogeneous twin (same
    layers, no biases, no skip), trained the same way; the output bias (the only rate-λ_max parameter) relative to
    the rest and its decay exponent, and accuracy under ℓ2 attacks.
(d) neural collapse: BatchNorm features + linear classifier (unconstrained features; an MLP with BatchNorm on
    digits) trained to convergence: NC1-3, ‖b‖/‖W‖, normalised margin against the simplex-ETF value; the same MLP
    without normalisation as the control.
(e) statistical mechanics of learning: Cover's C(P, N); teacher-student Hebb / max-margin / Gibbs / Bayes errors
    against the replica-symmetric theory; the soft committee machine's online-learning ODEs against online SGD.
Stages in margin/stages.py (training through common.train_loop), results in margin/summary.py, checks in
margin/report.py, figures in margin/figures.py.
"""

from __future__ import annotations

import os

import ml_collections
from absl import logging

from common import app, metrics
from margin import figures, stages, summary
from margin.report import report
from margin.validation import validate

__all__ = ["run", "validate", "report"]


def _monotone_all(toy_stage, net_stage, nc_stage) -> dict:
    out = {f"toy_{k}": summary.monotone(r["hist"]) for k, r in toy_stage["models"].items()}
    out.update({f"net_{k}": summary.monotone(r["hist"]) for k, r in net_stage["models"].items()})
    out.update({f"nc_{k}": summary.monotone(nc_stage[k]["hist"]) for k in ("ufm", "mlp")})
    return out


def _figures(results, toy_stage, net_stage, fig_dir) -> None:
    toy = results["toy"]
    figures.decision_boundaries(toy, toy_stage["x"], toy_stage["y"], os.path.join(fig_dir, "toy_boundaries.png"))
    hists = {f"toy {k}": r["hist"] for k, r in toy_stage["models"].items()}
    hists.update({f"net {k}": r["hist"] for k, r in net_stage["models"].items()})
    program = {f"toy {k}": toy[k]["program_margin"] for k in toy}
    figures.gamma_over_time(hists, program, os.path.join(fig_dir, "gamma.png"))
    figures.direction_error(toy, os.path.join(fig_dir, "direction_error.png"))
    figures.sparsity(results["sparsity"], os.path.join(fig_dir, "sparsity.png"))
    trained = {k: (r["f"], r["params"]) for k, r in net_stage["models"].items()}
    figures.robustness(
        results["robustness"], trained, net_stage["x"], net_stage["y"], os.path.join(fig_dir, "robustness.png")
    )
    figures.neural_collapse(results["neural_collapse"], os.path.join(fig_dir, "neural_collapse.png"))
    figures.cover(results["perceptron"]["cover"], os.path.join(fig_dir, "cover.png"))
    figures.teacher_student(results["perceptron"]["teacher_student"], os.path.join(fig_dir, "teacher_student.png"))
    figures.committee(results["committee"], os.path.join(fig_dir, "committee.png"))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs (a)-(e) (module docstring) and writes the figures; returns the results dict (margin/README.md)."""
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        logging.info("(a) toy models")
        toy_stage = stages.run_toy(config, workdir, writer)
        logging.info("(b, c) networks with biases and a residual block vs the homogeneous twin")
        net_stage = stages.run_nets(config, workdir, writer)
        logging.info("(d) neural collapse")
        nc_stage = stages.run_neural_collapse(config, workdir, writer)
    logging.info("(e) statistical mechanics of learning")
    perc = stages.run_perceptron(config)
    comm = stages.run_committee(config)
    mono = _monotone_all(toy_stage, net_stage, nc_stage)
    steps = sum(m["post_separation_steps"] for m in mono.values())
    good = sum(m["smoothed_non_decreasing"] for m in mono.values())
    results = {
        "toy": summary.toy(toy_stage),
        "sparsity": summary.sparsity(net_stage, config.nets.sparsity_fit_from),
        "robustness": summary.robustness(net_stage, list(config.nets.eps)),
        "neural_collapse": summary.neural_collapse(nc_stage, config),
        "gamma_monotone_fraction": float(good / steps) if steps else None,
        "gamma_monotone": mono,
        "perceptron": {
            "cover": summary.cover(perc["cover"], config.perceptron),
            "teacher_student": summary.teacher_student_summary(perc["teacher_student"], config.perceptron),
        },
        "committee": summary.committee(comm, config.committee),
        "data_source": nc_stage["source"],
    }
    if app.is_writer():
        _figures(results, toy_stage, net_stage, os.path.join(workdir, "figures"))
    return results
