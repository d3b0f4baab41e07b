"""Cover's counting theorem: a perceptron's capacity, exactly and by vmapped draws.

Cover (1965): P points in general position in R^N with random ±1 labels are separable by a hyperplane through the
origin with probability C(P, N) = 2^{1-P} Σ_{k<N} binom(P-1, k) (exact at finite N; 1/2 at P = 2N).

The draws are vmapped: labels and data are drawn on device, and the hard-margin SVM through the origin is
`max_margin.min_norm_point` (its separability certificate gives Cover's experiment).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from common import sweep
from margin import max_margin as mm


def cover_probability(p: int, n: int) -> float:
    """C(P, N) = 2^{1-P} Σ_{k=0}^{N-1} binom(P-1, k): the probability that P random points in N dims are separable."""
    if p <= n:
        return 1.0
    return float(sum(math.comb(p - 1, k) for k in range(n)) / 2 ** (p - 1))


def count_separable_dichotomies(x: np.ndarray) -> int:
    """The number of the 2^P labelings of the points x [P, N] that a hyperplane through the origin separates (LP).

    Cover's function counting theorem: 2 Σ_{k<N} binom(P-1, k) for points in general position.
    """
    p = x.shape[0]
    count = 0
    for bits in range(2**p):
        y = np.array([1.0 if (bits >> i) & 1 else -1.0 for i in range(p)])
        count += mm.is_separable(x, y)
    return count


def _padded_problem(key: jax.Array, p: jax.Array, n: int, p_max: int) -> jax.Array:
    """z = y x for P = p random points (x ~ N(0, I_n), y = ±1), padded to p_max rows with copies of row 0."""
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (p_max, n), jnp.float32)
    y = jnp.where(jax.random.bernoulli(ky, 0.5, (p_max,)), 1.0, -1.0)
    z = y[:, None] * x
    rows = jnp.arange(p_max)
    return jnp.where((rows < p)[:, None], z, z[0][None, :])  # duplicates do not change the convex hull


def _cover_one(n: int, p_max: int, num_iters: int, key: jax.Array, p: jax.Array) -> dict[str, jax.Array]:
    z = _padded_problem(key, p, n, p_max)
    return {"separable": mm.min_norm_point(z, num_iters)["separable"], "z": z}


def cover_draws(key: jax.Array, n: int, p_values: list[int], num_draws: int, num_iters: int = 1500) -> dict:
    """The fraction of separable draws for each P: one vmapped max-margin solve per draw, LP for the rest.

    A draw is separable when `min_norm_point` certifies it (a w with all y_i w·x_i > 0) or, failing that, when the
    LP finds one: the certificate is exact, so only uncertified draws need the LP. Returns the fraction per P, how
    many draws the LP had to settle and how many of those it found separable (the vmapped solver's misses).
    """
    p_max = max(p_values)
    ps = np.repeat(np.asarray(p_values, np.int32), num_draws)
    keys = jax.random.split(key, ps.size)
    one = sweep.vmapped(_cover_one, static=(n, p_max, num_iters))
    out = sweep.to_numpy(one(keys, ps), ps.size)
    sep = out["separable"].astype(bool)
    lp_used = np.flatnonzero(~sep)
    lp_found = 0
    for i in lp_used:
        z = out["z"][i, : ps[i]]
        if mm.separability_lp(z)[0] > 1e-9:
            sep[i] = True
            lp_found += 1
    frac = sep.reshape(len(p_values), num_draws).mean(axis=1)
    return {"fraction": frac, "lp_checked": int(lp_used.size), "lp_found_separable": lp_found}
