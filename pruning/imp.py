"""Iterative magnitude pruning with weight rewinding, its ablations, and their vmapped, checkpointed sweep.

One IMP run (level L = 0, 1, ..., num_levels - 1; `steps` SGD steps per level):

  level 0: train the dense network from w_0, saving w_k at the rewind step k;
  level L >= 1: prune `fraction` of the remaining kernel weights by global magnitude of the level L-1 solution,
                rewind the survivors to w_k (fresh optimiser state, learning-rate schedule resumed at step k),
                train steps k .. steps-1; record the solution, its density and errors, and the error barrier
                (train loss, test error) on the line to the level L-1 solution.

Ablations differ only in traced per-run values, so they share shapes and run in one `jit(vmap)` with the seeds:

  imp             magnitude pruning, rewind to w_k
  no_rewind       magnitude pruning, rewind to w_0 (k = 0: the original lottery-ticket procedure)
  random_pruning  random pruning (uniform over the remaining weights), rewind to w_k
  random_reinit   magnitude pruning, survivors re-drawn from the initialisation distribution, trained from step 0
  retrain_final   magnitude pruning, survivors keep their final weights and train again from step k
  one_shot        the level-L mask pruned in one shot from the dense solution to density (1 - fraction)^L, rewind
                  to w_k (one point of the one-shot curve per level)

Two more kinds of run measure stability and robustness of an `imp` run (its "parent"): at every level they copy the
parent's new mask and rewind point w_k, then train with different SGD noise (`twin`), or from w_k plus Gaussian noise
whose norm is the distance between the parent's successive rewind points ||w_k (m_{L-1} - m_L)|| (`perturbed`); the
barrier to the parent's level-L solution says whether SGD found the same linearly connected mode. The copy is a
gather over the runs axis between two vmapped calls (`transition`), so every run still runs in the one sweep.

Everything a run needs to continue is in its state (parameters, BatchNorm statistics, the masked optimiser state
holding the masks, w_k, the dense and previous solutions, the per-level history), which `common.checkpoint`
saves every chunk: a run killed mid-level resumes at that level and step and ends bit-for-bit as an uninterrupted
one on CPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from common import checkpoint, metrics, nn, sweep, train_loop
from pruning import lmc, masks

ABLATIONS: dict[str, dict[str, float]] = {
    # kind: 0 magnitude, 1 random (uniform over the remaining weights); mode: 0 rewind to w_k, 2 keep the final
    # weights; one_shot: 0/1; rewind: 1 = rewind step k, 0 = step 0
    "imp": {"kind": 0, "mode": 0, "one_shot": 0, "rewind": 1},
    "no_rewind": {"kind": 0, "mode": 0, "one_shot": 0, "rewind": 0},
    "retrain_final": {"kind": 0, "mode": 2, "one_shot": 0, "rewind": 1},
    "one_shot": {"kind": 0, "mode": 0, "one_shot": 1, "rewind": 1},
    "random_final": {"kind": 1, "mode": 2, "one_shot": 0, "rewind": 1},  # the flatness bound's random pruning
}
# Companions follow an imp run (its "parent"): each level they take the parent's new mask and rewind point w_k.
# twin: other SGD noise (stability); perturbed: w_k plus noise (robustness); random_pruning: the parent's mask
# shuffled within each layer (open_lth's random-pruning control: same layer densities); random_reinit: the parent's
# mask on a fresh initialisation, trained from step k (open_lth's re-initialisation control).
COMPANIONS = ("twin", "perturbed", "random_pruning", "random_reinit")
CONTROLS = ("random_pruning", "random_reinit")  # companions reported as ablations

HIST_KEYS = (
    "density",
    "train_loss",
    "train_error",
    "test_loss",
    "test_error",
    "barrier_loss",
    "barrier_error",
    "parent_barrier_loss",
    "parent_barrier_error",
    "rewind_distance",
    "rank_overlap",
)
HPARAMS = ("lr", "weight_decay", "fraction", "rewind_step", "kind", "mode", "one_shot", "stream", "perturb", "shuffle")


@dataclasses.dataclass(frozen=True)
class Setup:
    """Static description of an IMP sweep (shapes, step counts, schedule)."""

    model: Any  # models.MLP / CNN / ResNet, or a user's Flax model through pruning.adapters
    batch_size: int
    steps: int  # SGD steps per level
    num_levels: int  # levels including the dense level 0
    momentum: float = 0.9
    lr_drops: tuple[int, ...] = ()  # steps (within a level) at which the rate is multiplied by lr_gamma
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    augment: bool = False
    output_rate: float = 1.0  # see masks.prune_rates
    barrier_points: int = 11
    snapshot_levels: tuple[int, ...] = ()  # levels whose solution and mask are kept in the state
    eval_batch: int = 2000
    optimizer: Callable[..., optax.GradientTransformation] = optax.sgd  # any optax optimizer taking learning_rate
    optimizer_kwargs: tuple[tuple[str, Any], ...] = ()  # its other arguments (sgd: momentum defaults to `momentum`)

    def rates(self, params: Any) -> Any:
        return masks.prune_rates(params, output_rate=self.output_rate)

    def lr_at(self, base: jax.Array, t: jax.Array) -> jax.Array:
        factor = jnp.float32(1.0)
        for d in self.lr_drops:
            factor = jnp.where(t >= d, factor * self.lr_gamma, factor)
        if self.warmup_steps:
            factor = factor * jnp.minimum(1.0, (t + 1.0) / self.warmup_steps)
        return base * factor


def optimizer(setup: Setup, weight_decay: jax.Array) -> optax.GradientTransformation:
    """masked(coupled weight decay, then `setup.optimizer`: SGD with momentum by default, PyTorch's convention); the
    learning rate lives in the optimiser state (`common.nn.per_run_lr`) and is set every step."""
    kwargs = dict(setup.optimizer_kwargs)
    if setup.optimizer is optax.sgd:
        kwargs.setdefault("momentum", setup.momentum)
    inner = optax.chain(optax.add_decayed_weights(weight_decay), nn.per_run_lr(setup.optimizer, **kwargs))
    return masks.masked(inner)


def _keys(state_key: jax.Array) -> dict[str, jax.Array]:
    k = jax.random.wrap_key_data(state_key)
    names = ("init", "sgd", "prune", "reinit", "noise")
    return dict(zip(names, jax.random.split(k, len(names)), strict=True))


def init_state(setup: Setup, key: jax.Array, hp: dict[str, jax.Array]) -> dict[str, Any]:
    """The state of one run before level 0: dense w_0, all-True masks, an empty history."""
    keys = jax.random.split(key, 2)
    params, stats = setup.model.init(jax.random.split(keys[0])[0])
    tx = optimizer(setup, hp["weight_decay"])
    levels = setup.num_levels
    hist = {k: jnp.full((levels,), jnp.nan, jnp.float32) for k in HIST_KEYS}
    snap_n = max(len(setup.snapshot_levels), 1)  # orbax cannot save zero-size arrays
    state = {
        "params": params,
        "stats": stats,
        "opt": tx.init(params),
        "key": jax.random.key_data(keys[1]),
        "w_rewind": params,
        "s_rewind": stats,
        "w_dense": params,
        "w_prev": params,
        "hist": hist,
        "snap_params": jax.tree.map(lambda x: jnp.zeros((snap_n, *x.shape), x.dtype), params),
        "snap_masks": jax.tree.map(lambda x: jnp.zeros((snap_n, *x.shape), bool), params),
    }
    return state


def _loss_and_error(setup: Setup, params, stats, x, y) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy and error on (x, y) in evaluation mode, `eval_batch` examples at a time (`lax.map` over
    slices, the last one padded and masked)."""
    n = x.shape[0]
    b = min(setup.eval_batch, n)
    chunks = -(-n // b)
    pad = chunks * b - n
    xs = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    ys = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)]) if pad else y
    valid = (jnp.arange(chunks * b) < n).reshape(chunks, b)

    def one(args):
        xb, yb, ok = args
        logits, _ = setup.model.apply(params, stats, xb, False)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
        return jnp.sum(jnp.where(ok, loss, 0.0)), jnp.sum(ok & (jnp.argmax(logits, -1) != yb))

    if chunks == 1:
        loss_sum, wrong = one((xs, ys, valid[0]))
    else:
        sums, wrongs = jax.lax.map(one, (xs.reshape(chunks, b, *x.shape[1:]), ys.reshape(chunks, b), valid))
        loss_sum, wrong = jnp.sum(sums), jnp.sum(wrongs)
    return loss_sum / n, wrong.astype(jnp.float32) / n


