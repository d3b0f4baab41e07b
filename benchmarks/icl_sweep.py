"""icl: is the M-sweep faster as one jit(vmap(train)) than as separate runs? And how close is training to peak?

    python benchmarks/icl_sweep.py [--steps=300] [--cpu-devices=N]

(i)  8 values of M (2^1 ... 2^7 and inf) x 2 seeds of the default model and batch (icl/configs/default.py):
     one compiled sweep through common.sweep, sharded over one XLA CPU device per core and with the default's
     `sweep.map_batch` (each device loops over its runs; as `python -m icl.main` does; the all-vectorised
     map_batch = 0 form is timed beside it), vs 16 sequential runs of one jit(train) (compiled once and reused) on
     device 0, and vs the same compiled run dispatched over all devices, one run per device at a time (seq-rr, the
     strongest baseline).
     Ratio (i) is the steady-state throughput ratio against seq-rr (run-steps per second, each program's second
     call); the end-to-end ratio with compilation included is printed beside it, and both sides' matmul GFLOP/s.
(ii) the default config's training FLOP rate (analytic matmul FLOPs of its vmapped sweep) against the machine's
     measured float32 matmul peak (a 2048^3 matmul), and how close a single sequential run already is to one
     core's share of that peak (which bounds ratio (i) by about the core count).
The last line is `RESULT icl_sweep_speedup=<ratio (i)> target=4`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

if __name__ == "__main__":  # one XLA CPU device per core (must be set before jax starts its backend)
    _n = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--cpu-devices=")), str(os.cpu_count() or 1))
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={_n}")

import jax
import jax.numpy as jnp
import numpy as np
from _baseline import round_robin

from common import sweep
from icl import experiment, train, transformer
from icl.configs import default


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    return out, time.perf_counter() - t


def matmul_peak(n: int = 2048, reps: int = 10) -> float:
    """Measured float32 matmul rate in FLOP/s (best of `reps`)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = min(_timed(f, a)[1] for _ in range(reps))
    return 2.0 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cpu-devices", type=int, default=os.cpu_count() or 1, help="XLA CPU devices (set above)")
    args = parser.parse_args()
    c = default.get_config()
    b = c.sweep.batch_sizes[0]
    tcfg = experiment.train_config(
        c, c.task.dim, c.task.num_points, c.task.noise_var, b, c.model.num_layers, c.model.width
    )
    # no in-training evaluation here: only the training steps are compared
    tcfg = train.TrainConfig(**{**tcfg.__dict__, "num_steps": args.steps, "max_tasks": 2**7, "eval_every": 0})
    g = sweep.grid([0, 1], num_tasks=[float(2**a) for a in range(1, 8)] + [math.inf], lr=[1e-3])
    fn = train.make_train(tcfg)
    keys = g.keys()
    print(
        f"jax {jax.__version__}, {jax.device_count()} device(s): {jax.devices()[0].device_kind}; "
        f"{g.size} runs x {args.steps} steps, batch {b}"
    )

    # (i) one compiled sweep as the default runs it (each device loops over its runs, sweep.map_batch): first call
    # compiles, second call is steady state; beside it every run of a device vectorised (map_batch = 0)
    mb = int(c.sweep.get("map_batch", 0))
    as_default = sweep.vmapped(fn, map_batch=mb)
    _, t_vmap_first = _timed(as_default, keys, g.hparams)
    _, t_vmap = _timed(as_default, keys, g.hparams)
    all_vectorised = sweep.vmapped(fn, map_batch=0)
    _timed(all_vectorised, keys, g.hparams)
    _, t_vec = _timed(all_vectorised, keys, g.hparams)

    # sequential: one jit(train) reused for all 16 runs
    alone = jax.jit(fn)
    hps = [{k: jnp.asarray(v[r]) for k, v in g.hparams.items()} for r in range(g.size)]
    t_seq_first = 0.0
    t_seq = 0.0
    for r in range(g.size):
        _, dt = _timed(alone, keys[r], hps[r])
        t_seq_first += dt
    for r in range(g.size):
        _, dt = _timed(alone, keys[r], hps[r])
        t_seq += dt

    # the strongest sequential baseline: the same compiled run over all devices, one run per device at a time
    rr = round_robin(fn, [(keys[r], hps[r]) for r in range(g.size)])
    rr()  # compiles once per device
    _, t_rr = _timed(rr)

    e2e = t_seq_first / t_vmap_first
    steady = t_rr / t_vmap
    print(f"{'':28s}{'vmapped':>12s}{'sequential':>12s}{'ratio':>8s}")
    print(f"{'end to end (with compile) s':28s}{t_vmap_first:12.2f}{t_seq_first:12.2f}{e2e:8.2f}")
    print(f"{'steady state s':28s}{t_vmap:12.2f}{t_seq:12.2f}{t_seq / t_vmap:8.2f}")
    print(f"{'steady state, seq-rr s':28s}{t_vmap:12.2f}{t_rr:12.2f}{steady:8.2f}")
    print(
        f"the sweep with map_batch={mb} (the default) {t_vmap:.2f} s vs every run of a device vectorised "
        f"(map_batch=0) {t_vec:.2f} s: {t_vec / t_vmap:.2f}x; map_batch=0 vs seq-rr {t_rr / t_vec:.2f}"
    )
    print(f"{'run-steps per second':28s}{g.size * args.steps / t_vmap:12.0f}{g.size * args.steps / t_seq:12.0f}")
    run_flops = transformer.train_flops_per_step(tcfg.model, b) * g.size * args.steps
    print(f"{'GFLOP/s (matmuls)':28s}{run_flops / t_vmap / 1e9:12.1f}{run_flops / t_seq / 1e9:12.1f}")

    # (ii) FLOP utilisation of the default config's sweep (steady state of one chunk)
    full = experiment.make_grid(c)
    dcfg = experiment.train_config(
        c, c.task.dim, c.task.num_points, c.task.noise_var, b, c.model.num_layers, c.model.width
    )
    dcfg = train.TrainConfig(**{**dcfg.__dict__, "num_steps": args.steps, "eval_every": 0})
    hp = sweep.put({k: full.hparams[k] for k in ("num_tasks", "lr", "weight_decay")}, full.size)
    state = sweep.vmapped(lambda k, h: train.init_state(k, h, dcfg))(full.keys(), hp)
    chunk = sweep.vmapped(train.make_chunk(dcfg, args.steps), in_axes=(0, 0, None), donate_argnums=(0,), map_batch=mb)
    state_bytes = sum(int(np.prod(x.shape)) * 4 for x in jax.tree.leaves(state))
    (state, _), _ = _timed(chunk, state, hp, np.int32(0))  # compiles
    (state, m), t_chunk = _timed(chunk, state, hp, np.int32(args.steps))
    moved = sweep.last_call_host_bytes
    metric_bytes = sum(x.nbytes for x in jax.tree.leaves(sweep.to_numpy(m, full.size)))
    print(
        f"host transfer per chunk ({full.size} runs): {moved} B in + {metric_bytes} B of metrics out; a host round "
        f"trip of the state (as when every call copied its inputs through numpy) would be 2 x {state_bytes} B"
    )
    flops = transformer.train_flops_per_step(dcfg.model, b) * full.size * args.steps
    rate = flops / t_chunk
    peak = matmul_peak()
    print(
        f"default sweep: {full.size} runs x {args.steps} steps in {t_chunk:.2f}s = {rate / 1e9:.2f} GFLOP/s "
        f"(analytic matmul FLOPs); matmul peak {peak / 1e9:.2f} GFLOP/s; utilisation {100 * rate / peak:.1f}%"
    )
    # Ratio (i) = cores x (the sweep's share of the machine's peak) / (a sequential run's share of one core's peak):
    # vmapping gains beyond the core count only if batching the runs makes each op more efficient.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"sequential runs already compute at {run_flops / t_seq / 1e9:.1f} GFLOP/s = "
        f"{100 * (run_flops / t_seq) / (peak / cores):.0f}% of one core's share of the matmul peak "
        f"({peak / cores / 1e9:.1f} GFLOP/s; {cores} cores)"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"RESULT icl_sweep_speedup={steady:.2f} target=4")


if __name__ == "__main__":
    main()
