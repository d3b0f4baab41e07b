"""The strongest sequential baseline for a sweep benchmark: the same compiled run, one run per device at a time.

`round_robin(fn, per_run_args)` jits `fn` once (one executable per device), commits run i's arguments to device
i mod N, and returns a callable that dispatches every run asynchronously and waits for all of them: each device
works through its share of the runs one after another while the other devices do theirs. This is what a user
would write instead of a vmapped sweep on a multi-device host; `seq_device0` (every run on device 0, one after
another) is the weaker baseline the older benchmarks reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax


def round_robin(fn: Callable, per_run_args: Sequence[tuple]) -> Callable[[], list[Any]]:
    """A callable running `fn(*per_run_args[i])` for every i, run i on device i mod N, all dispatched at once."""
    devices = jax.local_devices()
    jitted = jax.jit(fn)
    placed = [jax.device_put(args, devices[i % len(devices)]) for i, args in enumerate(per_run_args)]

    def go() -> list[Any]:
        return jax.block_until_ready([jitted(*args) for args in placed])

    return go


def seq_device0(fn: Callable, per_run_args: Sequence[tuple]) -> Callable[[], list[Any]]:
    """A callable running `fn(*per_run_args[i])` for every i on device 0, each waited for before the next."""
    jitted = jax.jit(fn)
    placed = [jax.device_put(args, jax.local_devices()[0]) for args in per_run_args]

    def go() -> list[Any]:
        return [jax.block_until_ready(jitted(*args)) for args in placed]

    return go