def train_chunk(
    setup: Setup,
    state: dict[str, Any],
    hp: dict[str, jax.Array],
    data: tuple[jax.Array, ...],
    level: jax.Array,
    t0: jax.Array,
    num_steps: int,
) -> tuple[dict[str, Any], dict[str, jax.Array]]:
    """Advances one run by `num_steps` SGD steps from step `t0` of level `level` (one guarded `lax.scan`).

    In levels >= 1 every run holds still for the steps before its rewind step k (0 without rewinding). At step k
    of level 0 the parameters (and BatchNorm statistics) are saved as the rewind point w_k.
    """
    x_train, y_train = jnp.asarray(data[0]), jnp.asarray(data[1])
    n = x_train.shape[0]
    keys = _keys(state["key"])
    tx = optimizer(setup, hp["weight_decay"])
    rs = hp["rewind_step"].astype(jnp.int32)
    start = jnp.where(level == 0, 0, rs)

    def step(st, t):
        params, stats, opt = st["params"], st["stats"], st["opt"]
        is_rewind = (level == 0) & (t == rs)
        st = dict(st)
        st["w_rewind"] = jax.tree.map(lambda a, b: jnp.where(is_rewind, a, b), params, st["w_rewind"])
        st["s_rewind"] = jax.tree.map(lambda a, b: jnp.where(is_rewind, a, b), stats, st["s_rewind"])
        k = jax.random.fold_in(jax.random.fold_in(keys["sgd"], hp["stream"].astype(jnp.int32)), level * setup.steps + t)
        k_idx, k_aug = jax.random.split(k)
        idx = jax.random.randint(k_idx, (setup.batch_size,), 0, n)
        xb, yb = x_train[idx], y_train[idx]
        if setup.augment:
            xb = nn.augment(k_aug, xb)

        def loss_fn(p):
            logits, new_stats = setup.model.apply(p, stats, xb, True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), new_stats

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        opt = nn.set_lr(opt, setup.lr_at(hp["lr"], t))
        updates, new_opt = tx.update(grads, opt, params)
        active = t >= start
        keep = lambda a, b: jax.tree.map(lambda u, v: jnp.where(active, u, v), a, b)  # noqa: E731
        st["params"] = keep(optax.apply_updates(params, updates), params)
        st["stats"] = keep(new_stats, stats)
        st["opt"] = keep(new_opt, opt)
        return st, (jnp.where(active, loss, 0.0), active)

    state, (losses, active), bad = checkpoint.guarded_scan(step, state, t0, num_steps, watch=lambda out: out[0])
    mean = jnp.sum(losses) / jnp.maximum(jnp.sum(active), 1)
    return state, {"train_loss": jnp.where(jnp.any(active), mean, jnp.nan), checkpoint.NONFINITE: bad}


