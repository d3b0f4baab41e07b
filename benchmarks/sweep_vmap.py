"""Throughput of a vmapped sweep vs a sequential loop: a small MLP trained 500 steps on digits, 8 seeds.

    python benchmarks/sweep_vmap.py [--seeds 8] [--steps 500] [--sizes 16x16,32x32,128x64] [--cpu-devices N]

Three ways to run the same 8 trainings (SGD with momentum, minibatches drawn on device):
  step-loop  a Python loop over steps calling a jitted update, one run after another (what most released code does);
  seq        the pure `train(key, hparams)` (whole loop in lax.scan) jitted once and called run after run, on device 0;
  seq-rr     the same compiled run dispatched over all devices, run i on device i mod N, one run per device at a
             time (the strongest sequential baseline: every core busy, no batching);
  vmap       one `common.sweep.sweep` over all runs, sharded over the CPU devices (one per core by default).
RESULT compares vmap with seq-rr; vmap/seq and vmap/step-loop are printed beside it.
Compile time is excluded from both (each is warmed up once) and printed separately. The table covers several
(hidden width x batch) sizes: vmapping pays most where one run is too small to keep the cores busy. RESULT is
runs/second vmapped / runs/second seq-rr for the first size.
"""

import argparse
import os
import sys
import time

if __name__ == "__main__":
    _n = next(
        (a.split("=", 1)[1] for a in sys.argv if a.startswith("--cpu-devices=")),
        str(os.cpu_count() or 1),
    )
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={_n}")

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _baseline import round_robin  # noqa: E402  (benchmarks/_baseline.py)

from common import data, sweep


