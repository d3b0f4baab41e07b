"""A finished (or running) workdir as pandas tables.

    from common import results

    run = results.load("runs/icl/default_smoke")
    run.metrics            # DataFrame: one row per metrics.jsonl line (step, run, the run's labels, metric columns)
    run.results            # DataFrame: one row per results.json entry, `key` (dotted path) and `value`
    run.results.set_index("key").loc["M_star", "value"]
    run.config             # dict: the config the run was started with (config.json without provenance)
    run.provenance         # dict: commit, library versions, devices, date and command line of the run
    run.raw                # dict: results.json as written

metrics.jsonl rows differ in their columns (training rows, evaluation rows, one sweep's labels and another's): the
table has the union of the columns, NaN where a row has none. The strings "nan", "inf" and "-inf" (how the files
keep JSON strict) become floats again. results.json is nested dicts of numbers and lists: `results` flattens the dicts
into dotted keys and keeps each list as one value (a Python list), so a curve stays one cell.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from common import metrics as _metrics

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _numbers(obj: Any) -> Any:
    """The strings "nan" / "inf" / "-inf" back to floats, in nested lists and dicts."""
    if isinstance(obj, str):
        return _NONFINITE.get(obj, obj)
    if isinstance(obj, list):
        return [_numbers(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items()}
    return obj


def flatten(obj: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}, 'c': [1, 2]} -> {'a.b': 1, 'c': [1, 2]}: dicts become dotted keys, lists stay values."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


@dataclasses.dataclass
class Run:
    """One workdir's files as tables (see the module docstring)."""

    workdir: str
    metrics: Any  # pandas.DataFrame
    results: Any  # pandas.DataFrame
    config: dict
    provenance: dict
    raw: dict


def load(workdir: str) -> Run:
    """Reads `workdir`'s metrics.jsonl, results.json and config.json (each optional: a missing file gives an empty
    table or dict, so an unfinished run's metrics can be looked at). Raises FileNotFoundError when `workdir` holds
    none of them."""
    import pandas as pd

    paths = {name: os.path.join(workdir, name) for name in ("metrics.jsonl", "results.json", "config.json")}
    if not any(os.path.exists(p) for p in paths.values()):
        raise FileNotFoundError(f"{workdir}: no metrics.jsonl, results.json or config.json (not a run's workdir)")
    rows = _numbers(_metrics.read_jsonl(paths["metrics.jsonl"])) if os.path.exists(paths["metrics.jsonl"]) else []
    table = pd.DataFrame(rows)  # in file order
    raw = _metrics.read_json(paths["results.json"]) if os.path.exists(paths["results.json"]) else {}
    config = _metrics.read_json(paths["config.json"]) if os.path.exists(paths["config.json"]) else {}
    flat = flatten({k: v for k, v in _numbers(raw).items() if k != "provenance"})
    results_table = pd.DataFrame({"key": list(flat), "value": list(flat.values())})
    provenance = raw.get("provenance") or config.get("provenance") or {}
    config = {k: v for k, v in config.items() if k not in ("provenance", "resumed")}
    return Run(workdir=workdir, metrics=table, results=results_table, config=config, provenance=provenance, raw=raw)