def prune_step(setup: Setup, state: dict[str, Any], hp: dict[str, jax.Array], level: jax.Array) -> dict[str, Any]:
    """The level-L mask of one run from its level L-1 solution (magnitude, random, or one-shot from the dense one).

    Returns the state with the new masks in `state["new_masks"]` (not yet installed)."""
    params = state["params"]
    rates = setup.rates(params)
    old = masks.get_masks(state["opt"])
    keys = _keys(state["key"])
    frac = hp["fraction"]
    mag = masks.magnitude_prune(params, old, frac, rates)
    rnd = masks.random_prune(jax.random.fold_in(keys["prune"], level), old, frac, rates)
    target = 1.0 - jnp.power(1.0 - frac, level.astype(jnp.float32))
    one = masks.magnitude_prune(state["w_dense"], masks.ones_masks(params), target, rates)
    new = jax.tree.map(lambda a, b, c: jnp.where(hp["one_shot"] > 0, c, jnp.where(hp["kind"] > 0, b, a)), mag, rnd, one)
    return {**state, "new_masks": new}


def rewind_step(setup: Setup, state: dict[str, Any], hp: dict[str, jax.Array], level: jax.Array) -> dict[str, Any]:
    """Installs `state["new_masks"]`, sets the survivors to the run's starting point and resets the optimiser."""
    state = dict(state)
    new = state.pop("new_masks")
    params = state["params"]
    rates = setup.rates(params)
    old = masks.get_masks(state["opt"])
    keys = _keys(state["key"])
    shuffled = masks.shuffle_within_layers(jax.random.fold_in(keys["prune"], level), new, rates)
    new = jax.tree.map(lambda a, b: jnp.where(hp["shuffle"] > 0, b, a), new, shuffled)
    fresh, fresh_stats = setup.model.init(jax.random.fold_in(keys["reinit"], level))
    mode = hp["mode"]

    def pick(a, b, c):
        return jax.tree.map(lambda x, y, z: jnp.where(mode == 1, y, jnp.where(mode == 2, z, x)), a, b, c)

    start = pick(state["w_rewind"], fresh, params)
    start_stats = pick(state["s_rewind"], fresh_stats, state["stats"])
    # distance between the successive rewind points m_{L-1} w_k and m_L w_k
    moved = jax.tree.map(lambda w, a, b, r: jnp.where(a & ~b, w, 0.0) * (r != 0), state["w_rewind"], old, new, rates)
    dist = jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(moved)))
    flat, unravel = ravel_pytree(params)
    noise = unravel(jax.random.normal(jax.random.fold_in(keys["noise"], level), flat.shape, flat.dtype))
    noise = jax.tree.map(lambda z, m, r: jnp.where(m, z, 0.0) * (r != 0), noise, new, rates)
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(noise)))
    scale = hp["perturb"] * dist / jnp.maximum(norm, 1e-12)
    start = jax.tree.map(lambda w, z: w + scale * z, start, noise)
    start = masks.apply_masks(start, new)
    state["w_prev"] = params
    state["params"] = start
    state["stats"] = start_stats
    state["opt"] = masks.set_masks(optimizer(setup, hp["weight_decay"]).init(start), new)
    state["hist"] = {**state["hist"], "rewind_distance": state["hist"]["rewind_distance"].at[level].set(dist)}
    return state


