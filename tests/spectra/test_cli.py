"""The command-line denoiser: output equals rie_denoise; bad input -> one line, exit 2, no file."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from spectra import denoise


@pytest.fixture()
def matrix():
    rng = np.random.default_rng(0)
    s = 2.0 * np.outer(rng.standard_normal(40), rng.standard_normal(80)) / np.sqrt(40 * 80)
    return s + rng.standard_normal((40, 80)) / np.sqrt(80)


def test_cli_writes_rie_estimate(tmp_path, matrix, capsys):
    inp, out = tmp_path / "y.npy", tmp_path / "s.npy"
    np.save(inp, matrix)
    assert denoise.main([f"--input={inp}", f"--output={out}", "--noise-std=0.111803"]) == 0
    np.testing.assert_allclose(np.load(out), denoise.rie_denoise(matrix, 0.111803), atol=1e-12)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "array,needle",
    [
        (np.array([[1.0, np.inf], [2.0, 3.0]]), "non-finite"),
        (np.ones(7), "2-D"),
        (np.ones((4, 4, 4)), "2-D"),
    ],
)
def test_cli_rejects_bad_arrays(tmp_path, capsys, array, needle):
    inp, out = tmp_path / "y.npy", tmp_path / "s.npy"
    np.save(inp, array)
    assert denoise.main([f"--input={inp}", f"--output={out}"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "y.npy" in err and err.count("\n") == 1
    assert not out.exists()


def test_cli_rejects_unreadable_and_pickled_files(tmp_path, capsys):
    out = tmp_path / "s.npy"
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not a numpy file at all")
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for path in (garbage, pickled, tmp_path / "missing.npy"):
        assert denoise.main([f"--input={path}", f"--output={out}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and path.name in err
    assert not out.exists()


def test_cli_rejects_bad_flags(tmp_path, matrix, capsys):
    inp, out = tmp_path / "y.npy", tmp_path / "s.npy"
    np.save(inp, matrix)
    for args in (
        [f"--input={inp}", f"--output={out}", "--noise-std=-1"],
        [f"--input={inp}", f"--output={out}", "--noise-std=abc"],
        [f"--input={inp}"],
        [f"--input={inp}", f"--output={out}", "--bogus=1"],
        [f"--input={inp}", f"--output={tmp_path / 'no_dir' / 's.npy'}"],
    ):
        assert denoise.main(args) == 2
        assert capsys.readouterr().err.startswith("error:")
    assert not out.exists()


def test_cli_as_a_module(tmp_path, matrix):
    inp, out = tmp_path / "y.npy", tmp_path / "s.npy"
    np.save(inp, matrix.astype(np.float32))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ok = subprocess.run(
        [sys.executable, "-m", "spectra.denoise", f"--input={inp}", f"--output={out}"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert np.load(out).dtype == np.float32
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((3, 3), np.nan))
    fail = subprocess.run(
        [sys.executable, "-m", "spectra.denoise", f"--input={bad}", f"--output={tmp_path / 'o.npy'}"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert fail.returncode == 2
    assert fail.stderr.count("\n") == 1 and "non-finite" in fail.stderr
    assert not (tmp_path / "o.npy").exists()
