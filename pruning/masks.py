"""Pruning masks: an optax transformation that keeps them in the optimiser state, and the pruning rules.

    rates = masks.prune_rates(params)                            # which leaves are pruned, and at what rate
    tx = masks.masked(optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(0.1, momentum=0.9)))
    opt_state = tx.init(params)                                 # all-ones masks
    new = masks.magnitude_prune(params, masks.get_masks(opt_state), 0.2, rates)   # prune 20% of what remains
    opt_state = masks.set_masks(tx.init(params), new)           # masks travel (and are checkpointed) with the state
    params = masks.apply_masks(params, new)

A mask is a boolean array of the parameter's shape (True = kept); every leaf has one, so leaves that are never pruned
(biases, normalisation scales) simply keep an all-True mask. `masked(inner)` zeroes the gradient of pruned weights
before `inner` sees it (so momentum and Adam moments of pruned weights stay zero) and returns, at a pruned weight,
the update `-param`: after `optax.apply_updates` every pruned weight is exactly 0 whatever `inner` (momentum, weight
decay) produced. All functions are pure and jit/vmap-compatible; fractions may be traced.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

# --------------------------------------------------------------------------------------------------------------
# which leaves are pruned

_KERNEL_NAMES = ("kernel", "w", "weight")
_VARIABLE_TAIL = "value"  # Flax NNX: a leaf's path ends in .value (the Variable's payload)


def _entry(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _names(path) -> list[str]:
    """The path's entries as strings, without the trailing `.value` of a Flax NNX variable."""
    names = [_entry(k) for k in path]
    if len(names) > 1 and names[-1] == _VARIABLE_TAIL and isinstance(path[-1], jax.tree_util.GetAttrKey):
        names = names[:-1]
    return names


def _leaf_name(path) -> str:
    names = _names(path)
    return names[-1] if names else ""


def structural_order(path) -> tuple:
    """A sort key that orders layers as they are built: numbers inside names compare as numbers (linen's Dense_9
    comes before Dense_10; list indices 2 before 10), the rest as text."""
    key = []
    for name in _names(path):
        for part in re.split(r"(\d+)", name):
            if part:
                key.append((0, int(part), "") if part.isdigit() else (1, 0, part))
        key.append((2, 0, ""))  # entry separator: "a" / "b" sorts before "a_1"
    return tuple(key)


def check_fraction(fraction: Any, name: str = "fraction") -> None:
    """Raises ValueError naming `name` when a concrete fraction is not a finite number in [0, 1] (traced fractions
    are left alone: jit/vmap callers validate their inputs before tracing)."""
    if isinstance(fraction, jax.core.Tracer):
        return
    arr = np.asarray(fraction, np.float64)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(f"{name} must be a finite number in [0, 1], got {fraction!r}")


def is_kernel(path, leaf) -> bool:
    """Default choice of pruned leaves: dense and convolution kernels (a leaf named kernel/w/weight with ndim >= 2).

    Biases and normalisation parameters (1-D) are never pruned.
    """
    return _leaf_name(path) in _KERNEL_NAMES and getattr(leaf, "ndim", 0) >= 2


def _under_head(path) -> bool:
    return "head" in _names(path)


def prune_rates(
    params: Any,
    *,
    include: Callable[[Any, Any], bool] = is_kernel,
    output_rate: float = 1.0,
    is_output: Callable[[Any, Any], bool] | None = None,
) -> Any:
    """A pytree of python floats, one per leaf: the rate at which that leaf is pruned.

    0 = never pruned; 1 = pruned in the global pool (magnitudes compared across every rate-1 leaf); any other value r
    = pruned on its own (layer-wise) at r times the fraction. Works on plain pytrees, Flax linen variables and Flax
    NNX state (whose paths end in `.value`). The output layer is the leaf `is_output` picks; without it, the leaves
    under a key "head", else the last leaf chosen by `include` in `structural_order` (linen's Dense_10 after
    Dense_9); name it with `is_output` when layer names do not follow the order they are applied in.
    `output_rate=1` treats it like every other kernel, `output_rate=0` never prunes it (open_lth's
    `pruning_layers_to_ignore`), `output_rate=0.5` prunes it at half the rate (the lottery-ticket paper's LeNet
    convention), leaving it partly unpruned.
    """
    if not np.isfinite(output_rate) or output_rate < 0:
        raise ValueError(f"output_rate must be a finite number >= 0, got {output_rate!r}")
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    chosen = [bool(include(path, leaf)) for path, leaf in flat]
    rates = [1.0 if c else 0.0 for c in chosen]
    if is_output is None and any(c and _under_head(path) for c, (path, _) in zip(chosen, flat, strict=True)):
        is_output = lambda path, leaf: _under_head(path)  # noqa: E731
    if is_output is not None:
        for i, (path, leaf) in enumerate(flat):
            if chosen[i] and is_output(path, leaf):
                rates[i] = float(output_rate)
    elif any(chosen):
        last = max((i for i, c in enumerate(chosen) if c), key=lambda i: structural_order(flat[i][0]))
        rates[last] = float(output_rate)
    return jax.tree.unflatten(treedef, rates)