def finish_level(
    setup: Setup, state: dict[str, Any], hp: dict[str, jax.Array], data: tuple[jax.Array, ...], level: jax.Array
) -> dict[str, Any]:
    """Records the level-L solution: density, train/test loss and error, barrier to the level L-1 solution
    (train loss, test error), and the snapshot when L is in `snapshot_levels`."""
    x_tr, y_tr, x_te, y_te = data
    params, stats = state["params"], state["stats"]
    rates = setup.rates(params)
    m = masks.get_masks(state["opt"])
    tr_loss, tr_err = _loss_and_error(setup, params, stats, x_tr, y_tr)
    te_loss, te_err = _loss_and_error(setup, params, stats, x_te, y_te)
    bar = barriers(setup, params, state["w_prev"], stats, data)
    bar = jnp.where(level > 0, bar, jnp.nan)
    # new small weights: of the weights the next level prunes (smallest |w| of this solution), the share that were
    # also among the same number of smallest survivors at the rewind point (chance: the fraction itself)
    nxt = masks.magnitude_prune(params, m, hp["fraction"], rates)
    at_k = masks.magnitude_prune(masks.apply_masks(state["w_rewind"], m), m, hp["fraction"], rates)
    both = jax.tree.map(lambda a, b, c: a & ~b & ~c, m, nxt, at_k)
    n_next = masks.count(m, rates) - masks.count(nxt, rates)
    overlap = masks.count(both, rates) / jnp.maximum(n_next, 1)
    h = dict(state["hist"])
    for name, value in (
        ("density", masks.density(m, rates)),
        ("train_loss", tr_loss),
        ("train_error", tr_err),
        ("test_loss", te_loss),
        ("test_error", te_err),
        ("barrier_loss", bar[0]),
        ("barrier_error", bar[1]),
        ("rank_overlap", jnp.where(n_next > 0, overlap, jnp.nan)),
    ):
        h[name] = h[name].at[level].set(value)
    state = {**state, "hist": h}
    state["w_dense"] = jax.tree.map(lambda a, b: jnp.where(level == 0, a, b), params, state["w_dense"])
    for j, lv in enumerate(setup.snapshot_levels):
        hit = level == lv
        state["snap_params"] = jax.tree.map(
            lambda s, p, j=j, hit=hit: s.at[j].set(jnp.where(hit, p, s[j])), state["snap_params"], params
        )
        state["snap_masks"] = jax.tree.map(
            lambda s, p, j=j, hit=hit: s.at[j].set(jnp.where(hit, p, s[j])), state["snap_masks"], m
        )
    return state


