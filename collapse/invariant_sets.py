"""Detection of the two invariant sets of the paper (Sec. 3) in MLP and CNN parameters, and extraction of the
collapsed subnetwork.

A hidden neuron (a unit of a dense layer, or a channel of a convolution) is the vector of its incoming weights,
its bias and its outgoing weights (the next layer's weights that read it). With an activation that has
sigma(0) = 0:

* a *vanishing* neuron (all three zero) gets zero gradient from every sample;
* *identical* neurons (equal incoming weights, biases and outgoing weights) get equal gradients;

so both sets are invariant under SGD with any minibatch. In trained networks the sets are detected
approximately with the paper's thresholds: vanishing if ``||theta_i|| < 0.1 * max_j ||theta_j||`` in the layer;
identical if ``2 ||theta_i - theta_j||^2 / (||theta_i||^2 + ||theta_j||^2) < 0.1``. The fraction of independent
neurons of a layer is (number of groups of identical non-vanishing neurons) / width.

Grouping is a leader clustering: neurons are visited in order; an unassigned neuron starts a group and takes
every later unassigned neuron within the threshold of it (so no chains of ever more distant neurons). The
released notebooks use a similar greedy pairwise rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from collapse.models import Layers

VANISH_THRESHOLD = 0.1
IDENTICAL_THRESHOLD = 0.1


@dataclasses.dataclass(frozen=True)
class LayerCollapse:
    """Invariant-set structure found in one hidden layer.

    Attributes:
      width: number of neurons (units or channels).
      vanishing: bool ``[width]``, True where the neuron is (approximately) vanishing.
      groups: groups of identical non-vanishing neurons (each a sorted list of indices; singletons included).
    """

    width: int
    vanishing: np.ndarray
    groups: list[list[int]]

    @property
    def independent(self) -> int:
        """Number of independent neurons: groups of identical non-vanishing neurons."""
        return len(self.groups)

    @property
    def fraction(self) -> float:
        """Fraction of independent neurons (groups / width), the quantity plotted in the paper's Fig. 4."""
        return self.independent / self.width


def _outgoing(w_next: np.ndarray, width: int, next_after_conv: bool) -> np.ndarray:
    """Outgoing weights of each of ``width`` neurons as rows ``[width, -1]``."""
    if w_next.ndim == 4:  # conv -> conv: kernel HWIO, the neuron is the input channel axis
        return np.moveaxis(w_next, 2, 0).reshape(width, -1)
    if next_after_conv:  # conv -> dense over the channels-last flattening (or the global mean)
        k = w_next.shape[0] // width
        return w_next.reshape(k, width, -1).transpose(1, 0, 2).reshape(width, -1)
    return w_next.reshape(width, -1)


def neuron_vectors(layers: Layers, index: int) -> np.ndarray:
    """Each neuron of hidden layer ``index`` as one row ``[incoming weights, bias, outgoing weights]``.

    Args:
      layers: the network as a list of ``{"w", "b"}`` layers (see :mod:`collapse.models`).
      index: a hidden layer, ``0 <= index < len(layers) - 1``.

    Returns:
      ``[width, fan_in + 1 + fan_out]`` float64 array.
    """
    if not 0 <= index < len(layers) - 1:
        raise ValueError(f"index must name a hidden layer in [0, {len(layers) - 1}), got {index}")
    w = np.asarray(layers[index]["w"], np.float64)
    b = np.asarray(layers[index]["b"], np.float64)
    w_next = np.asarray(layers[index + 1]["w"], np.float64)
    width = w.shape[-1]
    if b.shape != (width,):
        raise ValueError(f"layer {index}: bias shape {b.shape} does not match width {width}")
    incoming = np.moveaxis(w, -1, 0).reshape(width, -1)
    outgoing = _outgoing(w_next, width, next_after_conv=(w.ndim == 4 and w_next.ndim == 2))
    return np.concatenate([incoming, b[:, None], outgoing], axis=1)


