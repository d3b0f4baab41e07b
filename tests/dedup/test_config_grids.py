"""The ε grid is checked up front: empty, unsorted or repeated thresholds are one-line errors naming `eps`."""

import os
import subprocess
import sys

import numpy as np
import pytest

from common import app
from dedup import experiment
from dedup.configs import default, paper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "eps,match",
    [
        ((), "must not be empty"),
        ((0.1, 0.05), "strictly increasing"),
        ((0.05, 0.05), "strictly increasing"),
        ((0.1, 2.0), "in (0, 2)"),
        ((0.0, 0.1), "entries must be > 0"),
        ((True, 0.1), "finite numbers"),
    ],
)
def test_bad_eps_grid_is_rejected_naming_the_key(eps, match):
    c = default.get_config("smoke")
    c.eps = eps
    with pytest.raises(app.ConfigError) as err:
        experiment.validate(c)
    assert err.value.key == "eps" and match in str(err.value)


@pytest.mark.parametrize("config", [default.get_config(v) for v in (None, "smoke", "text")] + [paper.get_config()])
def test_shipped_configs_validate(config):
    if config.texts == "builtin":
        pytest.importorskip("dedup.text")
    experiment.validate(config)


@pytest.mark.slow  # a subprocess importing JAX: 7-10 s on loaded cores
def test_cli_unsorted_eps_exits_2_before_writing(tmp_path):
    wd = tmp_path / "w"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dedup.main",
            "--config=dedup/configs/default.py:smoke",
            "--config.eps=(0.2,0.1)",
            "--config.eval_eps=0.1",
            f"--workdir={wd}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and errors[0].startswith("config error: eps: must be strictly increasing")
    assert not wd.exists()


def test_eps_folder_names_are_exact_and_round_trip():
    from dedup import pipeline

    assert pipeline.eps_name(0.1) == "eps=0.1" and pipeline.eps_name(0.1000001) == "eps=0.1000001"
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.uniform(0, 2, 500), 0.1 + np.arange(1, 50) * 2e-17, [1e-5, 0.00095, 0.3]])
    names = [pipeline.eps_name(v) for v in vals]
    assert all(float(n[4:]) == float(v) for n, v in zip(names, vals, strict=True))  # the name reads back exactly
    assert len(set(names)) == len(set(vals.tolist()))  # distinct thresholds, distinct folders