def barriers(setup: Setup, params_a, params_b, stats, data) -> jax.Array:
    """[train-loss barrier, test-error barrier] on the line between two networks (BatchNorm statistics of a)."""
    x_tr, y_tr, x_te, y_te = data

    def metric(p):
        return jnp.stack(
            [_loss_and_error(setup, p, stats, x_tr, y_tr)[0], _loss_and_error(setup, p, stats, x_te, y_te)[1]]
        )

    return lmc.error_barrier(metric, params_a, params_b, setup.barrier_points)


def parent_barrier(
    setup: Setup, state: dict[str, Any], parent_params: Any, data: tuple[jax.Array, ...], level: jax.Array
) -> dict[str, Any]:
    """Barrier between this run's level-L solution and its parent's (twin / perturbed runs)."""
    bar = barriers(setup, state["params"], parent_params, state["stats"], data)
    h = dict(state["hist"])
    h["parent_barrier_loss"] = h["parent_barrier_loss"].at[level].set(bar[0])
    h["parent_barrier_error"] = h["parent_barrier_error"].at[level].set(bar[1])
    return {**state, "hist": h}


# --------------------------------------------------------------------------------------------------------------
# the sweep


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: its seed, ablation (or companion) name, and the index of the run it follows."""

    seed: int
    name: str
    parent: int  # itself for an ordinary run
    lr: float
    weight_decay: float
    fraction: float
    rewind_step: int


def hparams(runs: Sequence[Run]) -> dict[str, np.ndarray]:
    """The traced per-run values (float32 [R] each)."""
    rows = []
    for r in runs:
        spec = ABLATIONS["imp"] if r.name in COMPANIONS else ABLATIONS[r.name]
        rows.append(
            {
                "lr": r.lr,
                "weight_decay": r.weight_decay,
                "fraction": r.fraction,
                "rewind_step": r.rewind_step if spec["rewind"] else 0,
                "kind": spec["kind"],
                "mode": 1 if r.name == "random_reinit" else spec["mode"],
                "one_shot": spec["one_shot"],
                "stream": COMPANIONS.index(r.name) + 1 if r.name in COMPANIONS else 0,
                "perturb": 1.0 if r.name == "perturbed" else 0.0,
                "shuffle": 1.0 if r.name == "random_pruning" else 0.0,
            }
        )
    return {k: np.array([row[k] for row in rows], np.float32) for k in HPARAMS}


@jax.jit
def _gather(tree, idx):
    return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), tree)


def _copy_from_parents(state: dict[str, Any], parents: np.ndarray) -> dict[str, Any]:
    """Companion runs take their parent's new masks and rewind point (a gather over the runs axis)."""
    picked = _gather({k: state[k] for k in ("new_masks", "w_rewind", "s_rewind")}, jnp.asarray(parents))
    return {**state, **picked}


