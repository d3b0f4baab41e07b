"""The cutting-plane estimator's inputs, checked before any compilation: one-line errors naming the argument.

Everything a user hands `cutting_planes.critical_dimension` goes through here: the model (`log_prob_fn` must be a
JAX function returning log-probabilities or logits, not probabilities), the start points (finite, [S, D], inside
`bounds`), the dimensions (integers in [1, D]), the key (a JAX PRNG key, not an integer) and the target. Each
failure raises `EstimatorInputError` whose message starts with the argument's name.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class EstimatorInputError(ValueError):
    """Bad input to the estimator; the message starts with the name of the argument at fault."""


@dataclasses.dataclass(frozen=True)
class Target:
    """What the subspace coordinates are optimised to reach.

    classes: one class (its class manifold) or k ≥ 2 classes (their k-class boundary: cross-entropy to the
      uniform 1/k distribution over them).
    threshold: None for a single class means "the class is the argmax" (the class region: invariant to rescaling
      the logits); a number p means "p_class ≥ p" (a high-certainty class manifold). For a boundary the score is
      k · min over the k classes of their probability (1 exactly at the uniform 1/k point) and a subspace succeeds
      when it reaches `threshold` (default 0.5).
    """

    classes: tuple[int, ...]
    threshold: float | None = None

    @property
    def k(self) -> int:
        return len(self.classes)

    @property
    def level(self) -> float:
        """The score level a subspace must reach (0.5 for the argmax criterion, the reference of the prob. fit)."""
        return 0.5 if self.threshold is None else float(self.threshold)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def as_target(target: Any) -> Target:
    """A Target from a class index, a sequence of classes (a boundary) or a Target."""
    if isinstance(target, Target):
        t = target
    elif _is_int(target):
        t = Target((int(target),))
    elif isinstance(target, (tuple, list, np.ndarray)):
        if not all(_is_int(c) for c in np.asarray(target, object).ravel()):
            raise EstimatorInputError(f"target: classes must be integers, got {target!r}")
        t = Target(tuple(int(c) for c in target))
    else:
        raise EstimatorInputError(f"target: must be a class, a sequence of classes or a Target, got {target!r}")
    if t.k == 0:
        raise EstimatorInputError("target: the set of target classes is empty")
    if len(set(t.classes)) != t.k:
        raise EstimatorInputError(f"target: repeated classes in {t.classes}")
    if t.threshold is not None and not (0.0 < float(t.threshold) < 1.0):
        raise EstimatorInputError(f"target: threshold must be in (0, 1), got {t.threshold!r}")
    return t


def check_key(key: Any) -> jax.Array:
    """A typed PRNG key from `key` (a `jax.random.key` or a raw uint32 [2] `PRNGKey`); an integer is refused."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise EstimatorInputError(
        f"key: must be a JAX PRNG key such as jax.random.key(0), got {type(key).__name__} {key!r:.60}"
    )


def check_dims(dims: Any, dim: int) -> list[int]:
    """Sorted distinct integer dimensions in [1, D]; non-integers (2.5, True) and out-of-range values are refused."""
    try:
        values = list(dims)
    except TypeError:
        raise EstimatorInputError(f"dims: must be a sequence of integers, got {dims!r}") from None
    if not values:
        raise EstimatorInputError("dims: is empty")
    bad = [d for d in values if not _is_int(d)]
    if bad:
        raise EstimatorInputError(f"dims: must be integers, got {bad[0]!r} in {tuple(values)}")
    if any(d < 1 or d > dim for d in values):
        raise EstimatorInputError(f"dims: must lie in [1, D={dim}] (the input dimension), got {tuple(values)}")
    return sorted({int(d) for d in values})


