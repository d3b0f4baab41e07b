"""common.metrics, common.plotting, common.reproduce."""

import json
import logging
import math
import os
import stat
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from common import metrics, plotting, reproduce


def test_to_jsonable_and_atomic_json(tmp_path):
    obj = {
        "a": np.float32(1.5),
        "b": jnp.arange(3),
        "c": [math.inf, -math.inf, math.nan],
        "d": np.bool_(True),
    }
    path = tmp_path / "sub" / "r.json"
    metrics.atomic_write_json(str(path), obj)
    back = json.loads(path.read_text())
    assert back == {"a": 1.5, "b": [0, 1, 2], "c": ["inf", "-inf", "nan"], "d": True}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left behind


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = str(tmp_path / "r.json")
    metrics.atomic_write_json(path, {"ok": 1})
    with pytest.raises(TypeError):
        metrics.atomic_write_json(path, {"bad": object()})
    assert json.loads(open(path).read()) == {"ok": 1}


def test_metric_writer_and_truncate(tmp_path):
    path = str(tmp_path / "m.jsonl")
    with metrics.MetricWriter(path) as w:
        for s in (1, 2, 3):
            w.write(s, run=0, loss=float(s))
        w.truncate_after(2)
        w.write(3, run=0, loss=30.0)
    rows = metrics.read_jsonl(path)
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_metric_writer_truncate_only_one_sweep(tmp_path):
    path = str(tmp_path / "m.jsonl")
    with metrics.MetricWriter(path) as w:
        for s in (10, 20):
            w.write(s, run="b16/0", loss=1.0)
        for s in (10, 20):
            w.write(s, run="b32/0", loss=2.0)
        w.truncate_after(10, run_prefix="b32/")
    rows = metrics.read_jsonl(path)
    assert [(r["run"], r["step"]) for r in rows] == [("b16/0", 10), ("b16/0", 20), ("b32/0", 10)]


def test_check_finite():
    metrics.check_finite(np.ones(3))
    with pytest.raises(metrics.NonFiniteError, match="non-finite loss at step 7"):
        metrics.check_finite(np.array([1.0, np.nan]), step=7)


def test_progress_log_lines(caplog):
    p = metrics._LogProgress(4, "demo", every=0.0)
    with caplog.at_level("INFO"):
        for _ in range(4):
            p.update()
    assert "demo: 4/4 (100%)" in caplog.records[-1].getMessage()