def relative_distances(vectors: np.ndarray) -> np.ndarray:
    """Pairwise ``2 ||v_i - v_j||^2 / (||v_i||^2 + ||v_j||^2)`` (0 for identical, 2 for orthogonal)."""
    v = np.asarray(vectors, np.float64)
    sq = np.sum(v * v, axis=1)
    gram = v @ v.T
    num = 2.0 * np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
    den = sq[:, None] + sq[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return d


def vanishing_mask(vectors: np.ndarray, threshold: float = VANISH_THRESHOLD) -> np.ndarray:
    """True for neurons whose norm is below ``threshold`` times the largest norm in the layer.

    A layer whose neurons are all exactly zero is all vanishing.
    """
    norms = np.linalg.norm(np.asarray(vectors, np.float64), axis=1)
    top = norms.max(initial=0.0)
    if top == 0.0:
        return np.ones(norms.shape, bool)
    return norms < threshold * top


def identical_groups(
    vectors: np.ndarray, keep: np.ndarray | None = None, threshold: float = IDENTICAL_THRESHOLD
) -> list[list[int]]:
    """Groups of identical neurons among those with ``keep`` True (leader clustering, see module doc)."""
    n = len(vectors)
    keep = np.ones(n, bool) if keep is None else np.asarray(keep, bool)
    close = relative_distances(vectors) < threshold
    assigned = ~keep
    groups = []
    for i in range(n):
        if assigned[i]:
            continue
        members = np.flatnonzero(close[i] & ~assigned)
        members = members[members >= i]
        assigned[members] = True
        groups.append(sorted({int(i), *map(int, members)}))
    return groups


def analyse_layer(
    vectors: np.ndarray,
    vanish_threshold: float = VANISH_THRESHOLD,
    identical_threshold: float = IDENTICAL_THRESHOLD,
) -> LayerCollapse:
    """Vanishing neurons and groups of identical neurons of one layer given its neuron vectors."""
    vanishing = vanishing_mask(vectors, vanish_threshold)
    groups = identical_groups(vectors, ~vanishing, identical_threshold)
    return LayerCollapse(width=len(vectors), vanishing=vanishing, groups=groups)


def analyse(
    layers: Layers,
    vanish_threshold: float = VANISH_THRESHOLD,
    identical_threshold: float = IDENTICAL_THRESHOLD,
) -> list[LayerCollapse]:
    """Invariant-set structure of every hidden layer of ``layers``."""
    return [
        analyse_layer(neuron_vectors(layers, i), vanish_threshold, identical_threshold) for i in range(len(layers) - 1)
    ]


def independent_fraction(
    layers: Layers,
    vanish_threshold: float = VANISH_THRESHOLD,
    identical_threshold: float = IDENTICAL_THRESHOLD,
) -> np.ndarray:
    """Fraction of independent neurons in each hidden layer, ``[len(layers) - 1]``."""
    return np.array([c.fraction for c in analyse(layers, vanish_threshold, identical_threshold)], np.float64)


def independent_fraction_batched(layers: Layers, **kw) -> np.ndarray:
    """:func:`independent_fraction` for a stack of networks (leading runs axis on every leaf): ``[R, L-1]``."""
    leaves = [np.asarray(layer["w"]) for layer in layers]
    runs = leaves[0].shape[0]
    out = []
    for r in range(runs):
        single = [{"w": np.asarray(la["w"][r]), "b": np.asarray(la["b"][r])} for la in layers]
        out.append(independent_fraction(single, **kw))
    return np.stack(out)


def _group_rows(w_next: np.ndarray, groups: Sequence[Sequence[int]], width: int, after_conv: bool):
    """Sums the incoming rows of the next layer over each group (the merged neuron's outgoing weights)."""
    if w_next.ndim == 4:
        return np.stack([w_next[:, :, list(g), :].sum(axis=2) for g in groups], axis=2)
    if after_conv:
        k = w_next.shape[0] // width
        w3 = w_next.reshape(k, width, -1)
        merged = np.stack([w3[:, list(g), :].sum(axis=1) for g in groups], axis=1)
        return merged.reshape(k * len(groups), -1)
    return np.stack([w_next[list(g)].sum(axis=0) for g in groups], axis=0)


def extract_subnetwork(
    layers: Layers, analysis: Sequence[LayerCollapse] | None = None, **kw
) -> tuple[Layers, list[list[list[int]]]]:
    """The collapsed subnetwork: vanishing neurons removed, each group of identical neurons merged into one.

    A merged neuron takes the group's mean incoming weights and bias and the *sum* of its outgoing weights, so on
    an exact invariant set the smaller network computes exactly the same function (Sec. 3: identical neurons
    contribute ``sum_j a_j sigma(w^T x + b)``; vanishing ones contribute nothing).

    Args:
      layers: the network.
      analysis: per hidden layer structure (default: :func:`analyse` with ``**kw`` thresholds).

    Returns:
      ``(smaller_layers, groups)`` where ``groups[l]`` lists, for each kept neuron of hidden layer ``l``, the
      original neurons it stands for.
    """
    if analysis is None:
        analysis = analyse(layers, **kw)
    if len(analysis) != len(layers) - 1:
        raise ValueError(f"analysis has {len(analysis)} layers, network has {len(layers) - 1} hidden")
    ws = [np.asarray(la["w"], np.float64) for la in layers]
    bs = [np.asarray(la["b"], np.float64) for la in layers]
    dtype = np.asarray(layers[0]["w"]).dtype
    all_groups = []
    for i, info in enumerate(analysis):
        groups = [list(g) for g in info.groups]
        if not groups:  # fully collapsed layer: keep one zero neuron so shapes stay valid
            groups = [[0]]
            ws[i] = ws[i] * 0.0
            bs[i] = bs[i] * 0.0
        width = ws[i].shape[-1]
        after_conv = ws[i].ndim == 4 and ws[i + 1].ndim == 2
        ws[i + 1] = _group_rows(ws[i + 1], groups, width, after_conv)
        ws[i] = np.stack([ws[i][..., g].mean(axis=-1) for g in groups], axis=-1)
        bs[i] = np.array([bs[i][g].mean() for g in groups])
        all_groups.append(groups)
    small = [{"w": jnp.asarray(w, dtype), "b": jnp.asarray(b, dtype)} for w, b in zip(ws, bs, strict=True)]
    return small, all_groups
