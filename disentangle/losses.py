"""The constrained loss of the paper's Eq. 2 and its three biological terms.

    L = L_functional + b_nonneg sum_i max(-a_i, 0) + b_activity sum_l ||a_l||^2 + b_weight sum_l ||W_l||^2

Activities `a` are [batch, neurons]; their terms are summed over neurons and averaged over the batch (the
expectations of Eq. 2 estimated on a minibatch). The weight term is the squared Frobenius norm of every weight
matrix (biases are not penalised): without it a network could shrink its activities for free by growing the weights
that read them out. Nonnegativity is either this penalty or a ReLU on the activities (`models.constrained`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp


def nonneg_penalty(a: jax.Array) -> jax.Array:
    """E_batch sum_i max(-a_i, 0): the linear penalty on negative activity (Eq. 2)."""
    return jnp.mean(jnp.sum(jnp.maximum(-a, 0.0), axis=-1))


def l1_penalty(a: jax.Array) -> jax.Array:
    """E_batch sum_i |a_i|: the sparsity penalty of the L1 control (the paper's App. A.6), not part of Eq. 2."""
    return jnp.mean(jnp.sum(jnp.abs(a), axis=-1))


def activity_energy(a: jax.Array) -> jax.Array:
    """E_batch ||a||^2 = E_batch sum_i a_i^2: the activity energy (Eq. 2)."""
    return jnp.mean(jnp.sum(jnp.square(a), axis=-1))


def weight_energy(weights: Sequence[jax.Array]) -> jax.Array:
    """sum_l ||W_l||_F^2 over the given weight matrices (Eq. 2)."""
    return sum((jnp.sum(jnp.square(w)) for w in weights), jnp.zeros((), jnp.float32))


def squared_error(pred: jax.Array, target: jax.Array) -> jax.Array:
    """E_batch ||pred - target||^2 (summed over output dimensions): the functional loss of the regression tasks."""
    return jnp.mean(jnp.sum(jnp.square(pred - target), axis=-1))


def constrained_loss(
    functional: jax.Array,
    activities: Sequence[jax.Array],
    weights: Sequence[jax.Array],
    hp: Mapping[str, jax.Array],
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Eq. 2: functional + beta_nonneg * nonneg + beta_activity * activity + beta_weight * weight energy, plus
    beta_l1 * the L1 activity penalty (0 except in the L1 control).

    `hp` holds the (traced) coefficients `beta_nonneg`, `beta_activity`, `beta_weight`, `beta_l1` (absent: 0); returns
    (total, terms) with the unweighted terms under 'functional', 'nonneg', 'activity', 'weight', 'l1'.
    """
    zero = jnp.zeros((), jnp.float32)
    terms = {
        "functional": functional,
        "nonneg": sum((nonneg_penalty(a) for a in activities), zero),
        "activity": sum((activity_energy(a) for a in activities), zero),
        "weight": weight_energy(weights),
        "l1": sum((l1_penalty(a) for a in activities), zero),
    }
    total = (
        functional
        + hp["beta_nonneg"] * terms["nonneg"]
        + hp["beta_activity"] * terms["activity"]
        + hp["beta_weight"] * terms["weight"]
        + hp.get("beta_l1", 0.0) * terms["l1"]
    )
    return total, terms
