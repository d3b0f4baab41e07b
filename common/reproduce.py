"""Reproduce every built package and write runs/REPORT.md.

    python -m common.reproduce [--only icl,spectra] [--scale default|smoke] [--runs-dir runs]

Runs `python -m <pkg>.main --config=<pkg>/configs/default.py[:smoke]` for each package that exists, in the workdir the
CLI itself picks for that config (`runs/<pkg>/default`, `runs/<pkg>/default_smoke`), one after another with a
progress bar across them, and rewrites runs/REPORT.md after each one: its headline numbers (from
`<pkg>.experiment.report(results)`), the paper's claim beside them, pass/fail, its figures.
Packages without their code yet are listed as not yet built. A run that already finished is reported, not redone.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import os
import subprocess
import sys
import time

from common import app, metrics

PACKAGES = ("icl", "collapse", "spectra", "dedup", "manifolds", "margin", "pruning", "disentangle")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


RUNTIMES = os.path.join(ROOT, "docs", "runtimes.json")


def runtimes() -> dict[str, dict]:
    """The measured runtimes of docs/runtimes.json: {package: {"default": {wall_seconds, date, machine, load}}}."""
    return metrics.read_json(RUNTIMES)["packages"]


def runtime_text(entry: dict | None) -> str:
    """How the README's package table states a measured runtime: '9.2 min (quiet)', '2.9 min at load 13-14', or
    'not measured' (None: the current default config has not been timed)."""
    if entry is None:
        return "not measured"
    minutes = f"{entry['wall_seconds'] / 60:.1f} min"
    return f"{minutes} (quiet)" if entry["load"].startswith("quiet") else f"{minutes} at load {entry['load']}"


def is_built(pkg: str) -> bool:
    """A package is built when it has an experiment module and a default config."""
    return all(os.path.exists(os.path.join(ROOT, pkg, f)) for f in ("experiment.py", "main.py", "configs/default.py"))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _cell(v) -> str:
    """A markdown table cell: `|` escaped (a quantity like "max |a - b|" must not split the row), one line."""
    return " ".join(_fmt(v).split()).replace("|", "\\|")


SMOKE_NOTE = (
    "Smoke scale: every package ran its seconds-long `:smoke` config, which checks that the code runs end to end. "
    "Its numbers are far from the paper's scale, so FAIL below is expected and says nothing about the reproduction; "
    "`python -m common.reproduce` (the default scale) is the run to judge."
)


def _section(pkg: str, entry: dict, runs_dir: str) -> list[str]:
    lines = [f"## {pkg}", ""]
    status = entry["status"]
    if status == "not built":
        return lines + ["Not yet built.", ""]
    if status == "pending":
        return lines + ["Waiting to run.", ""]
    lines.append(
        f"Status: **{status}**"
        + (f" in {entry['seconds']:.0f} s" if "seconds" in entry else "")
        + f"; workdir `{entry['workdir']}`; log `{entry['log']}`."
    )
    lines.append("")
    if entry.get("error"):
        lines += ["```", entry["error"], "```", ""]
    rows = entry.get("rows") or []
    if rows:
        lines += ["| quantity | ours | paper | ok |", "|---|---|---|---|"]
        for r in rows:
            ok = {True: "pass", False: "FAIL", None: "-"}[r.get("ok")]
            cells = (r["name"], r["value"], r.get("paper", ""), ok)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    for fig in entry.get("figures", []):
        rel = os.path.relpath(fig, runs_dir)
        lines.append(f"![{os.path.basename(fig)}]({rel})")
    lines.append("")
    return lines


def write_report(entries: dict[str, dict], runs_dir: str, scale: str) -> str:
    """Writes runs_dir/REPORT.md atomically from the per-package entries; returns its path."""
    lines = [
        "# Reproduction report",
        "",
        f"Scale: `{scale}`. Updated {time.strftime('%Y-%m-%d %H:%M:%S')}.",
        "",
        *([SMOKE_NOTE, ""] if scale == "smoke" else []),
        "| package | status | headline checks passed |",
        "|---|---|---|",
    ]
    for pkg, e in entries.items():
        rows = e.get("rows") or []
        judged = [r for r in rows if r.get("ok") is not None]
        passed = sum(1 for r in judged if r["ok"])
        counted = f"{passed}/{len(judged)}" + (" (smoke)" if scale == "smoke" else "") if judged else "-"
        lines.append(f"| {pkg} | {_cell(e['status'])} | {counted} |")
    lines.append("")
    for pkg, e in entries.items():
        lines += _section(pkg, e, runs_dir)
    path = os.path.join(runs_dir, "REPORT.md")
    os.makedirs(runs_dir, exist_ok=True)
    metrics._atomic_write(path, lambda f: f.write("\n".join(lines) + "\n"))
    return path


def run_package(pkg: str, scale: str, runs_dir: str) -> dict:
    """Runs one package's default config (or its smoke variant) in a subprocess; returns its report entry."""
    config = f"{pkg}/configs/default.py" + (":smoke" if scale == "smoke" else "")
    name = app.config_name(config)  # the CLI's own default workdir name: default, default_smoke
    workdir = os.path.join(runs_dir, pkg, name)
    log = os.path.join(runs_dir, pkg, f"{name}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    cmd = [sys.executable, "-m", f"{pkg}.main", f"--config={config}", f"--workdir={workdir}"]
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    entry = {
        "workdir": workdir,
        "log": log,
        "seconds": time.time() - start,
        "command": " ".join(cmd[1:]),
    }
    results_path = os.path.join(workdir, "results.json")
    if proc.returncode != 0 or not os.path.exists(results_path):
        with open(log) as f:
            tail = f.read().splitlines()[-15:]
        entry.update(status=f"failed (exit {proc.returncode})", error="\n".join(tail))
        return entry
    results = metrics.read_json(results_path)
    try:
        module = importlib.import_module(f"{pkg}.experiment")
        rows = module.report(results) if hasattr(module, "report") else []
    except Exception as e:  # noqa: BLE001 - a broken report must not hide the run
        rows, entry["error"] = [], f"report() failed: {type(e).__name__}: {e}"
    entry.update(
        status="ran",
        rows=rows,
        figures=sorted(glob.glob(os.path.join(workdir, "figures", "*.png"))),
    )
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated packages (default: all)")
    parser.add_argument("--scale", default="default", choices=("default", "smoke"))
    parser.add_argument("--runs-dir", default=os.path.join(ROOT, "runs"))
    args = parser.parse_args(argv)
    wanted = [p.strip() for p in args.only.split(",") if p.strip()] or list(PACKAGES)
    unknown = [p for p in wanted if p not in PACKAGES]
    if unknown:
        parser.exit(2, f"error: --only: unknown package(s) {unknown}; known: {', '.join(PACKAGES)}\n")
    entries = {p: ({"status": "pending"} if is_built(p) else {"status": "not built"}) for p in wanted}
    todo = [p for p in wanted if is_built(p)]
    path = write_report(entries, args.runs_dir, args.scale)
    bar = metrics.progress(len(todo), "reproduce")
    failed = 0
    for pkg in todo:
        print(f"[reproduce] {pkg}: running {args.scale} config ...", flush=True)
        entries[pkg] = run_package(pkg, args.scale, args.runs_dir)
        failed += entries[pkg]["status"] != "ran"
        print(
            f"[reproduce] {pkg}: {entries[pkg]['status']} in {entries[pkg]['seconds']:.0f} s",
            flush=True,
        )
        write_report(entries, args.runs_dir, args.scale)
        bar.update(1)
    bar.close()
    print(f"[reproduce] report: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
