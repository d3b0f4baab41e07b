"""Reproducible installs: constraints.txt pins every requirement within setup.cfg's bounds, and the Makefile
recreates a broken .venv and names the missing python3-venv package (run on a copy in a temp directory)."""

import configparser
import os
import shutil
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from common import reproduce

ROOT = reproduce.ROOT


def _pins() -> dict[str, str]:
    pins = {}
    with open(os.path.join(ROOT, "constraints.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                assert version, f"constraints.txt: {line!r} is not an exact pin"
                assert canonicalize_name(name) not in pins, f"constraints.txt: {name} pinned twice"
                pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        lines = list(tomllib.load(f)["build-system"]["requires"])  # the build backend is pinned too
    lines += cfg["options"]["install_requires"].splitlines()
    for extra in ("test", "dev", "data"):
        lines += cfg["options.extras_require"][extra].splitlines()
    return [Requirement(ln.strip()) for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def test_constraints_pin_every_requirement_within_its_bounds():
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is required by setup.cfg but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} violates {req}"
        assert req.specifier or name == "wheel", f"setup.cfg: {req.name} has no lower bound"


_FAKE_PYTHON = """#!/bin/sh
# `-m venv DIR`: {mode}; anything else: the real interpreter.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && ln -sf {python} "$3/bin/python"
  {action}
fi
exec {python} "$@"
"""


def _make(tmp_path, *args, mode="ok"):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for name in ("Makefile", "setup.cfg", "pyproject.toml", "constraints.txt"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    action = {
        "ok": "exit 0",  # a venv whose python (this one) has pip
        "no-ensurepip": 'echo "The virtual environment was not created successfully because ensurepip is not"; '
        'echo "available.  On Debian/Ubuntu systems, you need to install the python3-venv package"; exit 1',
    }[mode]
    fake = tmp_path / "fakepython"
    fake.write_text(_FAKE_PYTHON.format(mode=mode, python=sys.executable, action=action))
    fake.chmod(0o755)
    return subprocess.run(
        ["make", "--no-print-directory", f"PYTHON={fake}", "VENV=venv", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_recreates_a_venv_left_broken(tmp_path):
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    os.symlink("/nonexistent/python", tmp_path / "venv" / "bin" / "python")  # a failed first attempt
    proc = _make(tmp_path, "venv")
    assert proc.returncode == 0, proc.stderr
    assert "venv is broken" in proc.stdout and "recreating it" in proc.stdout
    assert os.path.realpath(tmp_path / "venv" / "bin" / "python") == os.path.realpath(sys.executable)
    again = _make(tmp_path, "venv")  # a working venv is left alone
    assert again.returncode == 0 and again.stdout == ""


def test_make_reinstalls_when_the_stamp_outlived_the_venv(tmp_path):
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    os.symlink("/nonexistent/python", tmp_path / "venv" / "bin" / "python")
    (tmp_path / "venv" / ".installed-stamp").touch()
    proc = _make(tmp_path, "-n", "venv/.installed-stamp")
    assert proc.returncode == 0, proc.stderr
    assert "pip install" in proc.stdout and "-c constraints.txt" in proc.stdout


def test_make_names_the_missing_venv_package(tmp_path):
    proc = _make(tmp_path, "venv", mode="no-ensurepip")
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "python3-venv" in errors[0]
    v = f"python{sys.version_info[0]}.{sys.version_info[1]}-venv"
    assert v in errors[0]
    assert not (tmp_path / "venv").exists()  # no half-made venv left to trip the next attempt
