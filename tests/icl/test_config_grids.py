"""Every sweep grid of the icl config is checked: an empty or unsorted grid is a one-line error naming the key."""

import subprocess
import sys

import pytest

from common import app, reproduce
from icl import experiment
from icl.configs import default

GRIDS = ("sweep.lrs", "sweep.weight_decays", "sweep.log2_num_tasks", "sweep.num_tasks", "task.dims")


def _with(key, value, **extra):
    c = default.get_config("smoke")
    for k, v in {key: value, **extra}.items():
        section, name = k.split(".")
        c[section][name] = v
    return c


@pytest.mark.parametrize("key", GRIDS)
def test_unsorted_grid_is_rejected_naming_the_key(key):
    unsorted = {
        "sweep.lrs": (3e-3, 1e-3),
        "sweep.weight_decays": (0.1, 0.0),
        "sweep.num_tasks": (5, 3),
        "sweep.log2_num_tasks": (3, 1),
        "task.dims": (4, 2),
    }[key]
    with pytest.raises(app.ConfigError) as err:
        experiment.validate(_with(key, unsorted))
    assert err.value.key == key and "increasing" in str(err.value)


@pytest.mark.parametrize("key", ("sweep.lrs", "sweep.weight_decays"))
def test_empty_grid_is_rejected_naming_the_key(key):
    with pytest.raises(app.ConfigError) as err:
        experiment.validate(_with(key, ()))
    assert err.value.key == key and "must not be empty" in str(err.value)


@pytest.mark.parametrize(
    "key,value",
    [
        ("sweep.lrs", (0.001, "x")),
        ("sweep.weight_decays", ("a",)),
        ("sweep.num_tasks", (3, 4.5)),
        ("sweep.batch_sizes", ()),
        ("sweep.batch_sizes", (16, 16)),
        ("sweep.batch_sizes", (8, 16, 32)),
        ("sweep.model_sizes", ((2,),)),
        ("train.eval_every", 30),
        ("report.log2_M_star_range", (8.0, 2.0)),
    ],
)
def test_bad_entries_are_rejected_naming_the_key(key, value):
    with pytest.raises(app.ConfigError) as err:
        experiment.validate(_with(key, value))
    assert err.value.key == key


def test_any_integer_m_and_batch_order_are_accepted():
    experiment.validate(_with("sweep.num_tasks", (3, 5, 100)))
    experiment.validate(_with("sweep.batch_sizes", (32, 16)))  # the first is the reported one
    assert experiment.num_tasks_axis(_with("sweep.num_tasks", (3, 5)))[:2] == [3.0, 5.0]


def test_empty_task_grid_only_without_infinite_tasks():
    experiment.validate(_with("sweep.log2_num_tasks", ()))  # M = inf alone is a sweep
    experiment.validate(_with("task.dims", ()))  # no D-sweep: task.dim alone
    with pytest.raises(app.ConfigError) as err:
        experiment.validate(_with("sweep.log2_num_tasks", (), **{"sweep.include_infinite": False}))
    assert err.value.key == "sweep.num_tasks" and "nothing to run" in str(err.value)


@pytest.mark.slow  # a subprocess importing JAX: 7-10 s on loaded cores
def test_cli_exits_2_with_one_line_naming_the_grid(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "icl.main",
            "--config=icl/configs/default.py:smoke",
            "--config.sweep.lrs=(0.001,'x')",
            f"--workdir={tmp_path / 'w'}",
        ],
        cwd=reproduce.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert "Traceback" not in proc.stderr and len(errors) == 1
    assert errors[0].startswith("config error: sweep.lrs: must hold numbers only")
    assert not (tmp_path / "w").exists()
