"""margin.experiment: config checks (one line naming the key, nothing written), paper config valid, smoke end to end."""

import json
import os

import pytest

from common import app
from margin import experiment
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


REQUIRED = ("toy", "sparsity", "robustness", "neural_collapse", "gamma_monotone_fraction", "data_source")
NC_KEYS = ("nc1", "nc2_cos_max_dev", "nc2_norm_cv", "nc3", "margin", "etf_margin", "K", "d")


@pytest.mark.slow
def test_smoke_end_to_end(tmp_path):
    workdir = str(tmp_path / "smoke")
    res = app.execute(experiment, default.get_config("smoke"), workdir)
    for k in REQUIRED:
        assert k in res, k
    for model in ("homogeneous", "quasi_homogeneous"):
        assert {"direction_error", "l2_margin", "program_margin"} <= set(res["toy"][model])
        assert {"eps", "accuracy"} <= set(res["robustness"][model])
    for k in NC_KEYS:
        assert k in res["neural_collapse"] and k in res["neural_collapse"]["mlp"], k
    assert len(res["sparsity"]["ratio"]) == 2
    # the homogeneous toy (an SVM) converges within the smoke's 400 steps; the checks have the documented shape
    assert res["toy"]["homogeneous"]["direction_error"] < 0.01
    rows = experiment.report(res)
    assert all({"name", "value", "paper", "ok"} <= set(r) for r in rows)
    for name in ("toy_boundaries", "gamma", "direction_error", "sparsity", "robustness", "neural_collapse", "cover"):
        assert os.path.getsize(os.path.join(workdir, "figures", f"{name}.png")) > 5_000
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["data_source"] == "sklearn:digits"
    # a finished run is reported, not redone
    again = app.execute(experiment, default.get_config("smoke"), workdir)
    assert again["runtime_seconds"] == res["runtime_seconds"]
