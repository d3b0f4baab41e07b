"""The mutation runner on a tiny stand-alone project (no JAX): killed, survived, each kind of error, the file restored;
and every package's mutant list in step with its source (each snippet occurs exactly once)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.mutants import run
from tests.mutants.spec import Mutant


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "mod.py").write_text("def mean(xs):\n    return sum(xs) / len(xs)\n\n\ndef unused():\n    return 1\n")
    (tmp_path / "tests" / "test_mod.py").write_text(
        textwrap.dedent(
            """
            import time

            from mod import mean


            def test_mean():
                assert mean([1.0, 2.0, 6.0]) == 3.0


            def test_sleeps():
                time.sleep(30)
            """
        )
    )
    return tmp_path


def _mutant(old, new, tests=("tests/test_mod.py::test_mean",)):
    return Mutant(file="mod.py", old=old, new=new, tests=tests, why="w")


def test_a_bug_the_test_sees_is_killed_and_the_file_restored(project):
    before = (project / "mod.py").read_text()
    r = run.run_one(project, "p", _mutant("/ len(xs)", "/ (len(xs) - 1)"), 60, False)
    assert (r.status, r.detail) == ("killed", "tests/test_mod.py::test_mean")
    assert (project / "mod.py").read_text() == before


def test_a_bug_the_test_misses_survives(project):
    r = run.run_one(project, "p", _mutant("return 1", "return 2"), 60, False)
    assert r.status == "SURVIVED"


@pytest.mark.parametrize(
    "old,tests,detail",
    [
        ("return max(xs)", ("tests/test_mod.py::test_mean",), "snippet not found"),
        ("return", ("tests/test_mod.py::test_mean",), "snippet not unique (2 occurrences)"),
        ("return 1", ("tests/test_mod.py::test_missing",), "pytest exit 4 (tests not found or not collected)"),
    ],
)
def test_errors_name_what_went_wrong(project, old, tests, detail):
    r = run.run_one(project, "p", _mutant(old, old + " + 0", tests), 60, False)
    assert (r.status, r.detail) == ("ERROR", detail)


def test_tests_past_the_timeout_are_an_error(project):
    r = run.run_one(project, "p", _mutant("return 1", "return 2", ("tests/test_mod.py::test_sleeps",)), 3, False)
    assert (r.status, r.detail) == ("ERROR", "timeout after 3 s")
    assert r.seconds < 25


def test_spec_rejects_malformed_mutants():
    with pytest.raises(ValueError, match="tests"):
        Mutant(file="mod.py", old="a", new="b", tests=("mod_test.py",), why="w")
    with pytest.raises(ValueError, match="new"):
        Mutant(file="mod.py", old="a", new="a", tests=("tests/t.py",), why="w")
    with pytest.raises(ValueError, match="file"):
        Mutant(file="/abs/mod.py", old="a", new="b", tests=("tests/t.py",), why="w")


def test_unknown_package_is_a_one_line_error_naming_only(capsys):
    with pytest.raises(SystemExit) as e:
        run.parse_args(["--only", "nosuchpackage"])
    assert e.value.code == 2
    assert "--only: no mutant list tests/mutants/nosuchpackage.py" in capsys.readouterr().err


@pytest.mark.parametrize("package", run.packages())
def test_every_listed_snippet_occurs_exactly_once(package):
    for _, m in run.load([package]):
        assert run.snippet_problem(run._read(run.ROOT, m.file), m) is None, f"{m.file}: {m.why}"
