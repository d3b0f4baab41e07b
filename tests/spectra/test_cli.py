"""The command-line denoiser on every kind of input a user may hand it.

Good inputs (float16, big-endian float64, entries near 1e158 and 1e-170, .csv, .txt, .npz) must give
the same estimate as the float64 matrix at unit scale, rescaled; bad ones (NaN, 1-D, 3-D, pickled,
empty, garbage, a directory) and bad flags one line on stderr naming the flag, exit 2, nothing written.
Outputs get the umask's mode; `--flag value` and `--flag=value` both work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from spectra import cli, denoise

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIGMA = float(1 / np.sqrt(80))


@pytest.fixture(scope="module")
def matrix():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((40, 4)))
    v, _ = np.linalg.qr(rng.standard_normal((80, 4)))
    s = (u * np.array([3.0, 2.5, 2.0, 1.8])) @ v.T
    return s + rng.standard_normal((40, 80)) * SIGMA


def _run(tmp_path, inp, *flags, name="s.npy"):
    out = tmp_path / name
    code = cli.main([f"--input={inp}", f"--output={out}", *flags])
    return code, out


def test_cli_writes_rie_estimate_and_json(tmp_path, matrix, capsys):
    inp = tmp_path / "y.npy"
    np.save(inp, matrix)
    code, out = _run(tmp_path, inp, f"--noise-std={SIGMA!r}", "--json")
    assert code == 0
    np.testing.assert_allclose(np.load(out), denoise.rie_denoise(matrix, SIGMA), atol=1e-12)
    info = json.load(open(tmp_path / "s.json"))
    assert info["noise_std"] == pytest.approx(SIGMA, rel=1e-12) and info["noise_std_source"] == "given"
    assert info["rank_estimate"] == 4  # four spikes well above the Gavish-Donoho threshold
    sv = np.linalg.svd(np.load(out), compute_uv=False)
    np.testing.assert_allclose(np.sort(info["singular_values"])[::-1][:10], sv[:10], atol=1e-9)
    printed = capsys.readouterr().out
    assert f"{SIGMA:.6g}" in printed and "given by --noise-std" in printed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    umask = os.umask(0)
    os.umask(umask)
    for path in (out, tmp_path / "s.json"):  # an ordinary open() would give 0666 less the umask
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def _variants(matrix, tmp_path):
    """(name, path, scale): files that hold scale * matrix in some dtype, byte order or format."""
    out = []
    p = tmp_path / "f16.npy"
    np.save(p, matrix.astype(np.float16))
    out.append(("float16", p, 1.0))
    p = tmp_path / "big.npy"
    np.save(p, matrix.astype(">f8"))
    out.append(("big-endian", p, 1.0))
    for scale in (1e158, 1e-170):
        p = tmp_path / f"scaled{scale:g}.npy"
        np.save(p, matrix * scale)
        out.append((f"x{scale:g}", p, scale))
    p = tmp_path / "y.csv"
    np.savetxt(p, matrix, delimiter=",", fmt="%.17g")
    out.append(("csv", p, 1.0))
    p = tmp_path / "y.txt"
    np.savetxt(p, matrix, fmt="%.17g")
    out.append(("txt", p, 1.0))
    p = tmp_path / "y.npz"
    np.savez(p, other=np.zeros(3), Y=matrix)
    out.append(("npz", p, 1.0))
    return out


@pytest.mark.parametrize("sigma_flag", ["given", "estimate"])
def test_cli_accepts_every_float_input(tmp_path, matrix, capsys, sigma_flag):
    ref_sigma = SIGMA if sigma_flag == "given" else denoise.estimate_noise_std(matrix, "estimate")
    ref = denoise.rie_denoise(matrix, ref_sigma)
    for name, path, scale in _variants(matrix, tmp_path):
        if sigma_flag == "estimate" and name != "x1e-170":
            continue  # the fit is the same for every variant (tested on the given-sigma path); one keeps it short
        flags = [f"--noise-std={SIGMA * scale!r}"] if sigma_flag == "given" else []
        if name == "npz":
            flags.append("--array=Y")
        code, out = _run(tmp_path, path, *flags, "--json", name=f"out_{name}.npy")
        assert code == 0, (name, capsys.readouterr().err)
        got = np.load(out)
        info = json.load(open(out.with_suffix(".json")))
        assert got.dtype == (np.float16 if name == "float16" else np.float64), name
        assert np.all(np.isfinite(got)), name
        tol = 2e-2 if name == "float16" else 1e-9  # float16 input is itself rounded to ~1e-3
        err = np.linalg.norm(got.astype(np.float64) / scale - ref) / np.linalg.norm(ref)
        assert err < tol, (name, err)
        assert info["noise_std"] / scale == pytest.approx(ref_sigma, rel=3e-2 if name == "float16" else 1e-7), name
        assert info["rank_estimate"] == 4, name
        assert info["noise_std_source"] == ("given" if sigma_flag == "given" else "estimate")
    capsys.readouterr()


@pytest.mark.parametrize("method", ["gd", "hard", "svd"])
def test_cli_methods_match_the_library(tmp_path, matrix, method):
    inp = tmp_path / "y.npy"
    np.save(inp, matrix)
    code, out = _run(tmp_path, inp, f"--noise-std={SIGMA!r}", f"--method={method}")
    assert code == 0
    ref = {
        "gd": lambda: denoise.gd_shrink(matrix, SIGMA),
        "hard": lambda: denoise.gd_hard_threshold(matrix, SIGMA),
        "svd": lambda: denoise.truncated_svd(matrix, 4),  # default rank = the hard-threshold estimate
    }[method]()
    np.testing.assert_allclose(np.load(out), ref, atol=1e-10)


def test_cli_covariance_and_smoothing(tmp_path, matrix):
    inp = tmp_path / "y.npy"
    np.save(inp, matrix)
    code, out = _run(tmp_path, inp, f"--noise-std={SIGMA!r}", "--covariance", "--smoothing=0.7")
    assert code == 0
    np.testing.assert_allclose(np.load(out), denoise.rie_covariance(matrix, SIGMA, smoothing=0.7), atol=1e-12)
    code, out = _run(tmp_path, inp, f"--noise-std={SIGMA!r}", "--smoothing=3", name="s3.npy")
    assert code == 0
    np.testing.assert_allclose(np.load(out), denoise.rie_denoise(matrix, SIGMA, smoothing=3.0), atol=1e-12)


def _bad_files(tmp_path):
    out = {}
    for name, arr in (
        ("nan.npy", np.array([[1.0, np.nan], [2.0, 3.0]])),
        ("inf.npy", np.array([[1.0, np.inf], [2.0, 3.0]])),
        ("one_d.npy", np.ones(7)),
        ("three_d.npy", np.ones((4, 4, 4))),
        ("row.npy", np.ones((1, 5))),
        ("complex.npy", np.ones((3, 3), dtype=complex)),
        ("empty_array.npy", np.zeros((0, 4))),
    ):
        np.save(tmp_path / name, arr)
        out[name] = name.split(".")[0].split("_")[0]
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    out["obj.npy"] = "pickle"
    import pickle

    (tmp_path / "pickled.npy").write_bytes(pickle.dumps(np.eye(3)))
    out["pickled.npy"] = "pickle"
    (tmp_path / "garbage.npy").write_bytes(b"not a numpy file at all")
    out["garbage.npy"] = "cannot read"
    (tmp_path / "empty.npy").write_bytes(b"")
    out["empty.npy"] = "cannot read"
    (tmp_path / "empty.csv").write_text("")
    out["empty.csv"] = "empty"
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    out["ragged.csv"] = "cannot read"
    (tmp_path / "nan.csv").write_text("1,2\nnan,4\n")
    out["nan.csv"] = "non-finite"
    np.savez(tmp_path / "two.npz", a=np.eye(3), b=np.eye(3))
    out["two.npz"] = "--array"
    out["missing.npy"] = "no such file"
    return out


def test_cli_rejects_bad_inputs_with_one_line(tmp_path, capsys):
    needles = {
        "nan": "non-finite",
        "inf": "non-finite",
        "one": "2-D",
        "three": "2-D",
        "row": ">= 2",
        "complex": "real numeric",
        "empty": "empty",
    }
    out = tmp_path / "s.npy"
    for name, needle in _bad_files(tmp_path).items():
        needle = needles.get(needle, needle)
        assert cli.main([f"--input={tmp_path / name}", f"--output={out}"]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("spectra-denoise: error: ") and name in err, (name, err)
        assert needle in err, (name, err)
        assert not out.exists(), name
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cli_rejects_bad_flags(tmp_path, matrix, capsys):
    inp, out = tmp_path / "y.npy", tmp_path / "s.npy"
    np.save(inp, matrix)
    for args in (
        ["--noise-std=-1"],
        ["--noise-std=abc"],
        ["--method=pca"],
        ["--rank=3"],  # only with --method=svd
        ["--method=svd", "--rank=-1"],
        ["--method=gd", "--smoothing=1"],
        ["--smoothing=0"],
        ["--covariance=maybe"],
        ["--bogus=1"],
        ["--array=Y"],  # not an .npz
    ):
        assert cli.main([f"--input={inp}", f"--output={out}", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("spectra-denoise: error: "), args
    for args in ([f"--input={inp}"], [f"--input={inp}", f"--output={tmp_path / 'no_dir' / 's.npy'}"]):
        assert cli.main(args) == 2
        assert capsys.readouterr().err.startswith("spectra-denoise: error: ")
    assert not out.exists()


def _commands():
    cmds = [[sys.executable, "-m", "spectra.cli"]]
    script = os.path.join(os.path.dirname(sys.executable), "spectra-denoise")
    script = script if os.path.exists(script) else shutil.which("spectra-denoise")
    if script:  # the console script (installed by pip install -e .): a second fresh process, so slow
        cmds.append(pytest.param([script], marks=pytest.mark.slow))
    return cmds


@pytest.mark.parametrize("cmd", _commands(), ids=["python-m", "console-script"][: len(_commands())])
def test_cli_as_a_command(tmp_path, matrix, cmd):
    inp, out = tmp_path / "y.npy", tmp_path / "s.npy"
    np.save(inp, (matrix * 1e158).astype(">f8"))
    ok = subprocess.run(
        [*cmd, f"--input={inp}", f"--output={out}", f"--noise-std={SIGMA * 1e158!r}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert "noise std" in ok.stdout
    np.testing.assert_allclose(np.load(out) / 1e158, denoise.rie_denoise(matrix, SIGMA), atol=1e-10)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((3, 3), np.nan))
    fail = subprocess.run(
        [*cmd, f"--input={bad}", f"--output={tmp_path / 'o.npy'}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert fail.returncode == 2
    assert fail.stderr.count("\n") == 1 and "non-finite" in fail.stderr
    assert not (tmp_path / "o.npy").exists()