def _train_chunk(setup: Setup, chunk_steps: int, first_level: int, state, hp, data, start):
    """One chunk of one run for `common.train_loop`: `start` counts steps from the start of level `first_level`."""
    level = first_level + start // setup.steps
    return train_chunk(setup, state, hp, data, level, start % setup.steps, chunk_steps)


def _compiled(s: Setup) -> tuple:
    """The vmapped between-chunk pieces for one setup (`sweep.vmapped` caches them on the function and static args)."""
    return (
        sweep.vmapped(init_state, static=(s,)),
        sweep.vmapped(prune_step, in_axes=(0, 0, None), static=(s,)),
        sweep.vmapped(rewind_step, in_axes=(0, 0, None), static=(s,)),
        sweep.vmapped(finish_level, in_axes=(0, 0, None, None), static=(s,)),
        sweep.vmapped(parent_barrier, in_axes=(0, 0, None, None), static=(s,)),
    )


class Sweep:
    """An IMP sweep over `runs`: trained through `common.train_loop` (one `jit(vmap)` chunk, sharded over devices),
    with the level transitions (prune, copy to companions, rewind) and the level's record between chunks."""

    def __init__(self, setup: Setup, runs: Sequence[Run], chunk_steps: int):
        if setup.steps % chunk_steps:
            raise ValueError(f"chunk_steps={chunk_steps} must divide steps={setup.steps}")
        self.setup, self.runs, self.chunk = setup, list(runs), int(chunk_steps)
        self.hp = hparams(runs)
        parents = np.array([r.parent for r in runs], np.int32)
        self.has_parents = bool(np.any(parents != np.arange(len(runs))))
        # padded runs (to a multiple of the devices) are their own parents
        self.parents = np.concatenate([parents, np.arange(len(runs), sweep.padded_size(len(runs)), dtype=np.int32)])
        (self._init, self._prune, self._rewind, self._finish, self._parent_bar) = _compiled(setup)

    def keys(self) -> jax.Array:
        return jax.vmap(jax.random.key)(jnp.asarray([r.seed for r in self.runs], jnp.uint32))

    def init(self) -> dict[str, Any]:
        return self._init(self.keys(), sweep.put(self.hp, len(self.runs)))

    def transition(self, state: dict[str, Any], level: int, hp: Any = None) -> dict[str, Any]:
        """Prune (every run), copy masks and w_k to companions, rewind (every run): the start of level `level`."""
        hp = sweep.put(self.hp, len(self.runs)) if hp is None else hp
        state = self._prune(state, hp, np.int32(level))
        if self.has_parents:
            state = _copy_from_parents(state, self.parents)
        return self._rewind(state, hp, np.int32(level))

    def finish(self, state: dict[str, Any], data, level: int, hp: Any = None) -> dict[str, Any]:
        """The level's record (errors, barriers, snapshots) of every run, and each companion's barrier to its parent."""
        hp = sweep.put(self.hp, len(self.runs)) if hp is None else hp
        state = self._finish(state, hp, data, np.int32(level))
        if self.has_parents and level > 0:
            parent_params = _gather(state["params"], jnp.asarray(self.parents))
            state = self._parent_bar(state, parent_params, data, np.int32(level))
        return state

    def run(
        self,
        state: dict[str, Any],
        data,
        *,
        first_level: int = 0,
        num_levels: int | None = None,
        ckpt_dir: str | None = None,
        writer: metrics.MetricWriter | None = None,
        desc: str = "imp",
        save_every: int | None = None,
    ) -> dict[str, Any]:
        """Trains levels first_level .. first_level + num_levels - 1 of every run from `state`, checkpointed and
        resumable (`ckpt_dir` is the run's checkpoint folder); returns the final state on the host."""
        steps = self.setup.steps
        last = first_level + (self.setup.num_levels - first_level if num_levels is None else num_levels)
        n = len(self.runs)
        if first_level > 0:
            state = self.transition(state, first_level)

        def after_chunk(done: int, g: train_loop.Group) -> dict[str, Any]:
            level, t = divmod(done, steps)
            if t:
                return g.state
            state = self.finish(g.state, g.shared, first_level + level - 1, g.hparams)
            if first_level + level < last:
                state = self.transition(state, first_level + level, g.hparams)
            return state

        def on_chunk(ctx: train_loop.ChunkContext) -> dict[str, np.ndarray]:
            level = first_level + (ctx.step - 1) // steps
            row = {"level": np.full(n, level)}
            if ctx.step % steps == 0:
                row.update({k: v[:, level] for k, v in ctx.to_host(ctx.state["hist"]).items()})
            return row

        res = train_loop.train(
            name=desc,
            init=None,
            chunk=_train_chunk,
            static=(self.setup, self.chunk, int(first_level)),
            keys=self.keys(),
            hparams=self.hp,
            shared=tuple(data),
            num_steps=(last - first_level) * steps,
            chunk_steps=self.chunk,
            workdir=None,
            checkpoint_dir=ckpt_dir,
            writer=writer,
            labels=[{"name": r.name, "seed": r.seed} for r in self.runs],
            on_chunk=on_chunk if writer is not None else None,
            save_every=save_every,
            initial_state=state,
            after_chunk=after_chunk,
        )
        return res.state


