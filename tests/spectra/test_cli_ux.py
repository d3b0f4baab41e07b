"""spectra-denoise as a researcher first meets it: -h, `--flag value`, CSV output, rank >= 1, the output path
checked before computing, errors naming the right flag, one default noise rule for the API and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from spectra import cli, denoise

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def matrix():
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.standard_normal((30, 3)))
    v, _ = np.linalg.qr(rng.standard_normal((60, 3)))
    return (u * np.array([3.0, 2.5, 2.0])) @ v.T + rng.standard_normal((30, 60)) / np.sqrt(60)


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spectra-denoise: error: "), err
    return err


def test_help_and_the_space_form_through_a_subprocess(tmp_path, matrix):
    proc = subprocess.run([sys.executable, "-m", "spectra.cli", "-h"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "--noise-std" in proc.stdout and "--rank" in proc.stdout
    inp, out = tmp_path / "y.npy", tmp_path / "s.npy"
    np.save(inp, matrix)
    proc = subprocess.run(
        [sys.executable, "-m", "spectra.cli", "--input", str(inp), "--output", str(out), "--method", "gd"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(out), denoise.gd_shrink(matrix), atol=1e-12)
    bad = subprocess.run(
        [sys.executable, "-m", "spectra.cli", "--input", str(inp), "--output", str(out), "--rank"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--rank" in bad.stderr, bad.stderr


def test_csv_output_is_csv_and_unknown_formats_are_refused(tmp_path, matrix, capsys):
    inp = tmp_path / "y.npy"
    np.save(inp, matrix)
    assert cli.main(["--input", str(inp), "--output", str(tmp_path / "s.csv")]) == 0
    text = (tmp_path / "s.csv").read_text()
    assert not text.startswith("\x93NUMPY") and text.count("\n") == 30
    np.testing.assert_allclose(np.loadtxt(tmp_path / "s.csv", delimiter=","), denoise.rie_denoise(matrix), rtol=1e-15)
    capsys.readouterr()
    assert cli.main(["--input", str(inp), "--output", str(tmp_path / "s.bin")]) == 2
    assert "--output=" in _err(capsys) and not (tmp_path / "s.bin").exists()


def test_rank_below_one_is_refused_and_a_too_large_rank_names_rank(tmp_path, matrix, capsys):
    inp, out = tmp_path / "y.npy", tmp_path / "s.npy"
    np.save(inp, matrix)
    assert cli.main(["--input", str(inp), "--output", str(out), "--method=svd", "--rank=0"]) == 2
    assert "--rank: must be >= 1" in _err(capsys)
    assert cli.main(["--input", str(inp), "--output", str(out), "--method=svd", "--rank=31"]) == 2
    err = _err(capsys)
    assert "--rank=31: exceeds min(N, M) = 30" in err and "--input" not in err
    assert not out.exists()
    assert cli.main(["--input", str(inp), "--output", str(out), "--method=svd", "--rank=2"]) == 0
    np.testing.assert_allclose(np.load(out), denoise.truncated_svd(matrix, 2), atol=1e-12)


def test_output_path_checked_before_reading_or_computing(tmp_path, capsys):
    bad_input = tmp_path / "nan.npy"
    np.save(bad_input, np.full((4, 4), np.nan))
    (tmp_path / "adir.npy").mkdir()
    # The input is bad too: the error names --output, so the output was checked first.
    assert cli.main(["--input", str(bad_input), "--output", str(tmp_path / "adir.npy")]) == 2
    err = _err(capsys)
    assert "--output=" in err and "is a directory" in err
    assert cli.main(["--input", str(bad_input), "--output", str(tmp_path / "no" / "s.npy")]) == 2
    assert "does not exist" in _err(capsys)
    assert cli.main(["--input", str(tmp_path), "--output", str(tmp_path / "s.npy")]) == 2
    err = _err(capsys)
    assert "--input=" in err and "is a directory" in err


def test_api_and_cli_share_the_default_noise_rule(tmp_path, matrix):
    inp, out = tmp_path / "y.npy", tmp_path / "s.npy"
    np.save(inp, matrix)
    assert cli.main(["--input", str(inp), "--output", str(out)]) == 0
    assert denoise.DEFAULT_NOISE == denoise.ESTIMATE
    np.testing.assert_allclose(np.load(out), denoise.rie_denoise(matrix), atol=1e-12)
    np.testing.assert_allclose(np.load(out), denoise.rie_denoise(matrix, "estimate"), atol=1e-12)
    assert denoise.estimate_noise_std(matrix) == denoise.estimate_noise_std(matrix, "estimate")
