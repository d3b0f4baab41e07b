"""The command-line denoiser: estimate S (or S S^T) from a data matrix Y = S + noise.

    spectra-denoise --input Y.npy --output S_hat.npy [--noise-std SIGMA|estimate|median] [--method rie]
    python -m spectra.cli ...   (the same; `--flag value` and `--flag=value` both work, -h lists the flags)

Bad input (an unreadable or non-finite matrix, an impossible flag value, an output path that cannot be written) is
one line on stderr naming the flag, exit status 2, and nothing written; the output path is checked before the
estimate is computed. The noise level defaults to "estimate", as in the library (`spectra.denoise.DEFAULT_NOISE`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import warnings

import numpy as np

from common import metrics
from spectra import denoise

PROG = "spectra-denoise"
METHODS = ("rie", "gd", "hard", "svd")
OUTPUT_FORMATS = {".npy": "NumPy .npy", ".csv": "comma-separated text", ".txt": "whitespace-separated text"}
INPUT_TEXT = (".csv", ".txt", ".tsv", ".dat")

_SOURCES = {
    "given": "given by --noise-std",
    "estimate": "estimated: ESM fit to the whole spectrum",
    "median": "estimated: median singular value (Gavish-Donoho; biased upwards by extensive signals)",
}


class FlagError(Exception):
    """Bad input for one flag: printed as `spectra-denoise: error: --flag=value: message`, exit 2."""

    def __init__(self, flag: str | None, value, message: str):
        if flag is None:
            super().__init__(message)
        else:
            super().__init__(f"--{flag}={value}: {message}" if value is not None else f"--{flag}: {message}")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors raised as one-line FlagErrors instead of the usage block and exit."""

    def error(self, message: str):
        head, sep, rest = message.partition(": ")
        if sep and head.startswith("argument "):
            flag = head.removeprefix("argument ").split("/")[-1].lstrip("-")
            raise FlagError(flag, None, rest)
        raise FlagError(None, None, message)


def _noise(text: str):
    if text in (denoise.ESTIMATE, denoise.MEDIAN):
        return text
    try:
        sigma = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'estimate' or 'median', got {text!r}") from None
    if not (math.isfinite(sigma) and sigma > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return sigma


def _positive_int(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (rank 0 would write an all-zero matrix), got {k}")
    return k


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return x


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Estimate the signal S (or its covariance S S^T) from a data matrix Y = S + noise with the "
        "optimal rotationally invariant denoiser of Landau, Mel & Ganguli (2023), or a Gavish-Donoho baseline.",
    )
    p.add_argument(
        "--input",
        required=True,
        metavar="PATH",
        help=".npy, .npz (with --array NAME unless it holds one array), .csv (comma-separated) or .txt/.tsv/.dat "
        "(whitespace); any real float or integer dtype",
    )
    p.add_argument(
        "--output",
        required=True,
        metavar="PATH",
        help="where the estimate is written, atomically: .npy (the input's float dtype) or .csv/.txt (text, "
        "full float64 precision)",
    )
    p.add_argument(
        "--noise-std",
        type=_noise,
        default=denoise.DEFAULT_NOISE,
        metavar="V",
        help="per-entry noise standard deviation: a number, 'estimate' (default: fitted to the whole spectrum, "
        "unbiased on extensive signals) or 'median' (Gavish-Donoho; biased upwards by extensive signals)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="rie",
        help="rie (default, optimal rotationally invariant) | gd (Gavish-Donoho shrinkage) | hard (Gavish-Donoho "
        "hard threshold) | svd (truncated SVD at --rank)",
    )
    p.add_argument(
        "--rank",
        type=_positive_int,
        metavar="K",
        help="rank for --method svd, >= 1 (default: the hard-threshold rank estimate)",
    )
    p.add_argument("--covariance", action="store_true", help="write the estimate of S S^T (rows x rows) instead of S")
    p.add_argument(
        "--smoothing",
        type=_positive_float,
        metavar="X",
        help=f"RIE kernel width X / sqrt(N) (default {denoise.SMOOTHING}; {denoise.COV_SMOOTHING} with --covariance)",
    )
    p.add_argument("--array", metavar="NAME", help="the array to read from an .npz input")
    p.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="also write the estimated singular values, rank estimate and noise level as JSON (default path: "
        "OUTPUT with .json)",
    )
    return p


def _check_flags(a: argparse.Namespace) -> None:
    if a.rank is not None and a.method != "svd":
        raise FlagError("rank", a.rank, "applies only to --method svd")
    if a.smoothing is not None and a.method != "rie":
        raise FlagError("smoothing", a.smoothing, "applies only to --method rie")
    ext = os.path.splitext(a.output)[1].lower()
    if ext not in OUTPUT_FORMATS:
        known = ", ".join(f"{k} ({v})" for k, v in OUTPUT_FORMATS.items())
        raise FlagError("output", a.output, f"unknown format {ext or '(no extension)'}; use {known}")
    if a.array is not None and os.path.splitext(a.input)[1].lower() != ".npz":
        raise FlagError("array", a.array, "applies only to .npz inputs")
    if a.json is True:
        a.json = os.path.splitext(a.output)[0] + ".json"
    for flag in ("output", "json"):
        path = getattr(a, flag)
        if path:
            _check_writable(flag, path)
    if a.json and os.path.abspath(a.json) == os.path.abspath(a.output):
        raise FlagError("json", a.json, "is the same file as --output")