def test_plotting_save(tmp_path):
    fig, ax = plotting.figure()
    ax.plot([0, 1], [1, 0], color=plotting.palette(2)[1])
    path = plotting.save(fig, str(tmp_path / "figs" / "a.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert len(plotting.palette(12)) == 12
    assert [p.name for p in (tmp_path / "figs").iterdir()] == ["a.png"]  # no temporary file left


_IMPORT_PROBE = """
import json, sys
import matplotlib
rc = matplotlib.rcParams
snapshot = lambda: {k: repr(rc[k]) for k in rc if k != "backend"}  # reading "backend" would resolve it
before, backend_before = snapshot(), rc._get_backend_or_none()
import common.plotting as plotting
after, backend_after = snapshot(), rc._get_backend_or_none()
fig, ax = plotting.figure()
print(json.dumps({"changed": sorted(k for k in before if before[k] != after[k]), "backend_before": backend_before,
                  "backend_after_import": backend_after, "backend_after_figure": rc._get_backend_or_none(),
                  "figure_dpi": fig.dpi, "linewidth_outside": rc["lines.linewidth"]}))
"""


def _probe(**env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env.update(env_extra)
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE], cwd=reproduce.ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_plotting_import_changes_no_global_state():
    out = _probe()  # headless: no display variables
    assert out["changed"] == [] and out["backend_after_import"] == out["backend_before"] is None
    assert out["backend_after_figure"] == "agg"  # matplotlib's own choice without a display
    assert out["figure_dpi"] == plotting.STYLE["figure.dpi"] and out["linewidth_outside"] == 1.5
    assert _probe(MPLBACKEND="svg")["backend_after_figure"] == "svg"  # the user's backend is honoured


def test_plotting_style_reaches_artists_added_after_figure_and_is_restored():
    import matplotlib

    default_lw, default_legend_frame = matplotlib.rcParams["lines.linewidth"], matplotlib.rcParams["legend.frameon"]

    @plotting.styled
    def draw():
        fig, ax = plotting.figure()
        (line,) = ax.plot([0, 1], [0, 1], label="a")
        legend = ax.legend()
        label = ax.set_title("t")
        return fig, ax, line, legend, label

    fig, ax, line, legend, label = draw()
    assert line.get_linewidth() == plotting.STYLE["lines.linewidth"] != default_lw
    assert legend.get_frame_on() is plotting.STYLE["legend.frameon"] is not default_legend_frame
    assert label.get_fontsize() == plotting.STYLE["axes.titlesize"] != 12  # default "large"
    assert not ax.spines["top"].get_visible() and ax.xaxis.get_gridlines()[0].get_visible()
    assert matplotlib.rcParams["lines.linewidth"] == default_lw  # restored on return
    with plotting.style():
        assert matplotlib.rcParams["lines.linewidth"] == plotting.STYLE["lines.linewidth"]
    assert matplotlib.rcParams["lines.linewidth"] == default_lw
    matplotlib.pyplot.close(fig)


def test_reproduce_reports_unbuilt_packages_and_rejects_unknown(tmp_path, monkeypatch, capsys):
    # In process, with every package seen as unbuilt, so nothing is run whichever packages exist by now.
    monkeypatch.setattr(reproduce, "is_built", lambda pkg: False)
    assert reproduce.main(["--only", "manifolds,margin", "--scale", "smoke", "--runs-dir", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "| manifolds | not built |" in report and "| margin | not built |" in report
    assert "## manifolds\n\nNot yet built.\n" in report and "issue" not in report and "landed" not in report
    proc = subprocess.run(
        [sys.executable, "-m", "common.reproduce", "--only", "nosuch"],
        cwd=reproduce.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown package" in proc.stderr


def test_reproduce_report_rows(tmp_path):
    entries = {
        "icl": {
            "status": "ran",
            "seconds": 3.0,
            "workdir": "w",
            "log": "l",
            "rows": [
                {"name": "M*", "value": 2.5, "paper": "2^14", "ok": True},
                {"name": "x", "value": 1, "paper": "", "ok": False},
            ],
            "figures": [],
        },
        "spectra": {"status": "not built"},
    }
    path = reproduce.write_report(entries, str(tmp_path), "smoke")
    text = open(path).read()
    assert "| icl | ran | 1/2 (smoke) |" in text and "| M* | 2.5 | 2^14 | pass |" in text and "FAIL" in text
    assert os.path.basename(path) == "REPORT.md"


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o027)
    try:
        metrics.atomic_write_json(str(tmp_path / "a.json"), {"x": 1})
        metrics.atomic_save_npy(str(tmp_path / "a.npy"), np.zeros(3))
    finally:
        os.umask(old)
    for name in ("a.json", "a.npy"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640, name


def test_figures_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        fig, ax = plotting.figure()
        ax.plot([0, 1], [0, 1])
        path = plotting.save(fig, str(tmp_path / "f.png"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def _rows_of(text: str) -> list[list[str]]:
    """The cells of every markdown table row, split as a renderer does (on `|` not preceded by a backslash)."""
    import re

    return [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in text.splitlines() if ln.startswith("|")]


def test_report_escapes_pipes_and_marks_smoke(tmp_path):
    entries = {
        "spectra": {
            "status": "ran",
            "seconds": 1.0,
            "workdir": "w",
            "log": "l",
            "rows": [{"name": "max |quantile theory − simulation|", "value": 0.01, "paper": "|x| < 0.05", "ok": False}],
            "figures": [],
        }
    }
    text = open(reproduce.write_report(entries, str(tmp_path), "smoke")).read()
    row = next(r for r in _rows_of(text) if r[0].startswith("max"))
    assert row == ["max \\|quantile theory − simulation\\|", "0.01", "\\|x\\| < 0.05", "FAIL"]  # 4 cells, FAIL kept
    assert reproduce.SMOKE_NOTE in text and "| spectra | ran | 0/1 (smoke) |" in text
    text = open(reproduce.write_report(entries, str(tmp_path), "default")).read()
    assert reproduce.SMOKE_NOTE not in text and "| spectra | ran | 0/1 |" in text


def test_reproduce_uses_the_clis_workdir_names(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(reproduce.subprocess, "run", fake_run)
    for scale, name in (("smoke", "default_smoke"), ("default", "default")):
        entry = reproduce.run_package("icl", scale, str(tmp_path))
        assert entry["workdir"] == str(tmp_path / "icl" / name)
        assert f"--workdir={tmp_path / 'icl' / name}" in calls[-1]
        assert entry["log"] == str(tmp_path / "icl" / f"{name}.log")


def _read_events(logdir):
    """Every Event in the TensorBoard event files under `logdir` (read as TFRecords: length, crc, data, crc)."""
    import struct

    from tensorboardX.proto import event_pb2

    out = []
    for name in sorted(os.listdir(logdir)):
        if not name.startswith("events.out.tfevents"):
            continue
        data = open(os.path.join(logdir, name), "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            out.append(event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length]))
            pos += 12 + length + 4
    return out


def _events(logdir):
    """(tag, step, value) of every scalar under `logdir`."""
    return [(v.tag, e.step, v.simple_value) for e in _read_events(logdir) for v in e.summary.value]


def _session_starts(logdir):
    """The steps of the SessionLog START events (TensorBoard hides the run's older events from that step on)."""
    from tensorboardX.proto import event_pb2

    start = event_pb2.SessionLog.START
    return [e.step for e in _read_events(logdir) if e.HasField("session_log") and e.session_log.status == start]


def test_metric_writer_writes_tensorboard_events_per_run(tmp_path, monkeypatch, caplog):
    pytest.importorskip("tensorboardX")
    monkeypatch.delenv(metrics.TENSORBOARD_ENV, raising=False)
    path = tmp_path / "metrics.jsonl"
    with metrics.MetricWriter(str(path)) as w:
        w.write(10, run="grid/0", loss=2.0, curve=[1.0, 2.0], name="a")
        w.write(20, run="grid/0", loss=1.5)
        w.write(10, run="grid/1", loss=3.0, barrier=float("nan"), top=float("inf"))  # JSONL only: no warning
    events = _events(tmp_path / "tensorboard" / "grid" / "0")
    assert events == [("loss", 10, 2.0), ("loss", 20, 1.5)]  # scalars only; lists and strings stay in the JSONL
    assert _events(tmp_path / "tensorboard" / "grid" / "1") == [("loss", 10, 3.0)]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    # A resume truncates the rows past step 10; TensorBoard is told to hide that run's events from step 11 on.
    with metrics.MetricWriter(str(path)) as w:
        w.truncate_after(10, run_prefix="grid/0")
        w.write(20, run="grid/0", loss=1.25)
        w.write(20, run="grid/1", loss=2.5)
    starts = _session_starts(tmp_path / "tensorboard" / "grid" / "0")
    assert starts == [11] and _session_starts(tmp_path / "tensorboard" / "grid" / "1") == []
    assert ("loss", 20, 1.25) in _events(tmp_path / "tensorboard" / "grid" / "0")
    monkeypatch.setenv(metrics.TENSORBOARD_ENV, "off")
    with metrics.MetricWriter(str(tmp_path / "off" / "metrics.jsonl")) as w:
        w.write(1, loss=1.0)
    assert not (tmp_path / "off" / "tensorboard").exists()