def ones_masks(params: Any) -> Any:
    """All-True masks shaped like `params`."""
    return jax.tree.map(lambda p: jnp.ones(jnp.shape(p), bool), params)


def apply_masks(params: Any, masks: Any) -> Any:
    """`params` with every pruned entry set to exactly 0."""
    return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, masks)


def count(masks: Any, rates: Any | None = None) -> jax.Array:
    """Number of kept entries (over the leaves with a non-zero rate when `rates` is given)."""
    leaves, rl = jax.tree.leaves(masks), _rate_leaves(masks, rates)
    return sum(jnp.sum(m, dtype=jnp.int32) for m, r in zip(leaves, rl, strict=True) if r != 0)


def size(masks: Any, rates: Any | None = None) -> int:
    """Number of entries (over the leaves with a non-zero rate when `rates` is given)."""
    leaves, rl = jax.tree.leaves(masks), _rate_leaves(masks, rates)
    return int(sum(m.size for m, r in zip(leaves, rl, strict=True) if r != 0))


def density(masks: Any, rates: Any | None = None) -> jax.Array:
    """Fraction of entries kept (over the prunable leaves when `rates` is given)."""
    return count(masks, rates) / size(masks, rates)


def _rate_leaves(masks: Any, rates: Any | None) -> list[float]:
    n = len(jax.tree.leaves(masks))
    if rates is None:
        return [1.0] * n
    rl = [float(r) for r in jax.tree.leaves(rates)]
    if len(rl) != n:
        raise ValueError(f"rates has {len(rl)} leaves, masks {n}")
    return rl


# --------------------------------------------------------------------------------------------------------------
# pruning rules


def _prune_vector(score: jax.Array, alive: jax.Array, fraction: jax.Array) -> jax.Array:
    """Removes round(fraction * alive.sum()) of the alive entries with the lowest score (ties: lowest index first)."""
    n_alive = jnp.sum(alive, dtype=jnp.int32)
    k = jnp.floor(jnp.asarray(fraction, jnp.float32) * n_alive.astype(jnp.float32) + 0.5).astype(jnp.int32)
    k = jnp.clip(k, 0, n_alive)
    keyed = jnp.where(alive, score.astype(jnp.float32), jnp.inf)  # pruned entries sort last
    order = jnp.argsort(keyed, stable=True)  # stable: equal scores keep index order
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    return alive & (rank >= k)


def prune_by_score(scores: Any, masks: Any, fraction: Any, rates: Any, *, scope: str = "global") -> Any:
    """New masks: a fraction of the *remaining* prunable entries with the lowest scores removed.

    `scope="global"`: the rate-1 leaves form one pool (scores compared across layers, as in IMP); leaves with another
    non-zero rate r are pruned on their own at r*fraction. `scope="layerwise"`: every leaf with rate r > 0 is pruned
    on its own at r*fraction. The count is exact: round(fraction * remaining) per pool (half rounds up). Ties in score
    are broken by position (the lowest index in `jax.tree` leaf order, then row-major order, goes first), so the
    result is deterministic. Entries already pruned stay pruned.
    """
    if scope not in ("global", "layerwise"):
        raise ValueError(f"scope must be 'global' or 'layerwise', got {scope!r}")
    check_fraction(fraction)
    s_leaves, treedef = jax.tree.flatten(scores)
    m_leaves = treedef.flatten_up_to(masks)
    r_leaves = [float(r) for r in treedef.flatten_up_to(rates)]
    out = list(m_leaves)
    pool = [i for i, r in enumerate(r_leaves) if r == 1.0 and scope == "global"]
    if pool:
        vec = jnp.concatenate([jnp.ravel(s_leaves[i]) for i in pool])
        alive = jnp.concatenate([jnp.ravel(m_leaves[i]) for i in pool])
        new = _prune_vector(vec, alive, fraction)
        offset = 0
        for i in pool:
            n = m_leaves[i].size
            out[i] = new[offset : offset + n].reshape(m_leaves[i].shape)
            offset += n
    for i, r in enumerate(r_leaves):
        if r == 0.0 or i in pool:
            continue
        frac = jnp.clip(jnp.asarray(fraction, jnp.float32) * r, 0.0, 1.0)
        new = _prune_vector(jnp.ravel(s_leaves[i]), jnp.ravel(m_leaves[i]), frac)
        out[i] = new.reshape(m_leaves[i].shape)
    return jax.tree.unflatten(treedef, out)


