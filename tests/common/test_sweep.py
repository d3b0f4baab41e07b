"""common.sweep: run i of a sweep equals the same run alone; sharded over runs; no recompilation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from common import sweep


def make_train():
    chex.clear_trace_counter()  # the counter is global across tests

    @chex.assert_max_traces(n=1)
    def train(key, hp):
        """Adam (lr traced through inject_hyperparams) on a random least-squares problem drawn from `key`."""
        kx, kw = jax.random.split(key)
        x = jax.random.normal(kx, (32, 5))
        y = x @ jax.random.normal(kw, (5,)) + hp["noise"] * jnp.sin(x[:, 0])
        opt = optax.inject_hyperparams(optax.adam)(learning_rate=hp["lr"])
        w = jnp.zeros(5)

        def step(carry, _):
            w, s = carry
            loss, g = jax.value_and_grad(lambda w: jnp.mean((x @ w - y) ** 2))(w)
            u, s = opt.update(g, s, w)
            return (optax.apply_updates(w, u), s), loss

        (w, _), losses = jax.lax.scan(step, (w, opt.init(w)), None, length=50)
        return w, losses

    return train


def test_devices():
    assert jax.device_count() == 4, "conftest should give 4 fake CPU devices"


def test_grid_is_cartesian_product():
    g = sweep.grid([0, 1], lr=[0.1, 0.2, 0.3], noise=[0.0, 1.0])
    assert g.size == 12
    rows = g.rows()
    assert len({(r["seed"], round(r["lr"], 3), r["noise"]) for r in rows}) == 12
    i = g.index(seed=1, lr=0.2, noise=1.0)
    assert rows[i]["seed"] == 1 and rows[i]["noise"] == 1.0
    assert g.keys().shape == (12,)
    with pytest.raises(ValueError):
        sweep.grid([0], lr=[])


@pytest.mark.parametrize("seeds", [[0, 1], [0, 1, 2]])  # 8 runs (even) and 12 runs; and 6 below
def test_run_i_of_sweep_equals_run_alone(seeds):
    train = make_train()
    g = sweep.grid(seeds, lr=[0.01, 0.05], noise=[0.0, 0.5])
    w, losses = sweep.sweep(train, g.keys(), g.hparams)
    assert w.shape == (g.size, 5) and losses.shape == (g.size, 50)
    alone = jax.jit(train.__wrapped__ if hasattr(train, "__wrapped__") else train)
    for i in range(g.size):
        wi, li = alone(g.keys()[i], {k: jnp.asarray(v[i]) for k, v in g.hparams.items()})
        np.testing.assert_allclose(w[i], wi, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(losses[i], li, rtol=1e-5, atol=1e-6)


def test_output_sharded_over_runs_and_no_recompilation():
    train = make_train()
    g = sweep.grid([0, 1, 2, 3], lr=[0.01, 0.05], noise=[0.5])  # 8 runs on 4 devices
    w, losses = sweep.vmapped(train)(g.keys(), g.hparams)
    expected = NamedSharding(sweep.runs_mesh(), P(sweep.RUNS))
    assert w.sharding.is_equivalent_to(expected, w.ndim)
    assert len(w.sharding.device_set) == 4
    assert {s.data.shape[0] for s in w.addressable_shards} == {2}
    # Same shapes again, with different values: the traced function is not traced a second time
    # (chex.assert_max_traces(n=1) on train raises if it were).
    g2 = sweep.grid([4, 5, 6, 7], lr=[0.02, 0.03], noise=[0.1])
    w2, _ = sweep.sweep(train, g2.keys(), g2.hparams)
    assert not np.allclose(np.asarray(w), w2)


@pytest.mark.parametrize(
    ("n_runs", "n_dev", "total"),
    [(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4), (5, 3, 6), (6, 3, 6), (7, 4, 8), (8, 4, 8), (9, 3, 9), (10, 4, 12)],
)
def test_devices_used_and_padding(n_runs, n_dev, total):
    """min(devices, runs) devices' worth of work per device, and never more padding than that work minus one."""
    assert len(sweep.runs_mesh(n_runs).devices.flat) == n_dev
    assert sweep.padded_size(n_runs) == total
    per_device = -(-n_runs // min(4, n_runs))
    assert total // n_dev == per_device and total - n_runs < per_device
    np.testing.assert_array_equal(sweep.mask(n_runs), np.arange(total) < n_runs)


def test_padding_non_multiple_and_shared_arguments():
    def f(key, scale, table):
        return scale * table + jax.random.uniform(key)

    g = sweep.grid([0, 1, 2, 3, 4, 5, 6], s=[1.0])  # 7 runs -> padded to 8 on 4 devices, kept padded on device
    table = np.arange(3.0)
    out = sweep.vmapped(f, in_axes=(0, 0, None))(g.keys(), g.hparams["s"], table)
    assert out.shape == (8, 3) and out.sharding.spec == P(sweep.RUNS)
    host = sweep.to_numpy(out, g.size)
    assert host.shape == (7, 3)
    for i in range(7):
        np.testing.assert_allclose(host[i], f(g.keys()[i], g.hparams["s"][i], table), rtol=1e-6)
    np.testing.assert_allclose(host[0], np.asarray(out)[7])  # the padding repeats run 0
    with pytest.raises(ValueError, match="same leading runs axis"):
        sweep.vmapped(f, in_axes=(0, 0, None))(g.keys(), np.ones(5), table)


@pytest.mark.parametrize("map_batch", [1, 2, 3])
def test_map_batch_loops_over_a_devices_runs_with_the_same_results(map_batch):
    """map_batch = k: each device's runs go through lax.map k at a time; every run equals the same run alone
    (10 runs on 4 devices: 3 runs per device, so k = 2 leaves a remainder), outputs sharded like vmap's, shared
    arguments and the padding handled, and a second call does not retrace."""
    train = make_train()
    if 3 % map_batch:  # lax.map traces the remainder batch separately: two traces by design
        train = train.__wrapped__
    g = sweep.grid([0, 1, 2, 3, 4], lr=[0.01, 0.05], noise=[0.5])  # 10 runs -> 12 on 4 devices
    fn = sweep.vmapped(train, map_batch=map_batch)
    w, losses = fn(g.keys(), g.hparams)
    assert w.shape == (12, 5) and w.sharding.spec == P(sweep.RUNS)
    host_w, host_l = sweep.to_numpy((w, losses), g.size)
    alone = jax.jit(train.__wrapped__ if hasattr(train, "__wrapped__") else train)
    for i in range(g.size):
        wi, li = alone(g.keys()[i], {k: jnp.asarray(v[i]) for k, v in g.hparams.items()})
        np.testing.assert_allclose(host_w[i], wi, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(host_l[i], li, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(w)[10:], np.asarray(w)[[0, 0]], rtol=1e-6)  # padding repeats run 0

    def f(key, scale, table):  # a shared (replicated) argument beside the mapped ones
        return scale * table + jax.random.uniform(key)

    table = np.arange(3.0)
    mapped_f = sweep.vmapped(f, in_axes=(0, 0, None), map_batch=map_batch)
    out = sweep.to_numpy(mapped_f(g.keys(), g.hparams["lr"], table), g.size)
    for i in range(g.size):
        np.testing.assert_allclose(out[i], f(g.keys()[i], g.hparams["lr"][i], table), rtol=1e-6)
    g2 = sweep.grid([5, 6, 7, 8, 9], lr=[0.02, 0.03], noise=[0.1])
    fn(g2.keys(), g2.hparams)  # same shapes: no second trace (assert_max_traces on train)


def test_map_batch_rejects_negative():
    with pytest.raises(ValueError, match="map_batch"):
        sweep.vmapped(lambda x: x, map_batch=-1)


def _chunked_problem():
    """A chunked Adam loop on per-run least squares: init(key, hp) -> state; chunk(state, hp, start) -> state, m."""
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=0.05)

    def init(key, hp):
        kx, kw = jax.random.split(key)
        x = jax.random.normal(kx, (64, 16))
        y = x @ jax.random.normal(kw, (16,)) * hp["scale"]
        w = jnp.zeros(16)
        return {"w": w, "opt": opt.init(w), "x": x, "y": y, "key": key}

    def chunk(state, hp, start):
        def step(st, t):
            loss, g = jax.value_and_grad(lambda w: jnp.mean((st["x"] @ w - st["y"]) ** 2))(st["w"])
            u, o = opt.update(g, st["opt"], st["w"])
            return {**st, "w": optax.apply_updates(st["w"], u), "opt": o}, loss

        state, losses = jax.lax.scan(step, state, start + jnp.arange(5))
        return state, {"loss": losses[-1]}

    return init, chunk


def test_chunked_sweep_keeps_state_on_device_only_metrics_reach_the_host():
    """Three chunks under transfer_guard('disallow'): the state is passed through, donated, never copied to the host."""
    init, chunk = _chunked_problem()
    g = sweep.grid([0, 1, 2, 3, 4, 5, 6], scale=[1.0])  # 7 runs: padded to 8 on 4 devices
    hp = sweep.put(g.hparams, g.size)
    state = sweep.vmapped(init)(g.keys(), hp)
    step = sweep.vmapped(chunk, in_axes=(0, 0, None), donate_argnums=(0,))
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state) if x.dtype != state["key"].dtype)
    losses = []
    for start in (0, 5, 10):
        with jax.transfer_guard("disallow"):
            old = state
            state, m = step(state, hp, np.int32(start))
        assert sweep.last_call_host_bytes == 4  # the step number; the state and hparams stayed on the devices
        assert all(x.is_deleted() for x in jax.tree.leaves(old["w"]))  # donated
        assert state["w"].shape[0] == 8 and state["w"].sharding.spec == P(sweep.RUNS)
        losses.append(sweep.to_numpy(m["loss"], g.size))  # the only device-to-host copy
    assert state_bytes > 7 * 64 * 16 * 4
    # The same 15 steps for run 3 alone.
    k3 = g.keys()[3]
    st = jax.jit(init)(k3, {"scale": jnp.float32(1.0)})
    for start in (0, 5, 10):
        st, m3 = jax.jit(chunk)(st, {"scale": jnp.float32(1.0)}, jnp.int32(start))
    np.testing.assert_allclose(sweep.to_numpy(state["w"], g.size)[3], st["w"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses[-1][3], m3["loss"], rtol=1e-5)


def test_to_numpy():
    out = sweep.to_numpy({"a": jnp.ones((4, 2)), "k": jax.random.split(jax.random.key(0), 4)}, 3)
    assert isinstance(out["a"], np.ndarray) and out["a"].shape == (3, 2)
    assert out["k"].dtype == np.uint32 and out["k"].shape[0] == 3


def test_sweep_across_two_processes_joined_by_jax_distributed(tmp_path):
    """Two CPU processes x 2 devices after jax.distributed.initialize(): same numbers as one process."""
    import os
    import socket
    import subprocess
    import sys

    from tests.common import multihost_sweep

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = str(tmp_path / "out.npy")
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "tests.common.multihost_sweep"]
    procs = [
        subprocess.Popen(
            [*cmd, str(i), "2", str(port), out],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        log, _ = p.communicate(timeout=180)
        assert p.returncode == 0, log[-2000:]
    got = np.load(out)
    g = sweep.grid([0, 1, 2], lr=[0.1, 0.2], target=[1.0])
    for i in range(g.size):
        w, losses = jax.jit(multihost_sweep.train)(g.keys()[i], {k: v[i] for k, v in g.hparams.items()})
        np.testing.assert_allclose(got[i], np.concatenate([w, losses]), rtol=1e-5)
