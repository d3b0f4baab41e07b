"""A tiny experiment for testing common.app and common.checkpoint end to end (Adam on noisy linear regression)."""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import app, checkpoint, metrics

# Outputs beyond the standard files (removed by overwrite): one note per run, named after its learning rate.
OUTPUTS = ("note_*.txt",)


def validate(config):
    if config.lr <= 0:
        raise app.ConfigError("lr", f"must be positive, got {config.lr}")
    if config.chunk_steps <= 0 or config.num_steps % config.chunk_steps:
        raise app.ConfigError("num_steps", "must be a positive multiple of chunk_steps")


def run(config, workdir):
    if config.input_file:
        if not os.path.exists(config.input_file):
            raise app.UserError(f"input_file {config.input_file}: no such file")
    key = jax.random.key(config.seed)
    k_init, k_true, k_data = jax.random.split(key, 3)
    dim = int(config.get("param_dim", 8))
    w_true = jax.random.normal(k_true, (dim,))
    opt = optax.adam(config.lr)
    params = 0.1 * jax.random.normal(k_init, (dim,))
    init = {"params": params, "opt": opt.init(params), "key": k_data}
    nan_step = int(config.get("nan_step", -1))

    def loss_fn(p, x, y):
        return jnp.mean((x @ p - y) ** 2)

    @jax.jit
    def chunk(state, start):
        def step(s, t):
            k = jax.random.fold_in(s["key"], t)
            kx, kn = jax.random.split(k)
            x = jax.random.normal(kx, (16, dim))
            x = jnp.where((nan_step >= 0) & (t >= nan_step), jnp.nan, x)
            y = x @ w_true + 0.1 * jax.random.normal(kn, (16,))
            loss, g = jax.value_and_grad(loss_fn)(s["params"], x, y)
            upd, o = opt.update(g, s["opt"], s["params"])
            return {
                "params": optax.apply_updates(s["params"], upd),
                "opt": o,
                "key": s["key"],
            }, loss

        state, losses, bad = checkpoint.guarded_scan(step, state, start, config.chunk_steps)
        return state, {"loss": losses, checkpoint.NONFINITE: bad}

    if app.is_writer():
        with open(os.path.join(workdir, f"note_{config.lr}.txt"), "w") as f:
            f.write("a declared output\n")
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), save_every=config.chunk_steps, keep=2)
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:

        def on_chunk(step, m):
            losses = np.asarray(m["loss"])
            metrics.check_finite(losses, step=step)
            writer.write(step, loss=float(losses[-1]))
            time.sleep(config.sleep)

        state = checkpoint.run_chunked(
            chunk,
            init,
            num_steps=config.num_steps,
            chunk_steps=config.chunk_steps,
            checkpointer=ckpt,
            on_chunk=on_chunk,
            metric_writer=writer,
        )
    ckpt.close()
    return {
        "params": np.asarray(state["params"]),
        "error": float(jnp.sum((state["params"] - w_true) ** 2)),
    }