def make_runs(
    seeds: Sequence[int],
    names: Sequence[str],
    *,
    lr: float,
    weight_decay: float,
    fraction: float,
    rewind_step: int,
) -> list[Run]:
    """Runs for every seed and name (ablations, then companions, which follow that seed's `imp` run)."""
    runs: list[Run] = []
    for seed in seeds:
        base = len(runs)
        order = [n for n in names if n not in COMPANIONS] + [n for n in names if n in COMPANIONS]
        if any(n in COMPANIONS for n in order) and "imp" not in order:
            raise ValueError("twin/perturbed runs follow an imp run: include 'imp'")
        for name in order:
            if name not in ABLATIONS and name not in COMPANIONS:
                raise ValueError(f"unknown run kind {name!r}; one of {sorted(ABLATIONS) + list(COMPANIONS)}")
            parent = base + order.index("imp") if name in COMPANIONS else len(runs)
            runs.append(Run(int(seed), name, parent, lr, weight_decay, fraction, rewind_step))
    return runs


def history(state: dict[str, Any], n_runs: int | None = None) -> dict[str, np.ndarray]:
    """The per-level history of the first `n_runs` runs (all when None) on the host: name -> [runs, levels]."""
    return {k: np.asarray(v) for k, v in sweep.to_numpy(state["hist"], n_runs).items()}


def train(setup: Setup, key: jax.Array, hp: dict[str, jax.Array], data: tuple[jax.Array, ...]) -> dict[str, Any]:
    """One whole run (every level, no companions) as a pure function of (key, hp), for `jit(vmap)` and timing.

    The levels are a `lax.fori_loop`; the result equals what `Sweep.run` produces for the same run (without
    checkpoints). hp holds the scalars of `HPARAMS` for this run (`hparams([...])` row).
    """
    state = init_state(setup, key, hp)

    def level_body(level, st):
        moved = rewind_step(setup, prune_step(setup, st, hp, level), hp, level)
        st = jax.tree.map(lambda a, b: jnp.where(level > 0, a, b), moved, st)
        st, _ = train_chunk(setup, st, hp, data, level, jnp.int32(0), setup.steps)
        return finish_level(setup, st, hp, data, level)

    return jax.lax.fori_loop(0, setup.num_levels, level_body, state)
