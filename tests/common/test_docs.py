"""The repository is self-contained: docs/ARCHITECTURE.md exists and the README points to it, no file refers to
paths outside the repository, and the architecture page names what it documents."""

import os
import re
import subprocess

import pytest

from common import reproduce

ROOT = reproduce.ROOT
OUTSIDE = re.compile(r"\.\./shared|shared/paper[s]|DESIGN\.md|STYLE\.md")


def _tracked_text_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for rel in out.decode().split("\0"):
        if not rel or rel.startswith(".ci/"):  # the CI runner's own entry script describes its checkout
            continue
        pkg = rel.split("/")[0]
        if rel == f"{pkg}/README.md" and pkg in reproduce.PACKAGES and not reproduce.is_built(pkg):
            continue  # a placeholder until the package is built
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" not in data[:8192]:
            yield rel, data.decode("utf-8", errors="replace")


def test_no_file_refers_outside_the_repository():
    hits = [f"{rel}: {m.group(0)}" for rel, text in _tracked_text_files() for m in OUTSIDE.finditer(text)]
    assert hits == []


def test_readme_points_to_the_architecture_page():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert "docs/ARCHITECTURE.md" in f.read()
    with open(os.path.join(ROOT, "docs", "ARCHITECTURE.md")) as f:
        text = f.read()
    for name in ("guarded_scan", "run_chunked", "sorted_grid", "--jax_distributed", "OUTPUTS", "PACKAGES", ":smoke"):
        assert name in text, name
    for module in os.listdir(os.path.join(ROOT, "common")):
        if module.endswith(".py") and module != "__init__.py":
            assert f"`{module}`" in text, f"common/{module} is not described"