def make_train(x, y, steps, batch, hidden):
    """Returns (train, step): the pure whole-run function and its single step (for the per-step loop)."""
    n, d = x.shape
    x, y = jnp.asarray(x), jnp.asarray(y)
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0, momentum=0.9)

    def init(key, lr):
        k1, k2 = jax.random.split(key)
        params = {
            "w1": jax.random.normal(k1, (d, hidden)) / jnp.sqrt(d),
            "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden, 10)) / jnp.sqrt(hidden),
            "b2": jnp.zeros(10),
        }
        state = opt.init(params)
        state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
        return params, state

    def loss_fn(p, xb, yb):
        h = jax.nn.gelu(xb @ p["w1"] + p["b1"])
        logits = h @ p["w2"] + p["b2"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def step(carry, i, k_data):
        p, s = carry
        idx = jax.random.randint(jax.random.fold_in(k_data, i), (batch,), 0, n)
        loss, g = jax.value_and_grad(loss_fn)(p, x[idx], y[idx])
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    def accuracy(p):
        return jnp.mean(jnp.argmax(jax.nn.gelu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"], -1) == y)

    def train(key, hp):
        k_init, k_data = jax.random.split(key)
        carry = init(k_init, hp["lr"])
        (params, _), losses = jax.lax.scan(lambda c, i: step(c, i, k_data), carry, jnp.arange(steps))
        return params, {"loss": losses, "train_acc": accuracy(params)}

    def per_step_run(key, lr):
        """The pattern of most released code: a Python loop over steps calling a jitted update."""
        k_init, k_data = jax.random.split(key)
        carry = init(k_init, lr)
        losses = []
        for i in range(steps):
            carry, loss = step_jit(carry, i, k_data)
            losses.append(loss)
        return carry[0], jnp.stack(losses)

    step_jit = jax.jit(step)
    return train, per_step_run


def measure(x, y, seeds, steps, batch, hidden, repeats):
    """Times the sequential loop and the vmapped sweep; returns a dict of timings and the max loss difference."""
    train, per_step_run = make_train(x, y, steps, batch, hidden)
    g = sweep.grid(range(seeds), lr=[0.05])
    keys = g.keys()
    single = jax.jit(train)
    t0 = time.perf_counter()
    jax.block_until_ready(single(keys[0], {"lr": jnp.float32(0.05)}))
    compile_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(sweep.sweep(train, keys, g.hparams))
    compile_vm = time.perf_counter() - t0
    jax.block_until_ready(per_step_run(keys[0], 0.05))
    t0 = time.perf_counter()
    outs_loop = [per_step_run(keys[i], float(g.hparams["lr"][i])) for i in range(g.size)]
    jax.block_until_ready(outs_loop)
    loop = time.perf_counter() - t0
    rr = round_robin(train, [(keys[i], {"lr": jnp.float32(g.hparams["lr"][i])}) for i in range(g.size)])
    rr()  # compiles once per device
    rr_times = []
    seq_times, vm_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        outs_rr = rr()
        rr_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        outs_seq = [single(keys[i], {"lr": jnp.float32(g.hparams["lr"][i])}) for i in range(g.size)]
        jax.block_until_ready(outs_seq)
        seq_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out_vm = jax.block_until_ready(sweep.sweep(train, keys, g.hparams))
        vm_times.append(time.perf_counter() - t0)
    # The two ways compute the same runs.
    diff = max(
        float(np.max(np.abs(np.asarray(out_vm[1]["loss"][i]) - np.asarray(outs_seq[i][1]["loss"]))))
        for i in range(g.size)
    )
    seq, vm, seq_rr = min(seq_times), min(vm_times), min(rr_times)
    for i in range(g.size):
        diff = max(diff, float(np.max(np.abs(np.asarray(outs_rr[i][1]["loss"]) - np.asarray(outs_seq[i][1]["loss"])))))
    for i in range(g.size):
        diff = max(diff, float(np.max(np.abs(np.asarray(outs_loop[i][1]) - np.asarray(outs_seq[i][1]["loss"])))))
    return {
        "loop": loop,
        "runs": g.size,
        "compile_seq": compile_seq,
        "compile_vm": compile_vm,
        "seq": seq,
        "vm": vm,
        "seq_rr": seq_rr,
        "ratio_seq": seq / vm,
        "ratio": seq_rr / vm,
        "acc": float(np.mean(np.asarray(out_vm[1]["train_acc"]))),
        "diff": diff,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--sizes", default="32x32,16x16,128x64", help="hidden x batch, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-devices", type=int, default=None, help="(read before jax starts)")
    args = parser.parse_args()

    ds = data.digits("train")
    x = ds.x.reshape(len(ds), -1)
    print(
        f"devices: {jax.device_count()} x {jax.devices()[0].platform}  cores: {os.cpu_count()}  "
        f"runs: {args.seeds} seeds  steps: {args.steps}  data: {ds.source}"
    )
    header = (
        f"{'hidden x batch':<16}{'compile seq s':>14}{'compile vmap s':>15}{'step-loop runs/s':>18}"
        f"{'seq runs/s':>12}{'seq-rr runs/s':>15}{'vmap runs/s':>12}{'vmap/seq-rr':>13}{'vmap/seq':>10}"
        f"{'vmap/step-loop':>16}{'acc':>7}{'max |dloss|':>13}"
    )
    print(header)
    first = None
    for size in args.sizes.split(","):
        hidden, batch = (int(v) for v in size.lower().split("x"))
        r = measure(x, ds.y, args.seeds, args.steps, batch, hidden, args.repeats)
        first = first or r
        print(
            f"{size:<16}{r['compile_seq']:>14.2f}{r['compile_vm']:>15.2f}{r['runs'] / r['loop']:>18.1f}"
            f"{r['runs'] / r['seq']:>12.1f}{r['runs'] / r['seq_rr']:>15.1f}{r['runs'] / r['vm']:>12.1f}"
            f"{r['ratio']:>13.2f}{r['ratio_seq']:>10.2f}{r['loop'] / r['vm']:>16.1f}"
            f"{r['acc']:>7.3f}"
            f"{r['diff']:>13.2e}"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.2f}")
    print(f"RESULT sweep_vmap_throughput_ratio={first['ratio']:.2f} target=4")


if __name__ == "__main__":
    main()
