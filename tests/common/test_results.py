"""common.results.load: a workdir's metrics and results as pandas tables."""

import math

import numpy as np
import pytest

from common import metrics, results


def _workdir(tmp_path):
    work = tmp_path / "w"
    with metrics.MetricWriter(str(work / "metrics.jsonl")) as w:
        w.write(10, run="grid/0", seed=0, lr=0.1, loss=2.0)
        w.write(10, run="grid/1", seed=1, lr=0.1, loss=float("nan"))
        w.write(20, run="grid/0", seed=0, lr=0.1, loss=1.0, acc=0.5)  # a column the other rows lack
        w.write(20, run="eval", curve=[1.0, float("inf")])
    metrics.atomic_write_json(
        str(work / "results.json"),
        {
            "M_star": 3.5,
            "by_M": {"2": {"loss": 1.5}, "inf": {"loss": float("-inf")}},
            "curve": [1, 2, 3],
            "provenance": {"commit": "abc"},
        },
    )
    metrics.atomic_write_json(str(work / "config.json"), {"seed": 0, "lr": 0.1, "provenance": {"commit": "abc"}})
    return str(work)


def test_load_gives_tables_with_the_union_of_columns_and_numbers_back(tmp_path):
    run = results.load(_workdir(tmp_path))
    m = run.metrics
    assert list(m["step"]) == [10, 10, 20, 20] and list(m["run"]) == ["grid/0", "grid/1", "grid/0", "eval"]
    assert m["loss"].dtype == float and math.isnan(m["loss"][1]) and m["loss"][2] == 1.0
    assert math.isnan(m["acc"][0]) and m["acc"][2] == 0.5  # missing cells are NaN
    assert m["curve"][3] == [1.0, math.inf]
    assert m.groupby("seed")["loss"].min().to_dict()[0] == 1.0
    r = run.results.set_index("key")["value"]
    assert r["M_star"] == 3.5 and r["by_M.2.loss"] == 1.5 and r["by_M.inf.loss"] == -math.inf
    assert r["curve"] == [1, 2, 3] and "provenance" not in r and "provenance.commit" not in r
    assert run.config == {"seed": 0, "lr": 0.1} and run.provenance == {"commit": "abc"}
    assert np.isclose(run.raw["M_star"], 3.5)


def test_load_an_unfinished_run_and_a_wrong_directory(tmp_path):
    work = tmp_path / "u"
    with metrics.MetricWriter(str(work / "metrics.jsonl")) as w:
        w.write(5, loss=1.0)
    run = results.load(str(work))
    assert list(run.metrics["loss"]) == [1.0] and run.results.empty and run.config == {}
    with pytest.raises(FileNotFoundError, match="not a run's workdir"):
        results.load(str(tmp_path))
