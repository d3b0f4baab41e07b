"""What JAX's persistent compilation cache buys a researcher: each package's `:smoke` run from an empty cache, then
the same run again (a fresh workdir, so nothing but the compiled programs is reused).

    .venv/bin/python benchmarks/compile_cache.py [--only icl,manifolds | --only all]

Prints the wall and CPU time of both runs per package and ends with `RESULT compile_cache_speedup_<pkg>=<first /
second wall time>` lines. Measure on a quiet machine: under load the wall times are upper bounds (the load average
is printed before each run).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common import app, reproduce  # noqa: E402


def _run(pkg: str, workdir: str, cache: str) -> tuple[float, float]:
    env = dict(os.environ, **{app.CACHE_ENV: cache})
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    cmd = [sys.executable, "-m", f"{pkg}.main", f"--config={pkg}/configs/default.py:smoke", f"--workdir={workdir}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{pkg}: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="icl,manifolds", help="comma-separated packages, or 'all'")
    args = parser.parse_args()
    pkgs = list(reproduce.PACKAGES) if args.only == "all" else [p for p in args.only.split(",") if p]
    print(f"{'package':<12} {'first wall':>10} {'second wall':>11} {'first CPU':>10} {'second CPU':>10}  load")
    results = {}
    for pkg in pkgs:
        with tempfile.TemporaryDirectory() as tmp:
            cache = os.path.join(tmp, "cache")
            load = os.getloadavg()[0]
            w1, c1 = _run(pkg, os.path.join(tmp, "first"), cache)
            w2, c2 = _run(pkg, os.path.join(tmp, "second"), cache)
            entries = len(os.listdir(cache)) if os.path.isdir(cache) else 0
        results[pkg] = w1 / w2
        print(f"{pkg:<12} {w1:>9.1f}s {w2:>10.1f}s {c1:>9.1f}s {c2:>9.1f}s  {load:.1f}  ({entries} cached programs)")
    for pkg, ratio in results.items():
        print(f"RESULT compile_cache_speedup_{pkg}={ratio:.2f}")


if __name__ == "__main__":
    main()
