"""The Colab notebooks in notebooks/: one per package, stored without outputs, each executed at smoke scale.

The executing tests start a real Jupyter kernel (ipykernel, through nbclient) in a fresh temporary directory, with
the repository importable and NOTEBOOK_SCALE=smoke, and fail on the first cell error. They are marked `notebooks`:
`make test` leaves them out, `make test-notebooks` runs them.
"""

from __future__ import annotations

import os
import resource
import time

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")
PACKAGES = ("icl", "collapse", "spectra", "dedup", "manifolds", "margin", "pruning", "disentangle")
NOTEBOOKS = [os.path.join(NOTEBOOK_DIR, f"{pkg}.ipynb") for pkg in PACKAGES]
SCALE_SWITCH = 'SCALE = os.environ.get("NOTEBOOK_SCALE", "smoke")'


def _name(path: str) -> str:
    return os.path.basename(path)


def _read(path: str) -> nbformat.NotebookNode:
    with open(path, encoding="utf-8") as f:
        return nbformat.read(f, as_version=4)


def test_one_notebook_per_package():
    found = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))
    assert found == sorted(f"{pkg}.ipynb" for pkg in PACKAGES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_stored_clean_and_valid(path):
    nb = _read(path)
    nbformat.validate(nb)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # formatted the way nbformat writes it (so diffs stay small), with no outputs and no execution counts
    assert text.rstrip("\n") == nbformat.writes(nb).rstrip("\n"), f"{_name(path)}: not in nbformat's layout"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{_name(path)} cell {i} is stored with outputs"
            assert cell.execution_count is None, f"{_name(path)} cell {i} is stored with an execution count"
        assert "attachments" not in cell or not cell.attachments, f"{_name(path)} cell {i} has attachments"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_scale_switch_and_colab_only_install(path):
    code = [c.source for c in _read(path).cells if c.cell_type == "code"]
    assert sum(SCALE_SWITCH in src for src in code) == 1, f"{_name(path)}: needs exactly one SCALE switch"
    install = code[0]
    assert 'IN_COLAB = "google.colab" in sys.modules' in install and "if IN_COLAB:" in install
    pkg = _name(path).removesuffix(".ipynb")
    assert any(f"from {pkg} import" in src for src in code), f"{_name(path)} never imports {pkg}"
    assert any("app.execute(experiment, config, WORKDIR)" in src for src in code)


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env["NOTEBOOK_SCALE"] = "smoke"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    env["JAX_PLATFORMS"] = "cpu"
    # tests/conftest.py gives this process 4 fake devices; the kernel gets what a user's gets (one per core)
    if env.get("XLA_FLAGS") == "--xla_force_host_platform_device_count=4":
        del env["XLA_FLAGS"]
    env.pop("JAX_NUM_CPU_DEVICES", None)
    env.pop("MPLBACKEND", None)
    return env


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_executes_at_smoke_scale(path, tmp_path, record_property):
    from nbclient import NotebookClient

    nb = _read(path)
    client = NotebookClient(
        nb,
        timeout=600,
        startup_timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    client.execute(env=_kernel_env())  # raises CellExecutionError (with the cell's traceback) on any error
    wall = time.time() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    figure_cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("show(")]
    assert figure_cells, f"{_name(path)} shows no figure"
    for c in figure_cells:  # each figure cell displayed at least one image inline
        assert any("image/png" in o.get("data", {}) for o in c.outputs), f"{_name(path)}: {c.source} showed nothing"
    assert os.path.isdir(os.path.join(tmp_path, "runs")), "the notebook did not run in its working directory"
    record_property("wall_s", round(wall, 1))  # in --junitxml reports
    record_property("kernel_cpu_s", round(cpu, 1))
    record_property("load_average", round(os.getloadavg()[0], 2))
    print(f"\n{_name(path)}: {wall:.1f} s wall, kernel CPU {cpu:.1f} s, load {os.getloadavg()[0]:.2f}")
