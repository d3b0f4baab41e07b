"""One place holds the measured runtimes (docs/runtimes.json); the README table, the Makefile, the notebooks and each
package README agree with it or say nothing."""

import json
import os
import re

from common import reproduce

ROOT = reproduce.ROOT
# A stated CPU duration: "9.2 min", "about 6 min", "about a minute", "a few seconds", "10-15 min".
DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:\s*[-–]\s*\d+(?:\.\d+)?)?\s*(?:min|minutes?)\b|about a minute|few seconds")


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def test_runtimes_file_has_every_package_with_date_machine_and_load():
    table = reproduce.runtimes()
    assert set(table) == set(reproduce.PACKAGES)
    assert reproduce.runtime_text(None) == "not measured"
    for pkg, entry in table.items():
        d = entry["default"]
        if d is None:  # not timed for the current default: the file says why
            assert entry["note"], pkg
            continue
        assert d["wall_seconds"] > 0 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", d["date"]), pkg
        assert d["machine"] and d["load"], pkg


def test_readme_table_takes_its_runtimes_from_the_file():
    table = reproduce.runtimes()
    rows = {}
    for line in _read("README.md").splitlines():
        m = re.match(r"\| `(\w+)/` \|", line)
        if m:
            rows[m.group(1)] = line.rstrip(" |").split(" | ")[-1]
    assert set(rows) == set(table)
    for pkg, cell in rows.items():
        assert cell == reproduce.runtime_text(table[pkg]["default"]), (pkg, cell)
    assert reproduce.runtime_text({"wall_seconds": 553, "load": "quiet (below 2)"}) == "9.2 min (quiet)"
    assert reproduce.runtime_text({"wall_seconds": 175, "load": "13-14"}) == "2.9 min at load 13-14"
    # Outside the table the README states no CPU runtime (its accelerator section's H100 timings are their own).
    sections = re.split(r"\n(?=## )", _read("README.md"))
    cpu = [s for s in sections if not s.startswith("## Running on a TPU or GPU")]
    prose = [ln for s in cpu for ln in s.splitlines() if not ln.startswith("|")]
    assert [m.group(0) for ln in prose for m in DURATION.finditer(ln)] == []


def test_makefile_and_notebooks_point_to_the_file_and_state_no_runtime():
    makefile = _read("Makefile")
    assert DURATION.findall(makefile) == [] and "docs/runtimes.json" in makefile
    for name in sorted(os.listdir(os.path.join(ROOT, "notebooks"))):
        if not name.endswith(".ipynb"):
            continue
        cells = json.loads(_read("notebooks", name))["cells"]
        text = ["".join(c["source"]) for c in cells]
        stated = [m.group(0) for t in text for ln in t.splitlines() if "H100" not in ln for m in DURATION.finditer(ln)]
        assert stated == [], (name, stated)
        assert any("docs/runtimes.json" in t for t in text), name


def _minutes_seconds(seconds: int) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def test_each_package_readme_states_the_measurement_in_the_file():
    for pkg, entry in reproduce.runtimes().items():
        if entry["default"] is None:
            continue
        wall = entry["default"]["wall_seconds"]
        text = " ".join(_read(pkg, "README.md").split())
        stated = (_minutes_seconds(wall), f"{wall} s", f"{wall:,} s")
        assert any(form in text for form in stated), (pkg, stated)
