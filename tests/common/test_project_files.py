"""The files a collaborator looks for: LICENSE matching setup.cfg, CITATION.cff, the changelog, and a pre-commit
configuration running the same ruff as `make lint`."""

import configparser
import os
import re

import yaml

from common import reproduce

ROOT = reproduce.ROOT


def _read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def _setup():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    return cfg["metadata"]


def test_license_is_the_one_setup_cfg_names():
    assert _setup()["license"] == "Apache-2.0"
    text = _read("LICENSE")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_citation_cff_matches_the_package():
    cff = yaml.safe_load(_read("CITATION.cff"))
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "Apache-2.0"
    assert str(cff["version"]) == _setup()["version"]
    assert len(cff["references"]) == len(reproduce.PACKAGES)
    for pkg in reproduce.PACKAGES:  # each package README ends with its paper's BibTeX
        readme = _read(f"{pkg}/README.md")
        assert "## Citation" in readme and "```bibtex" in readme.split("## Citation")[-1], pkg


def test_pre_commit_runs_the_pinned_ruff():
    pins = dict(ln.split("==") for ln in _read("constraints.txt").splitlines() if "==" in ln and not ln.startswith("#"))
    hooks = [h for repo in yaml.safe_load(_read(".pre-commit-config.yaml"))["repos"] for h in repo["hooks"]]
    assert {h["id"] for h in hooks} == {"ruff-check", "ruff-format"}
    for h in hooks:
        assert h["additional_dependencies"] == [f"ruff=={pins['ruff']}"], h
        assert h["entry"].startswith("ruff ")


def test_changelog_has_an_unreleased_section():
    text = _read("CHANGELOG.md")
    assert re.search(r"^## Unreleased$", text, re.M) and re.search(r"^## \d+\.\d+\.\d+$", text, re.M)


def test_make_installs_with_a_supported_editable_mode():
    """setuptools deprecated editable_mode=compat (a 12-line warning on every fresh install); the default mode with
    `package_dir = =.` gives the same .pth on the checkout without any warning."""
    makefile = _read("Makefile")
    assert "editable_mode" not in makefile and "-e '.[test,dev]'" in makefile
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    assert [ln.strip() for ln in cfg["options"]["package_dir"].splitlines() if ln.strip()] == ["=."]