def _check_writable(flag: str, path: str) -> None:
    """The output can be written: its directory exists and takes a new file, and it is not a directory."""
    if os.path.isdir(path):
        raise FlagError(flag, path, "is a directory; name a file")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FlagError(flag, path, f"directory {directory} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise FlagError(flag, path, f"cannot write in {directory} ({e.strerror or e})") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def load_matrix(path: str, array: str | None = None) -> np.ndarray:
    """Reads a user's matrix without pickle: .npy, .npz (named array, or its only one), .csv, or
    whitespace-separated .txt/.tsv/.dat. Raises ValueError (one line) when it cannot."""
    ext = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        raise ValueError("is a directory, not a matrix file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns on empty files: reported below instead
            if ext in INPUT_TEXT:
                delim = "," if ext == ".csv" else None
                y = np.loadtxt(path, delimiter=delim, dtype=np.float64, ndmin=2, comments="#")
            elif ext == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    names = list(z.files)
                    if array is None:
                        if len(names) != 1:
                            raise ValueError(f"holds arrays {names}: choose one with --array NAME")
                        array = names[0]
                    if array not in names:
                        raise ValueError(f"no array {array!r} (it holds {names})")
                    y = z[array]
            else:
                y = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except (OSError, ValueError, EOFError, KeyError) as e:
        raise ValueError(f"cannot read a matrix ({_first_line(e)})") from None
    if not isinstance(y, np.ndarray):
        raise ValueError("not a single array")
    if y.size == 0:
        raise ValueError(f"empty array (shape {y.shape})")
    return y


def estimate(a: argparse.Namespace, y: np.ndarray) -> tuple[np.ndarray, dict]:
    """The estimate the flags ask for, and what the JSON side file reports. ValueError: bad data (--input)."""
    p = denoise._Problem(y, a.noise_std)
    method, cov = a.method, a.covariance
    smoothing = a.smoothing or (denoise.COV_SMOOTHING if cov else denoise.SMOOTHING)
    rank_estimate = int(np.sum(denoise._hard_keep(p, False)))
    if method == "rie":
        values = denoise.rie_shrinkage(p.y, p.c, smoothing if not cov else denoise.SMOOTHING)[0]
    elif method == "gd":
        values = denoise.gd_shrink_values(p.y, p.c)
    elif method == "hard":
        values = np.where(denoise._hard_keep(p, False), p.y, 0.0)
    else:
        rank = rank_estimate if a.rank is None else a.rank
        if rank > p.n:
            raise FlagError("rank", rank, f"exceeds min(N, M) = {p.n} of the input")
        keep = np.zeros(p.n, dtype=bool)
        keep[p.n - rank :] = rank > 0
        values = np.where(keep, p.y, 0.0)
    if cov:
        out = denoise._rie_covariance(p, smoothing) if method == "rie" else p.covariance(values**2)
    else:
        out = p.rebuild(values)
    info = {
        "input": a.input,
        "output": a.output,
        "shape": list(np.shape(y)),
        "method": method,
        "covariance": bool(cov),
        "noise_std": p.noise_std,
        "noise_std_source": p.sigma_source,
        "smoothing": smoothing if method == "rie" else None,
        "rank_estimate": rank_estimate,
        "singular_values": np.sort(values * p.scale * p.unit)[::-1],
    }
    return out, info


def save_matrix(path: str, out: np.ndarray) -> None:
    """Writes the estimate atomically in the format of the path's extension (see OUTPUT_FORMATS)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        metrics.atomic_save_npy(path, out)
        return
    delimiter = "," if ext == ".csv" else " "
    data = np.asarray(out, dtype=np.float64)
    metrics._atomic_write(path, lambda f: np.savetxt(f, data, delimiter=delimiter, fmt="%.17g"))


def run(argv: list[str]) -> dict:
    """Parses `argv`, computes and writes the estimate; returns the JSON info. FlagError on bad input."""
    a = parser().parse_args(argv)
    _check_flags(a)
    try:
        y = load_matrix(a.input, a.array)
        out, info = estimate(a, y)
    except ValueError as e:
        raise FlagError("input", a.input, _first_line(e)) from None
    if not np.all(np.isfinite(out)):  # never expected: the input is rescaled; refuse rather than write NaN
        raise FlagError("input", a.input, "the estimate is not finite (please report)")
    try:
        save_matrix(a.output, out)
    except OSError as e:
        raise FlagError("output", a.output, _first_line(e)) from None
    if a.json:
        try:
            metrics.atomic_write_json(a.json, info)
        except OSError as e:
            os.unlink(a.output)
            raise FlagError("json", a.json, _first_line(e)) from None
    info["_shape_out"], info["_dtype_out"], info["_json"] = out.shape, str(out.dtype), a.json
    return info


def main(argv: list[str] | None = None) -> int:
    """Console entry point (`spectra-denoise`): exit 0, or 2 with one line naming the flag on bad input."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        info = run(argv)
    except FlagError as e:
        sys.stderr.write(f"{PROG}: error: {' '.join(str(e).split())} (see {PROG} -h)\n")
        return 2
    what = "S S^T" if info["covariance"] else "S"
    n, m = info.pop("_shape_out")
    dtype, json_path = info.pop("_dtype_out"), info.pop("_json")
    print(f"noise std {info['noise_std']:.6g} ({_SOURCES[info['noise_std_source']]})")
    print(
        f"wrote {info['output']} ({what}, {info['method']}, {n} x {m}, {dtype}); rank estimate {info['rank_estimate']}"
        + (f"; {json_path}" if json_path else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
