"""Runs the mutation suite: each mutant applied to a copy of the repository, its tests run, killed or survived.

    python -m tests.mutants.run                      # every package's mutants (make mutants)
    python -m tests.mutants.run --only icl,spectra   # the mutants of some packages (tests/mutants/<pkg>.py)
    python -m tests.mutants.run --list               # list the mutants and whether each snippet applies; runs nothing
    python -m tests.mutants.run --match thresholds   # the mutants whose file or description contains the text
    python -m tests.mutants.run --jobs 2             # two mutants at a time
    python -m tests.mutants.run --baseline           # first check the listed tests pass on the unmutated code

The repository (tracked files and untracked files git does not ignore, as they are in the working tree; no .venv,
runs or .git) is copied once to a temporary directory (one copy per worker with ``--jobs N``). For each mutant the
runner replaces its ``old`` snippet (which must occur exactly once) by ``new``, runs its tests there with this
Python's pytest, slow tests included (``-p no:cacheprovider -x -q``, one timeout per mutant), and restores the file.
A mutant is *killed* when a test fails, *SURVIVED* when every test passes, and an *ERROR* when its snippet is missing
or not unique, its tests cannot be collected as given, or they run past the timeout. The exit status is 1 when any
mutant survived or errored.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import importlib
import os
import pkgutil
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.mutants.spec import Mutant

ROOT = Path(__file__).resolve().parents[2]
_NOT_PACKAGES = {"spec", "run"}
_EXCLUDED_TOP = {".venv", "runs", ".git"}


@dataclasses.dataclass
class Result:
    package: str
    mutant: Mutant
    status: str  # "killed" | "SURVIVED" | "ERROR"
    detail: str  # the catching test, or what went wrong
    seconds: float


def packages() -> list[str]:
    """The packages with a mutant list: every module tests/mutants/<pkg>.py."""
    here = Path(__file__).resolve().parent
    names = (m.name for m in pkgutil.iter_modules([str(here)]))
    return sorted(n for n in names if n not in _NOT_PACKAGES and not n.startswith("test_"))


def load(names: list[str]) -> list[tuple[str, Mutant]]:
    out = []
    for name in names:
        module = importlib.import_module(f"tests.mutants.{name}")
        mutants = getattr(module, "MUTANTS", None)
        if not isinstance(mutants, list | tuple) or not all(isinstance(m, Mutant) for m in mutants):
            raise SystemExit(f"error: tests/mutants/{name}.py: MUTANTS must be a list of Mutant")
        out.extend((name, m) for m in mutants)
    return out


def snippet_problem(text: str | None, m: Mutant) -> str | None:
    """Why the mutant cannot be applied to ``text`` (None when it can)."""
    if text is None:
        return f"file not found: {m.file}"
    n = text.count(m.old)
    if n == 0:
        return "snippet not found"
    if n > 1:
        return f"snippet not unique ({n} occurrences)"
    return None


def _read(root: Path, rel: str) -> str | None:
    p = root / rel
    return p.read_text() if p.is_file() else None


def copy_repo(dest: Path) -> None:
    """Copies the files git tracks or would track (as they are now in the working tree) into ``dest``."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in sorted(set(filter(None, listing.split("\0")))):
        if rel.split("/", 1)[0] in _EXCLUDED_TOP:
            continue
        src = ROOT / rel
        if not src.is_file():  # deleted in the working tree, or a submodule directory
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _catching_test(output: str) -> str:
    for line in output.splitlines():
        match = re.match(r"^(FAILED|ERROR) (\S+)", line)
        if match:
            return match.group(2) if match.group(1) == "FAILED" else f"{match.group(2)} (error)"
    return ""


