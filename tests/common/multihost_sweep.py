"""Runs a sweep in one of several CPU processes joined by jax.distributed (used by test_sweep.py).

python -m tests.common.multihost_sweep <process_id> <num_processes> <port> <out.npy>
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np


def train(key, hp):
    w = jax.random.normal(key, (3,))

    def step(w, _):
        return w - hp["lr"] * 2.0 * (w - hp["target"]), jnp.sum(w**2)

    return jax.lax.scan(step, w, None, length=20)


def main():
    pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)
    from common import sweep

    g = sweep.grid([0, 1, 2], lr=[0.1, 0.2], target=[1.0])  # 6 runs over 2 x 2 devices: padded to 8
    w, losses = sweep.sweep(train, g.keys(), g.hparams)
    w, losses = sweep.to_numpy((w, losses))
    assert jax.device_count() == 2 * nproc, jax.devices()
    if pid == 0:
        np.save(out, np.concatenate([w, losses], axis=1))


if __name__ == "__main__":
    main()
