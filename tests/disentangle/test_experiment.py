"""disentangle.experiment: config checks (exit before writing), report() logic, paper config validity, smoke run."""

import json
import os

import pytest

from common import app
from disentangle import experiment
from disentangle.configs import default, paper


@pytest.mark.parametrize(
    "key,value",
    [
        ("correlated.rhos", (0.6, 0.3)),
        ("correlated.rhos", (0.0, 1.5)),
        ("ablation.variants", ("none", "l1")),
        ("ablation.variants", ()),
        ("ablation.tasks", ("vit",)),
        ("linear_ae.chunk_steps", 3000),
        ("linear_ae.lr", 0.0),
        ("linear_ae.beta_activity", -1.0),
        ("eval.num_bins", 1),
        ("vae.dataset", "celeba"),
        ("vae.variants", ("beta_vae", "beta_vae")),
        ("cells.jitter", 5),
        ("cells.variants", ("grid",)),
    ],
)
def test_bad_config_is_refused_before_anything_is_written(tmp_path, key, value):
    c = default.get_config("smoke")
    node = c
    *path, last = key.split(".")
    for p in path:
        node = node[p]
    with c.unlocked():
        node[last] = value
    workdir = str(tmp_path / "run")
    with pytest.raises(app.ConfigError) as err:
        app.execute(experiment, c, workdir)
    assert err.value.key == key
    assert not os.path.exists(workdir)


@pytest.mark.parametrize("arg", [None, "shapes3d"])
def test_paper_config_is_valid(arg):
    app.validate(experiment, paper.get_config(arg))
    app.validate(experiment, default.get_config())


def _results(all_mir=0.95, none_mir=0.42, corr=(0.95, 0.5), dev=0.003):
    ab = {
        name: {"mir": m, "mir_std": 0.01, "mig": 0.3, "mig_std": 0.01, "recon": 1e-4, "recon_std": 0.0}
        for name, m in (("none", none_mir), ("energy", 0.4), ("nonneg", 0.45), ("all", all_mir), ("relu_energy", 0.93))
    }
    return {
        "ablation": ab,
        "correlated": {"0.0": corr[0], "0.9": corr[1]},
        "energy_theorem": dev,
        "energy_theorem_curve": {"max_relative_deviation": dev / 3, "argmin_theta_simulated": 0.0},
        "vae": {"beta_vae": 0.1, "relu_energy": 0.2},
        "cells": {"unconstrained": 0.3, "constrained": 0.8, "constrained_entangled": 0.2},
    }


def test_report_passes_the_paper_pattern_and_fails_its_opposite():
    rows = experiment.report(_results())
    assert all({"name", "value", "paper", "ok"} <= set(r) for r in rows)
    assert all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]
    bad = {r["name"]: r["ok"] for r in experiment.report(_results(all_mir=0.5, none_mir=0.9, corr=(0.9, 0.95)))}
    assert not bad["MIR, all three constraints (linear_ae)"]
    assert not bad["MIR, no constraint (linear_ae)"]
    assert not bad["MIR at rho=0.0 -> rho=0.9"]


@pytest.mark.slow
def test_smoke_run_writes_every_documented_key(tmp_path):
    workdir = str(tmp_path / "smoke")
    res = app.execute(experiment, default.get_config("smoke"), workdir)
    for k in ("ablation", "correlated", "vae", "cells", "energy_theorem"):
        assert k in res, k
    for v in res["ablation"].values():
        assert {"mir", "mir_std", "mig", "mig_std", "recon", "recon_std"} <= set(v)
    assert set(res["correlated"]) == {"0.0", "0.9"}
    assert set(res["vae"]) == {"beta_vae", "relu_energy"} and set(res["cells"]) == {"unconstrained", "constrained"}
    assert res["energy_theorem"] < 0.2
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["data_source"].startswith("generated:sprites")
    for name in ("energy_vs_theta", "mi_matrices_linear_ae", "ablation_linear_ae", "correlated_mir", "vae_mig"):
        assert os.path.getsize(os.path.join(workdir, "figures", name + ".png")) > 5_000
    assert experiment.report(res)