def run_tests(workdir: Path, tests: tuple[str, ...], timeout: float) -> tuple[int | None, str]:
    """Runs pytest on ``tests`` in ``workdir``; returns (exit code or None on timeout, output)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(workdir) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant and its restore can share an mtime second: never reuse a .pyc
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-x", "-q", *tests]
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")
    return proc.returncode, out.decode(errors="replace")


def run_one(workdir: Path, package: str, m: Mutant, timeout: float, verbose: bool) -> Result:
    start = time.perf_counter()
    path = workdir / m.file
    original = _read(workdir, m.file)
    problem = snippet_problem(original, m)
    if problem:
        return Result(package, m, "ERROR", problem, 0.0)
    try:
        path.write_text(original.replace(m.old, m.new, 1))
        code, output = run_tests(workdir, m.tests, timeout)
    finally:
        path.write_text(original)
    seconds = time.perf_counter() - start
    if verbose or code not in (0, 1):
        tail = "\n".join(output.strip().splitlines()[-15:])
        print(f"--- {package} {m.file}: {m.why}\n{tail}\n---", flush=True)
    if code is None:
        return Result(package, m, "ERROR", f"timeout after {timeout:.0f} s", seconds)
    if code == 0:
        return Result(package, m, "SURVIVED", "", seconds)
    if code in (1, 2):  # 1: a test failed; 2: interrupted, e.g. the mutant broke a test module's import
        return Result(package, m, "killed", _catching_test(output) or f"pytest exit {code}", seconds)
    return Result(package, m, "ERROR", f"pytest exit {code} (tests not found or not collected)", seconds)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), sep, *(fmt(r) for r in rows)])


def report(results: list[Result]) -> str:
    rows = [[r.package, r.mutant.file, r.mutant.why, r.status, r.detail, f"{r.seconds:.1f}"] for r in results]
    return _table(rows, ["package", "file", "why", "result", "caught by", "seconds"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated packages (tests/mutants/<pkg>.py); default all")
    parser.add_argument("--match", default="", help="only the mutants whose file or why contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants and whether each applies; run nothing")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant's tests (default 900)")
    parser.add_argument(
        "--baseline", action="store_true", help="first run every listed test unmutated; stop if any fails"
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once, each in its own copy (default 1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the tail of pytest's output per mutant")
    args = parser.parse_args(argv)
    known = packages()
    args.packages = [p.strip() for p in args.only.split(",") if p.strip()] or known
    unknown = [p for p in args.packages if p not in known]
    if unknown:
        parser.error(f"--only: no mutant list tests/mutants/{unknown[0]}.py (known: {', '.join(known) or 'none'})")
    if args.jobs < 1:
        parser.error(f"--jobs: must be at least 1, got {args.jobs}")
    if args.timeout <= 0:
        parser.error(f"--timeout: must be positive, got {args.timeout}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mutants = [(p, m) for p, m in load(args.packages) if args.match in m.file or args.match in m.why]
    if args.list:
        rows = []
        for package, m in mutants:
            problem = snippet_problem(_read(ROOT, m.file), m)
            rows.append([package, m.file, m.why, problem or "ok", ", ".join(m.tests)])
        print(_table(rows, ["package", "file", "why", "snippet", "tests"]))
        print(f"{len(mutants)} mutants in {len(args.packages)} packages")
        return 1 if any(r[3] != "ok" for r in rows) else 0

    start = time.perf_counter()
    results: list[Result | None] = [None] * len(mutants)
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copies: queue.Queue[Path] = queue.Queue()
        for j in range(min(args.jobs, max(len(mutants), 1))):  # one copy per worker: mutants never share a file
            copy = Path(tmp) / f"repo{j}"
            copy_repo(copy)
            copies.put(copy)
        if args.baseline:
            tests = sorted({t for _, m in mutants for t in m.tests})
            code, output = run_tests(Path(tmp) / "repo0", tuple(tests), args.timeout * max(len(tests), 1))
            if code != 0:
                print("\n".join(output.strip().splitlines()[-20:]))
                print(
                    f"error: the listed tests do not pass on the unmutated code (pytest exit {code}): nothing measured"
                )
                return 1
            print(f"baseline: the {len(tests)} listed tests pass on the unmutated code", flush=True)
        done = iter(range(1, len(mutants) + 1))
        lock = threading.Lock()

        def work(i: int) -> None:
            package, m = mutants[i]
            copy = copies.get()
            try:
                r = run_one(copy, package, m, args.timeout, args.verbose)
            finally:
                copies.put(copy)
            results[i] = r
            with lock:
                n = next(done)
                print(
                    f"[{n}/{len(mutants)}] {r.status:8s} {package:10s} {m.file}: {m.why} ({r.seconds:.1f} s)",
                    flush=True,
                )

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for f in [pool.submit(work, i) for i in range(len(mutants))]:
                f.result()
    total = time.perf_counter() - start
    print()
    results = [r for r in results if r is not None]
    print(report(results))
    counts = {s: sum(r.status == s for r in results) for s in ("killed", "SURVIVED", "ERROR")}
    print(
        f"\n{counts['killed']} killed, {counts['SURVIVED']} survived, {counts['ERROR']} errors "
        f"of {len(results)} mutants in {total:.0f} s"
    )
    return 0 if counts["killed"] == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