def check_x0s(x0s: Any, bounds: tuple[float, float] | None) -> np.ndarray:
    """Start points as float32 [S, D]: finite, and inside `bounds` when given (never clipped silently)."""
    try:
        x = np.asarray(x0s, np.float32)
    except (TypeError, ValueError) as e:
        raise EstimatorInputError(f"x0s: must be an array of start points [S, D]: {e}") from None
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise EstimatorInputError(f"x0s: must be start points [S, D] with S, D >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise EstimatorInputError("x0s: holds non-finite values")
    if bounds is not None:
        lo, hi = bounds
        out = np.flatnonzero(np.any((x < lo - 1e-6) | (x > hi + 1e-6), axis=1))
        if out.size:
            raise EstimatorInputError(
                f"x0s: {out.size} of {len(x)} start points lie outside bounds={tuple(bounds)} (first: index "
                f"{out[0]}, range [{x[out[0]].min():.3g}, {x[out[0]].max():.3g}]); start inside the box or pass "
                "bounds=None"
            )
    return x


def check_bounds(bounds: Any) -> tuple[float, float] | None:
    if bounds is None:
        return None
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise EstimatorInputError(f"bounds: must be None or (lo, hi), got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise EstimatorInputError(f"bounds: must be finite (lo, hi) with lo < hi, got {bounds!r}")
    return lo, hi


def call_model(log_prob_fn: Callable, params: Any, x: np.ndarray) -> np.ndarray:
    """The model's outputs at `x` [S, D] as numpy [S, C], after checking that it is a JAX function.

    Refused: a function that fails, that cannot be traced by `jax.jit` / `jax.grad` (a numpy or scikit-learn
    model), outputs that are not [S, C ≥ 2] or not finite, and probabilities (rows in [0, 1] summing to 1, where
    log-probabilities or logits are expected).
    """
    xs = jnp.asarray(x)

    def fn(x_):
        return log_prob_fn(x_) if params is None else log_prob_fn(params, x_)

    try:
        out = np.asarray(fn(xs))
    except Exception as e:  # noqa: BLE001 - any failure here is the user function's
        raise EstimatorInputError(f"log_prob_fn: failed on inputs of shape {x.shape}: {type(e).__name__}: {e}") from e
    try:
        jax.eval_shape(jax.grad(lambda x_: jnp.sum(fn(x_))), xs[:1])
    except Exception as e:  # noqa: BLE001 - not traceable: a numpy model, Python control flow on values, ...
        msg = " ".join(str(e).split())[:160]
        raise EstimatorInputError(
            f"log_prob_fn: must be a JAX function of x (traced by jax.jit and jax.grad; numpy models are not), "
            f"tracing it failed: {type(e).__name__}: {msg}"
        ) from e
    if out.ndim != 2 or out.shape[0] != x.shape[0] or out.shape[1] < 2:
        raise EstimatorInputError(
            f"log_prob_fn: must map inputs [B, D] to log-probabilities [B, C] with C >= 2; for inputs {x.shape} "
            f"it returned shape {out.shape}"
        )
    if not np.all(np.isfinite(out)):
        bad = int(np.sum(~np.all(np.isfinite(out), axis=1)))
        raise EstimatorInputError(f"log_prob_fn: returned non-finite values at {bad} of {x.shape[0]} start points")
    if np.all(out >= 0) and np.all(out <= 1) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        raise EstimatorInputError(
            "log_prob_fn: returned probabilities (every row in [0, 1], summing to 1); return log-probabilities or "
            "logits instead (e.g. jax.nn.log_softmax(logits) or jnp.log(p))"
        )
    return out


def check_target_classes(t: Target, num_classes: int) -> None:
    if any(k < 0 or k >= num_classes for k in t.classes):
        raise EstimatorInputError(
            f"target: classes {t.classes} outside [0, {num_classes}) (log_prob_fn has {num_classes} classes)"
        )


def available_memory_bytes() -> int:
    """Free memory of the first device: the accelerator's limit minus what is in use, else the host's available."""
    dev = jax.devices()[0]
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # noqa: BLE001 - backends without memory statistics
        stats = {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil ships with the test extras
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def max_per_call_from_memory(dmax: int, dim: int, fraction: float = 0.25, free: int | None = None) -> int:
    """How many subspaces one compiled call may hold: `fraction` of the free memory over a subspace's footprint.

    A subspace holds its basis (dmax × D float32), its gradient through the basis and, for orthonormal bases, the
    QR's workspace: about 4 · dmax · D · 4 bytes, plus a few D-vectors. Rounded down to a power of two, at least 1;
    on several processes, process 0's value.
    """
    free = available_memory_bytes() if free is None else int(free)
    per = 16 * int(dmax) * int(dim) + 64 * int(dim) + 4096
    n = max(1, int(fraction * free) // per)
    n = 1 << (n.bit_length() - 1)
    if jax.process_count() > 1:  # every process must call the same compiled shapes: process 0's choice
        from jax.experimental import multihost_utils

        n = int(multihost_utils.broadcast_one_to_all(np.int64(n)))
    return n