def magnitude_prune(params: Any, masks: Any, fraction: Any, rates: Any, *, scope: str = "global") -> Any:
    """Magnitude pruning: removes `fraction` of the remaining prunable weights with the smallest |w|.

    Global by default (IMP's rule: one threshold over every rate-1 kernel, no per-layer normalisation);
    `scope="layerwise"` prunes the same fraction of every layer. See `prune_by_score` for counts and ties.
    """
    return prune_by_score(jax.tree.map(jnp.abs, params), masks, fraction, rates, scope=scope)


def random_prune(key: jax.Array, masks: Any, fraction: Any, rates: Any, *, scope: str = "global") -> Any:
    """Random pruning: removes `fraction` of the remaining prunable weights chosen uniformly at random.

    `scope="global"` draws from the whole rate-1 pool (so layer densities drift randomly around the global one);
    `scope="layerwise"` removes exactly the fraction from every layer.
    """
    return prune_by_score(_uniform_like(key, masks), masks, fraction, rates, scope=scope)


def shuffle_within_layers(key: jax.Array, masks: Any, rates: Any) -> Any:
    """Each prunable leaf's mask permuted uniformly at random (open_lth's random-pruning control): every layer keeps
    its number of survivors, their positions are random. Leaves with rate 0 are returned unchanged."""
    leaves, treedef = jax.tree.flatten(masks)
    r_leaves = [float(r) for r in treedef.flatten_up_to(rates)]
    out = []
    for i, (m, r) in enumerate(zip(leaves, r_leaves, strict=True)):
        if r == 0.0:
            out.append(m)
            continue
        perm = jax.random.permutation(jax.random.fold_in(key, i), m.size)
        out.append(jnp.ravel(m)[perm].reshape(m.shape))
    return jax.tree.unflatten(treedef, out)


def _uniform_like(key: jax.Array, tree: Any) -> Any:
    """Uniform [0, 1) draws shaped like `tree`, cut from one draw (one random-bits kernel to compile)."""
    leaves, treedef = jax.tree.flatten(tree)
    sizes = [int(np.prod(jnp.shape(x))) for x in leaves]
    flat = jax.random.uniform(key, (sum(sizes),))
    out, offset = [], 0
    for x, n in zip(leaves, sizes, strict=True):
        out.append(flat[offset : offset + n].reshape(jnp.shape(x)))
        offset += n
    return jax.tree.unflatten(treedef, out)


# --------------------------------------------------------------------------------------------------------------
# the optax transformation


class MaskedState(NamedTuple):
    """Optimiser state of `masked`: the masks (True = kept) and the wrapped transformation's state."""

    masks: Any
    inner_state: Any


def masked(inner: optax.GradientTransformation, masks: Any | None = None) -> optax.GradientTransformation:
    """Wraps `inner` so that pruned weights receive no gradient and are held at exactly zero.

    `init(params)` stores `masks` (all-True when None) in the state. `update(grads, state, params)` (params are
    required) zeroes the gradient at pruned entries, runs `inner`, then replaces the update at pruned entries by
    `-params`, so `optax.apply_updates` leaves every pruned weight at exactly 0: momentum, Adam moments or weight
    decay cannot revive it, and a weight pruned while nonzero is zeroed on the next step. Replace the masks with
    `set_masks`.
    """

    def init_fn(params):
        m = ones_masks(params) if masks is None else jax.tree.map(lambda x: jnp.asarray(x, bool), masks)
        return MaskedState(m, inner.init(params))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("masked(...).update needs params (to hold pruned weights at zero)")
        grads = jax.tree.map(lambda g, m: jnp.where(m, g, jnp.zeros_like(g)), updates, state.masks)
        new, inner_state = inner.update(grads, state.inner_state, params)
        new = jax.tree.map(lambda u, m, p: jnp.where(m, u, -p), new, state.masks, params)
        return new, MaskedState(state.masks, inner_state)

    return optax.GradientTransformation(init_fn, update_fn)


def _is_masked_state(x) -> bool:
    return isinstance(x, MaskedState)


def get_masks(opt_state: Any) -> Any:
    """The masks held by the (first) MaskedState inside `opt_state`."""
    for node in jax.tree.leaves(opt_state, is_leaf=_is_masked_state):
        if isinstance(node, MaskedState):
            return node.masks
    raise ValueError("no MaskedState in this optimiser state (was the optimiser built with masks.masked?)")


def set_masks(opt_state: Any, masks: Any) -> Any:
    """`opt_state` with the masks of every MaskedState inside it replaced by `masks` (a pure function)."""
    found = []

    def swap(node):
        if isinstance(node, MaskedState):
            found.append(True)
            return MaskedState(jax.tree.map(lambda x: jnp.asarray(x, bool), masks), node.inner_state)
        return node

    out = jax.tree.map(swap, opt_state, is_leaf=_is_masked_state)
    if not found:
        raise ValueError("no MaskedState in this optimiser state (was the optimiser built with masks.masked?)")
    return out
