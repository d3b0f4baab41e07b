"""Cutting-plane d* sweeps: one compiled vmapped sweep vs the released notebook's per-subspace loop of jitted steps.

Same model (an MLP 64-256-10 trained on scikit-learn digits), same budget (the estimator's default: bias-corrected
Adam lr 0.1, at most 300 steps, stop at target probability 0.99), same subspaces. The baseline is the released
notebook's structure: for each subspace a Python loop over steps, each step one call of a jitted Adam update, the
stopping test read back on the host each step. Prints optimised subspaces per second side by side, the time of the
full per-class d* sweep (10 classes, with the convergence check), then `RESULT cutting_planes_speedup=<ratio>
target=20`.

    python benchmarks/cutting_planes.py [--loop-subspaces 24]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import app, data
from manifolds import cutting_planes as cp
from manifolds import models


def _train_mlp(x, y, steps=1000):
    params = models.init_mlp(jax.random.key(0), (64, 256, 10))
    opt = optax.adam(1e-3)

    @jax.jit
    def run(params):
        def step(c, t):
            p, s = c
            idx = jax.random.randint(jax.random.fold_in(jax.random.key(1), t), (64,), 0, x.shape[0])

            def loss(p):
                return optax.softmax_cross_entropy_with_integer_labels(models.mlp_apply(p, x[idx]), y[idx]).mean()

            g = jax.grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, opt.init(params)), jnp.arange(steps))[0][0]

    return run(params)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop-subspaces", type=int, default=24, help="subspaces timed in the per-subspace loop")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--starts", type=int, default=4)
    args = parser.parse_args()
    cores = app.use_cores_as_devices()

    tr, te = data.digits("train"), data.digits("test")
    x, xt = tr.x.reshape(len(tr.x), -1), te.x.reshape(len(te.x), -1)
    params = _train_mlp(jnp.asarray(x), jnp.asarray(tr.y))
    acc = float(jnp.mean(jnp.argmax(models.mlp_apply(params, xt), -1) == te.y))
    log_prob = models.LogProb(models.mlp_apply)
    dims = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 48, 64)
    target = 3
    pred = np.argmax(np.asarray(log_prob(params, xt)), 1)
    x0s = xt[(te.y != target) & (pred != target)][: args.starts]
    key = jax.random.key(0)
    budget = cp.DEFAULT

    # --- vmapped: the whole sweep over (d, repeat, start) as one compiled call
    cp.sweep_subspaces(log_prob, x0s, target, dims, args.repeats, key, params=params, budget=budget)  # compile
    t0 = time.perf_counter()
    out = cp.sweep_subspaces(log_prob, x0s, target, dims, args.repeats, key, params=params, budget=budget)
    t_vmap = time.perf_counter() - t0
    n_vmap = out["steps"].size
    rate_vmap = n_vmap / t_vmap

    # --- released structure: one subspace at a time, a Python loop of jitted Adam steps
    spec = {k: jnp.asarray(v) for k, v in cp._spec(cp.as_target(target), 10, budget, None).items()}
    dmax = max(dims)
    opt = optax.adam(budget.lr)

    @jax.jit
    def make_basis(k, d):
        return cp.random_basis(k, d, dmax, x0s.shape[1])

    @jax.jit
    def step(theta, opt_state, x0, basis):
        def loss(th):
            logp = jax.nn.log_softmax(log_prob(params, (x0 + th @ basis)[None])[0])
            loss, score, success = cp._scores(logp, spec["mask"], spec["k"], spec["use_argmax"], spec["level"])
            return loss, (score, success)

        (_, (score, success)), g = jax.value_and_grad(loss, has_aux=True)(theta)
        u, opt_state = opt.update(g, opt_state, theta)
        return optax.apply_updates(theta, u), opt_state, score, success

    keys = cp.subspace_keys(key, dims, range(args.repeats), len(x0s))
    rng = np.random.default_rng(0)
    picks = [
        (int(rng.integers(len(dims))), int(rng.integers(args.repeats)), int(rng.integers(len(x0s))))
        for _ in range(args.loop_subspaces)
    ]

    def run_loop(picks):
        steps_taken = 0
        for i, r, s in picks:
            basis = make_basis(keys[i, r, s], dims[i])
            theta = jnp.zeros((dmax,))
            st = opt.init(theta)
            for _ in range(budget.steps):
                theta, st, p, hit = step(theta, st, x0s[s], basis)
                steps_taken += 1
                if bool(hit) and float(p) >= budget.stop_score:
                    break
        return steps_taken

    run_loop(picks[:1])  # compile
    t0 = time.perf_counter()
    loop_steps = run_loop(picks)
    t_loop = time.perf_counter() - t0
    rate_loop = len(picks) / t_loop
    # The loop's time per subspace depends on how many steps the sampled subspaces take: rescale to the vmapped
    # sweep's mean steps per subspace so both rates describe the same work.
    mean_steps_vmap = float(out["steps"].mean())
    rate_loop_matched = rate_loop * (loop_steps / len(picks)) / mean_steps_vmap

    # --- the full per-class d* sweep (10 classes, convergence rerun included)
    cp.critical_dimension(log_prob, x0s, target, dims, args.repeats, key, params=params)  # compile both buckets
    t0 = time.perf_counter()
    for c in range(10):
        pc = xt[(te.y != c) & (pred != c)][: args.starts]
        cp.critical_dimension(log_prob, pc, c, dims, args.repeats, key, params=params)
    t_full = time.perf_counter() - t0

    load = os.getloadavg()
    print(
        f"model: MLP 64-256-10 on digits, test acc {acc:.3f}; devices: {jax.device_count()} (cores as devices: {cores})"
    )
    print(f"budget: Adam lr {budget.lr}, <= {budget.steps} steps, stop at p >= {budget.stop_score}")
    print(f"{'method':<44}{'subspaces':>10}{'seconds':>10}{'subspaces/s':>14}")
    print(f"{'vmapped sweep (one compiled call)':<44}{n_vmap:>10d}{t_vmap:>10.3f}{rate_vmap:>14.1f}")
    print(f"{'per-subspace loop of jitted steps':<44}{len(picks):>10d}{t_loop:>10.3f}{rate_loop:>14.1f}")
    print(f"{'  same, rescaled to the sweep mean steps':<44}{'':>10}{'':>10}{rate_loop_matched:>14.1f}")
    print(f"mean steps per subspace: sweep {mean_steps_vmap:.1f}, loop sample {loop_steps / len(picks):.1f}")
    print(f"full per-class d* sweep (10 classes x {n_vmap} subspaces + convergence rerun): {t_full:.1f} s")
    print(f"load average while measuring: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared cores)")
    print(f"RESULT cutting_planes_speedup={rate_vmap / rate_loop_matched:.1f} target=20")


if __name__ == "__main__":
    main()
