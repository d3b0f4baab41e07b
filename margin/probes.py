"""What the training runs measure at the end of every chunk, as hashable callables `probe(params, data) -> dict`.

Each is a frozen dataclass (a static argument of the compiled chunk: equal probes share one compilation):
  - `ToyDirection`: the toy's predictor β normalised along the characteristic curves (‖θ‖_Λ^{1/λ_max} = 1), and its
    relative distance to the program's solution `target`.
  - `Sparsity`: the rate-λ_max parameters' size against the rest, both made scale-free along the curves:
    ratio = ‖θ_max‖^{1/λ_max} / ‖θ_rest‖^{1/λ_rest} (λ_rest the largest rate below λ_max), with both factors.
  - `Collapse`: the neural-collapse metrics of the classifier's input features (`neural_collapse.metrics`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from margin import models
from margin import neural_collapse as nc
from margin import quasi_homogeneous as qh


@dataclasses.dataclass(frozen=True)
class ToyDirection:
    """β(θ)/‖θ‖_Λ^{1/λ_max} of the toy `name` and its relative distance to `target` (the program's β*)."""

    name: str
    rates: object  # train.Frozen
    target: tuple

    def __call__(self, params, data) -> dict:
        rates = self.rates.tree()
        beta = models.toy_predictor(self.name, params) / qh.seminorm(params, rates) ** (1.0 / qh.rate_max(rates))
        target = jnp.asarray(self.target, jnp.float32)
        return {"direction_error": jnp.linalg.norm(beta - target) / jnp.linalg.norm(target), "beta": beta}


def rest_rate(rates) -> float:
    """The largest rate below λ_max (0 when there is none)."""
    top = qh.rate_max(rates)
    return max([float(r) for r in jax.tree.leaves(rates) if float(r) < top - 1e-9], default=0.0)


@dataclasses.dataclass(frozen=True)
class Sparsity:
    """ratio = ‖θ_max‖^{1/λ_max} / ‖θ_rest‖^{1/λ_rest}, constant along characteristic curves; also both factors."""

    rates: object  # train.Frozen

    def __call__(self, params, data) -> dict:
        rates = self.rates.tree()
        top, rest = qh.rate_max(rates), rest_rate(rates)
        full = qh.leaf_rates(params, rates)
        pairs = list(zip(jax.tree.leaves(full), jax.tree.leaves(params), strict=True))
        sq_top = sum(jnp.sum(jnp.where(jnp.abs(r - top) <= 1e-6 * top, a * a, 0.0)) for r, a in pairs)
        sq_rest = sum(jnp.sum(jnp.where(jnp.abs(r - rest) < 1e-6, a * a, 0.0)) for r, a in pairs)
        scale_top = jnp.sqrt(sq_top) ** (1 / top)
        scale_rest = jnp.sqrt(sq_rest) ** (1 / rest) if rest > 0 else jnp.asarray(jnp.nan)
        return {"sparsity_ratio": scale_top / scale_rest, "scale_top": scale_top, "scale_rest": scale_rest}


@dataclasses.dataclass(frozen=True)
class Collapse:
    """NC1, NC2, NC3, ‖b‖/‖W‖ and the normalised margin of the stack's classifier (its last Dense layer `head`)."""

    layers: tuple
    num_classes: int
    head: str = "classifier"

    def __call__(self, params, data) -> dict:
        _, feats = models.apply_stack(params, self.layers, data["x"], return_features=True)
        w = params[self.head]["w"]
        b = params[self.head].get("b", jnp.zeros(w.shape[1], w.dtype))
        return nc.metrics(feats, data["y"], w, b, self.num_classes)
