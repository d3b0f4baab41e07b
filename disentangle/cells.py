"""Grid-like and object-vector-like cells at CPU scale: path-integrating codes in small 2-D worlds with objects.

The setting (a reduced version of the paper's cell model, built here): worlds are L x L tori; world w has one object
at o_w. The code of location x in world w is a learned vector z[w, x] >= 0 (a free representation, optimised
directly, one per world and location). It must

  - path-integrate: z[w, x + a] ~= z[w, x] T_a + c_a for the four moves a, with T_a, c_a shared by every world
    (the paper's z(x + a) ~= f(W_a z(x))),
  - read out the agent's position x (world-independent: cos/sin of 2 pi x_i / L) and its displacement from the
    object d = x - o_w (cos/sin of 2 pi d_i / L) linearly, with read-outs shared by every world,

under Eq. 2's constraints (ReLU or penalty nonnegativity, activity energy on z, weight energy on T_a and the
read-outs). Because the object moves between worlds, x and d are independent task factors; the theory predicts that
with the constraints each neuron codes one of them: position-only cells (grid-like: the same map in every world)
and displacement-only cells (object-vector-like: the same map relative to the object). Without the constraints the
code is an arbitrary rotation of those and cells mix.

Entangled task: with one fixed world x and d are the same variable and no measurement can tell the two cell types
apart, so the entangled variant here keeps many worlds but ties the object to one place: o_w = (0, 0) + a uniform
offset in {0, ..., jitter} per axis: d and x are then strongly but not perfectly correlated, and the prediction is
that cells mix.

Separation score: for each active neuron, I_x = I(n; x_1) + I(n; x_2) and I_d = I(n; d_1) + I(n; d_2) (histogram
MI, disentangle.metrics); s_n = |I_x - I_d| / (I_x + I_d); the score is the mean over active neurons (1: every cell
is of one type; 0: every cell carries as much about position as about the object).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import checkpoint, nn
from disentangle import losses, metrics, models

MOVES = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.int32)
HPARAMS = ("lr", "beta_nonneg", "beta_activity", "beta_weight", "relu", "jitter")


@dataclasses.dataclass(frozen=True)
class CellConfig:
    """Static shape: world side L, number of worlds, neurons, and the steps per compiled chunk."""

    side: int = 5
    num_worlds: int = 32
    num_neurons: int = 24
    chunk_steps: int = 1000


def _positions(side: int) -> np.ndarray:
    xs = np.arange(side)
    return np.stack(np.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)  # [L^2, 2]


def objects(key: jax.Array, cfg: CellConfig, jitter: jax.Array) -> jax.Array:
    """Object cell of every world [W, 2]: uniform over the torus when jitter >= side, else o + U{0..jitter}^2."""
    k_o, k_j = jax.random.split(key)
    uniform = jax.random.randint(k_o, (cfg.num_worlds, 2), 0, cfg.side)
    span = jnp.minimum(jnp.asarray(jitter, jnp.int32), cfg.side - 1)
    u = jax.random.uniform(k_j, (cfg.num_worlds, 2))
    near = jnp.floor(u * (span + 1).astype(jnp.float32)).astype(jnp.int32)
    return jnp.where(jitter >= cfg.side, uniform, near)


def _features(coords: jax.Array, side: int) -> jax.Array:
    ang = 2.0 * jnp.pi * coords.astype(jnp.float32) / side
    return jnp.concatenate([jnp.cos(ang), jnp.sin(ang)], axis=-1)


def world_factors(key_data: jax.Array, cfg: CellConfig, jitter: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(x [W, L^2, 2], d [W, L^2, 2]): every location and its displacement from the world's object (mod L)."""
    key = jax.random.wrap_key_data(key_data)
    obj = objects(jax.random.fold_in(key, 1), cfg, jitter)
    pos = jnp.asarray(_positions(cfg.side))
    x = jnp.broadcast_to(pos, (cfg.num_worlds, *pos.shape))
    d = jnp.mod(x - obj[:, None, :], cfg.side)
    return x, d


def _neighbour_index(side: int) -> np.ndarray:
    pos = _positions(side)
    out = np.empty((len(MOVES), side * side), np.int32)
    for a, mv in enumerate(MOVES):
        q = np.mod(pos + mv, side)
        out[a] = q[:, 0] * side + q[:, 1]
    return out


