"""Throughput of IMP seeds: 8 seeds of the default IMP run as one vmapped sweep vs the same runs one after another.

    python benchmarks/imp_seeds.py [--levels 12] [--steps 600] [--seeds 8] [--cpu-devices N]

The run is the package's pure `pruning.imp.train` (every level of IMP with rewinding in one compiled function: the
default config's IMP run, a CNN 8-16-16 on 500 digits, batch 32, 20% per level, rewind step 50). Vmapped:
`common.sweep.vmapped` over the seeds, sharded over the CPU devices (one per core by default). Sequential: the same
compiled run dispatched over all devices, run i on device i mod N, one per device at a time (seq-rr, the strongest
sequential baseline), and every run on device 0 (seq). Compile time is excluded (each side warmed up once) and
printed separately. RESULT is seconds seq-rr / seconds vmapped.
"""

import argparse
import os
import sys
import time

if __name__ == "__main__":
    _n = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--cpu-devices=")), str(os.cpu_count() or 1))
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={_n}")

import jax
import jax.numpy as jnp
import numpy as np
from _baseline import round_robin, seq_device0

from common import sweep
from pruning import experiment, imp
from pruning.configs import default


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--cpu-devices", type=int, default=None, help="(read before JAX starts)")
    args = p.parse_args()
    c = default.get_config()
    if args.steps:
        c.train.steps = args.steps
        c.train.chunk_steps = args.steps
    arrays, _, n_cls = experiment.load_data(c)
    setup = experiment.make_setup(c, arrays[0].shape[1:], n_cls, num_levels=args.levels or c.imp.num_levels)
    runs = imp.make_runs(
        range(args.seeds),
        ["imp"],
        lr=c.train.lr,
        weight_decay=c.train.weight_decay,
        fraction=c.imp.fraction,
        rewind_step=c.train.rewind_step,
    )
    hp = imp.hparams(runs)
    keys = jax.vmap(jax.random.key)(jnp.arange(args.seeds, dtype=jnp.uint32))

    def run(key, h, d):
        return imp.train(setup, key, h, d)["hist"]["test_error"]

    vm = sweep.vmapped(run, in_axes=(0, 0, None))
    t = time.perf_counter()
    jax.block_until_ready(vm(keys, hp, arrays))
    compile_vm = time.perf_counter() - t
    t = time.perf_counter()
    err_vm = np.asarray(jax.block_until_ready(vm(keys, hp, arrays)))
    t_vm = time.perf_counter() - t

    dev = tuple(jnp.asarray(a) for a in arrays)
    rows = [(keys[i], {k: jnp.asarray(v[i]) for k, v in hp.items()}, dev) for i in range(args.seeds)]
    rr = round_robin(run, rows)
    t = time.perf_counter()
    rr()
    compile_rr = time.perf_counter() - t
    t = time.perf_counter()
    errs = rr()
    t_rr = time.perf_counter() - t
    s0 = seq_device0(run, rows)
    s0()
    t = time.perf_counter()
    s0()
    t_seq = time.perf_counter() - t
    same = int(np.sum(np.all(np.abs(err_vm - np.asarray(errs)) < 0.01, axis=1)))
    print(
        f"devices: {jax.device_count()} x {jax.devices()[0].platform}; {args.seeds} seeds x {setup.num_levels} levels"
        f" x {setup.steps} steps"
    )
    print(
        f"{'seq s':>8} {'seq-rr s':>9} {'vmap s':>8} {'seq-rr/vmap':>12} {'seq/vmap':>9} {'compile rr/vmap s':>18} "
        f"{'seeds agreeing':>15}"
    )
    print(
        f"{t_seq:>8.2f} {t_rr:>9.2f} {t_vm:>8.2f} {t_rr / t_vm:>12.2f} {t_seq / t_vm:>9.2f} "
        f"{compile_rr:>8.1f}/{compile_vm:<9.1f} {same:>12d}/{args.seeds}"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"RESULT imp_seeds_vmap_over_sequential={t_rr / t_vm:.2f} target=3.0")


if __name__ == "__main__":
    main()
