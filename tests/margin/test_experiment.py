"""margin.experiment: config checks (one line naming the key, nothing written), paper config valid, smoke end to end."""

import json
import os

import numpy as np
import pytest

from common import app
from margin import experiment, teacher_student
from margin.configs import default, paper


def _bad(**overrides):
    c = default.get_config("smoke")
    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


@pytest.mark.parametrize(
    "key,value",
    [
        ("toy.num_steps", 0),
        ("toy.chunk_steps", 300),  # does not divide 400
        ("toy.step", "adam"),
        ("nets.eps", (0.5, 0.1)),  # unsorted grid
        ("nets.eps", ()),
        ("nc_ufm.dim", 2),  # a simplex ETF of 4 classes needs d >= 3
        ("nc_mlp.loss", "hinge"),
        ("perceptron.cover_p", (10, 2)),
        ("nets.lr", -1.0),
        ("perceptron.chain_burn_in", 6),  # not below chain_iters = 6
        ("committee.plateau_alpha", 5.0),  # past alpha_max = 4
        ("committee.n", 0),
    ],
)
def test_bad_config_names_the_key_and_writes_nothing(tmp_path, key, value):
    workdir = str(tmp_path / "run")
    with pytest.raises(app.ConfigError) as err:
        app.execute(experiment, _bad(**{key: value}), workdir)
    assert err.value.key == key
    assert not os.path.exists(workdir)


def test_paper_and_default_configs_are_valid():
    for c in (default.get_config(), paper.get_config(), default.get_config("smoke")):
        experiment.validate(c)
    assert paper.get_config().nc_mlp.dataset == "mnist"


REQUIRED = ("toy", "sparsity", "robustness", "neural_collapse", "gamma_monotone_fraction", "perceptron", "committee")
NC_KEYS = ("nc1", "nc2_cos_max_dev", "nc2_norm_cv", "nc3", "margin", "etf_margin", "K", "d", "per_seed")
FIGURES = ("toy_boundaries", "gamma", "direction_error", "sparsity", "robustness", "neural_collapse", "cover")
FIGURES += ("teacher_student", "committee")


@pytest.mark.slow
def test_smoke_end_to_end(tmp_path):
    workdir = str(tmp_path / "smoke")
    config = default.get_config("smoke")
    res = app.execute(experiment, config, workdir)
    for k in REQUIRED:
        assert k in res, k
    # the homogeneous toy (an SVM) converges within the smoke's 400 steps
    assert res["toy"]["homogeneous"]["direction_error"] < 0.01
    # Λ of the residual net, from its structure: only the output bias has rate λ_max = 1
    rates = res["robustness"]["quasi_homogeneous"]["rates"]
    assert rates == {"in/w": 0.5, "in/b": 0.5, "block/w": 0.0, "block/b": 0.5, "out/w": 0.5, "out/b": 1.0}
    assert res["sparsity"]["parameters"] == ["out/b"] and len(res["sparsity"]["ratio"]) == 4
    for part in (res["neural_collapse"], res["neural_collapse"]["mlp"], res["neural_collapse"]["control"]):
        for k in NC_KEYS:
            assert k in part, k
    steps = res["neural_collapse"]["mlp"]["over_time"]["step"]
    assert steps == [config.nc_mlp.chunk_steps * (i + 1) for i in range(len(steps))]
    assert res["neural_collapse"]["mlp"]["etf_margin"] == pytest.approx(np.sqrt(10 * 9) / 9)
    # P = 2 points in N = 10 dimensions are always separable; the ODEs start at the simulation's order parameters
    assert res["perceptron"]["cover"]["measured"][0] == 1.0
    c = res["committee"]
    assert c["eps_sim_per_seed"][0][0] == pytest.approx(c["eps_ode_per_seed"][0][0], rel=1e-5)
    t = res["perceptron"]["teacher_student"]
    np.testing.assert_allclose(t["gibbs_theory"], teacher_student.gibbs_error(np.array(t["alpha"])))
    rows = experiment.report(res)
    assert all({"name", "value", "paper", "ok"} <= set(r) for r in rows)
    for name in FIGURES:
        assert os.path.getsize(os.path.join(workdir, "figures", f"{name}.png")) > 5_000
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["data_source"] == "sklearn:digits"
    # a finished run is reported, not redone
    again = app.execute(experiment, default.get_config("smoke"), workdir)
    assert again["runtime_seconds"] == res["runtime_seconds"]