def init_state(cfg: CellConfig, key: jax.Array, hp: Mapping[str, jax.Array]) -> dict:
    """Codes z [W, L^2, N], transitions T [4, N, N], c [4, N], read-out R [N, 8], r [8]; Adam state; key data."""
    k = jax.random.split(jax.random.fold_in(key, 0), 3)
    n, m = cfg.num_neurons, cfg.side * cfg.side
    params = {
        "z": 0.3 * jnp.abs(jax.random.normal(k[0], (cfg.num_worlds, m, n))),
        "T": jnp.broadcast_to(jnp.eye(n), (4, n, n)) + 0.05 * jax.random.normal(k[1], (4, n, n)),
        "c": jnp.zeros((4, n)),
        "R": jax.random.normal(k[2], (n, 8)) / jnp.sqrt(n),
        "r": jnp.zeros((8,)),
    }
    opt = nn.set_lr(nn.per_run_lr(optax.adam).init(params), hp["lr"])
    return {"params": params, "opt": opt, "key": jax.random.key_data(key)}


def codes(params: dict, hp: Mapping[str, jax.Array]) -> jax.Array:
    """The constrained code [W, L^2, N] (ReLU when the gate is on)."""
    return models.constrained(params["z"], hp["relu"])


def loss_fn(params: dict, targets: jax.Array, hp: Mapping[str, jax.Array], nbr: jax.Array) -> tuple[jax.Array, dict]:
    """Path integration + read-out squared errors (per location) + Eq. 2's terms on the code and the weights."""
    z = codes(params, hp)  # [W, M, N]
    pred_next = jnp.einsum("wmn,ank->awmk", z, params["T"]) + params["c"][:, None, None, :]
    actual_next = z[:, nbr].transpose(1, 0, 2, 3)  # [A, W, M, N]
    path = jnp.mean(jnp.sum(jnp.square(pred_next - actual_next), -1))
    readout = jnp.mean(jnp.sum(jnp.square(z @ params["R"] + params["r"] - targets), -1))
    flat = z.reshape(-1, z.shape[-1])
    return losses.constrained_loss(path + readout, [flat], [params["T"], params["R"]], hp)


def _targets(cfg: CellConfig, key_data: jax.Array, hp) -> tuple[jax.Array, jax.Array, jax.Array]:
    x, d = world_factors(key_data, cfg, hp["jitter"])
    return x, d, jnp.concatenate([_features(x, cfg.side), _features(d, cfg.side)], -1)


def chunk(cfg: CellConfig, state: dict, hp, shared, start_step) -> tuple[dict, dict]:
    """`cfg.chunk_steps` full-batch Adam steps in a guarded scan (the driver's chunk function for one run)."""
    del shared
    tx = nn.per_run_lr(optax.adam)
    nbr = jnp.asarray(_neighbour_index(cfg.side))
    _, _, targets = _targets(cfg, state["key"], hp)

    def step(carry, t):
        params, opt = carry
        (loss, terms), g = jax.value_and_grad(loss_fn, has_aux=True)(params, targets, hp, nbr)
        updates, opt = tx.update(g, opt, params)
        return (optax.apply_updates(params, updates), opt), {"loss": loss, "functional": terms["functional"]}

    (params, opt), outs, bad = checkpoint.guarded_scan(
        step, (state["params"], state["opt"]), start_step, cfg.chunk_steps
    )
    new = {"params": params, "opt": opt, "key": state["key"]}
    return new, {"loss": jnp.mean(outs["loss"]), "functional": outs["functional"][-1], checkpoint.NONFINITE: bad}


def evaluate(cfg: CellConfig, state: dict, hp, shared) -> dict:
    """{'code' [W*L^2, N], 'x' [W*L^2, 2], 'd' [W*L^2, 2], 'functional'} of one trained run."""
    del shared
    x, d, targets = _targets(cfg, state["key"], hp)
    _, terms = loss_fn(state["params"], targets, hp, jnp.asarray(_neighbour_index(cfg.side)))
    z = codes(state["params"], hp)
    return {
        "code": z.reshape(-1, z.shape[-1]),
        "x": x.reshape(-1, 2),
        "d": d.reshape(-1, 2),
        "functional": terms["functional"],
    }


def separation_score(code: np.ndarray, x: np.ndarray, d: np.ndarray, num_bins: int = 10) -> dict:
    """Mean over active neurons of |I_x - I_d| / (I_x + I_d) (see the module docstring), and the per-neuron values.

    Returns {'score', 'per_neuron' (s_n), 'i_x', 'i_d', 'num_active'}.
    """
    m = metrics.mutual_information(code, np.concatenate([x, d], axis=1), num_bins=num_bins)
    i_x = m.mi[m.active, 0] + m.mi[m.active, 1]
    i_d = m.mi[m.active, 2] + m.mi[m.active, 3]
    tot = i_x + i_d
    s = np.where(tot > 0, np.abs(i_x - i_d) / np.where(tot > 0, tot, 1.0), 0.0)
    return {
        "score": float(s.mean()),
        "per_neuron": s.tolist(),
        "i_x": i_x.tolist(),
        "i_d": i_d.tolist(),
        "num_active": int(m.active.sum()),
    }
