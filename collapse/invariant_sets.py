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

import jax
import jax.numpy as jnp
import numpy as np

from collapse import models
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

    @property
    def vanishing_fraction(self) -> float:
        """Fraction of the layer's neurons that vanish."""
        return float(np.sum(self.vanishing)) / self.width

    @property
    def merged_fraction(self) -> float:
        """Fraction of the layer's neurons merged into another one (non-vanishing neurons minus groups); with
        :attr:`vanishing_fraction` and :attr:`fraction` it sums to 1."""
        return (self.width - int(np.sum(self.vanishing)) - self.independent) / self.width


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
    layers,
    vanish_threshold: float = VANISH_THRESHOLD,
    identical_threshold: float = IDENTICAL_THRESHOLD,
    scheme: str = "exact",
    norm_params: bool = True,
) -> np.ndarray:
    """Fraction of independent neurons in each analysed layer: every hidden layer of a list of layers
    (``[len(layers) - 1]``), or the layers of :func:`layer_names` of a ResNet (``scheme``, ``norm_params`` as in
    :func:`resnet_neuron_layers`)."""
    return collapse_fractions(layers, vanish_threshold, identical_threshold, scheme, norm_params)[:, 0]


def collapse_fractions(
    layers,
    vanish_threshold: float = VANISH_THRESHOLD,
    identical_threshold: float = IDENTICAL_THRESHOLD,
    scheme: str = "exact",
    norm_params: bool = True,
) -> np.ndarray:
    """``[layers, 3]``: per analysed layer the fractions of independent, vanishing and merged neurons (they sum
    to 1), separating the two kinds of invariant set a layer collapsed onto."""
    if models.is_resnet(layers):
        res = [c for _, c in analyse_resnet(layers, scheme, norm_params, vanish_threshold, identical_threshold)]
    else:
        res = analyse(layers, vanish_threshold, identical_threshold)
    return np.array([[c.fraction, c.vanishing_fraction, c.merged_fraction] for c in res], np.float64).reshape(-1, 3)


def collapse_fractions_batched(layers, **kw) -> np.ndarray:
    """:func:`collapse_fractions` for a stack of networks: ``[R, layers, 3]``."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(layers)]
    treedef = jax.tree.structure(layers)
    return np.stack(
        [collapse_fractions(jax.tree.unflatten(treedef, [x[r] for x in leaves]), **kw) for r in range(len(leaves[0]))]
    )


def independent_fraction_batched(layers, **kw) -> np.ndarray:
    """:func:`independent_fraction` for a stack of networks (leading runs axis on every leaf): ``[R, layers]``."""
    return collapse_fractions_batched(layers, **kw)[..., 0]


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


# ----------------------------------------------------------------------------------------------------------
# ResNet (collapse.models.init_resnet): which channels are neurons.
#
# scheme="exact" (default): the true invariant sets of a BatchNorm ResNet.
#   * block-inner channel c (output of conv1 -> bn1 -> act, read only by conv2): incoming = conv1[..., c] and
#     bn1 (scale, bias)[c]; outgoing = conv2[:, :, c, :]. Vanishing (conv1 slice, bn1 bias and conv2 slice zero;
#     the BN output is then exactly the bias) and identical channels are invariant under SGD for any minibatch
#     with BatchNorm in training mode (tested).
#   * residual-stream channel c of a stage: every writer of the stream (the stem or the stage's projection
#     shortcut, and each block's conv2, each with its BN scale/bias) and every reader (each later block's conv1,
#     the next stage's conv1 and shortcut, or the dense head) contributes its slice for c, so one stream channel
#     is one neuron spanning all of them; the identity shortcuts carry nothing of their own.
# scheme="chain": the released notebook's rule (FIG3_FIG4): the 17 convolutions (stem, then conv1, conv2 of each
#   block) read as a plain chain; the neuron of conv i is [its output-channel kernel slice, the next conv's
#   input-channel slice] (head rows after the last), no BatchNorm parameters, shortcuts and skip readers ignored.
#   Only the conv1 entries of this chain are exact invariant sets.
# norm_params=False drops the BN scale/bias from the exact scheme's neurons (weights only, like the notebook).

RESNET_SCHEMES = ("exact", "chain")


def _out_rows(w: np.ndarray) -> np.ndarray:
    """A kernel's output channels as rows (the channel's incoming weights)."""
    return np.moveaxis(np.asarray(w, np.float64), -1, 0).reshape(w.shape[-1], -1)


def _in_rows(w: np.ndarray) -> np.ndarray:
    """A kernel's (HWIO) or dense ``[in, out]`` input channels as rows (the channel's outgoing weights)."""
    w = np.asarray(w, np.float64)
    if w.ndim == 4:
        return np.moveaxis(w, 2, 0).reshape(w.shape[2], -1)
    return w


def _bn_rows(bn: dict) -> np.ndarray:
    return np.stack([np.asarray(bn["scale"], np.float64), np.asarray(bn["bias"], np.float64)], axis=1)


def resnet_neuron_layers(params: dict, scheme: str = "exact", norm_params: bool = True) -> list[tuple[str, np.ndarray]]:
    """The analysed layers of a ResNet as ``(name, neuron vectors [width, dim])`` in depth order.

    ``exact``: per stage, ``layer{s}.{b}.inner`` for each block, then ``layer{s}.stream``; ``chain``: ``conv1``
    (stem), ``layer{s}.{b}.conv1``, ``layer{s}.{b}.conv2`` (see the comment above for what each neuron holds).
    """
    if scheme not in RESNET_SCHEMES:
        raise ValueError(f"scheme must be one of {RESNET_SCHEMES}, got {scheme!r}")
    stages = params["stages"]
    if scheme == "chain":
        convs = [("conv1", params["stem"]["w"])]
        for s, stage in enumerate(stages):
            for b, blk in enumerate(stage):
                convs += [(f"layer{s + 1}.{b}.conv1", blk["conv1"]), (f"layer{s + 1}.{b}.conv2", blk["conv2"])]
        readers = [w for _, w in convs[1:]] + [params["head"]["w"]]
        return [
            (name, np.concatenate([_out_rows(w), _in_rows(nxt)], axis=1))
            for (name, w), nxt in zip(convs, readers, strict=True)
        ]

    def writer(w, bn):
        parts = [_out_rows(w)] + ([_bn_rows(bn)] if norm_params else [])
        return np.concatenate(parts, axis=1)

    out = []
    stream_w = [writer(params["stem"]["w"], params["stem"]["bn"])]
    stream_r: list[np.ndarray] = []
    for s, stage in enumerate(stages):
        for b, blk in enumerate(stage):
            inner = np.concatenate([writer(blk["conv1"], blk["bn1"]), _in_rows(blk["conv2"])], axis=1)
            stream_r.append(_in_rows(blk["conv1"]))
            if "short" in blk:
                if b != 0 or s == 0:
                    raise ValueError(f"layer{s + 1}.{b}: a projection shortcut is expected only at a stage start")
                stream_r.append(_in_rows(blk["short"]))
                out.append((f"layer{s}.stream", np.concatenate(stream_w + stream_r, axis=1)))
                stream_w = [writer(blk["short"], blk["short_bn"])]
                stream_r = []
            elif b == 0 and s > 0:
                raise ValueError(f"layer{s + 1}.0 has no projection shortcut")
            stream_w.append(writer(blk["conv2"], blk["bn2"]))
            out.append((f"layer{s + 1}.{b}.inner", inner))
    stream_r.append(_in_rows(params["head"]["w"]))
    out.append((f"layer{len(stages)}.stream", np.concatenate(stream_w + stream_r, axis=1)))
    order = {name: i for i, name in enumerate(resnet_layer_names(params, "exact"))}
    return sorted(out, key=lambda item: order[item[0]])


def resnet_layer_names(params: dict, scheme: str = "exact") -> list[str]:
    """Names of the analysed ResNet layers in depth order (see :func:`resnet_neuron_layers`)."""
    if scheme == "chain":
        names = ["conv1"]
        for s, stage in enumerate(params["stages"]):
            for b in range(len(stage)):
                names += [f"layer{s + 1}.{b}.conv1", f"layer{s + 1}.{b}.conv2"]
        return names
    names = []
    for s, stage in enumerate(params["stages"]):
        names += [f"layer{s + 1}.{b}.inner" for b in range(len(stage))] + [f"layer{s + 1}.stream"]
    return names


def analyse_resnet(
    params: dict,
    scheme: str = "exact",
    norm_params: bool = True,
    vanish_threshold: float = VANISH_THRESHOLD,
    identical_threshold: float = IDENTICAL_THRESHOLD,
) -> list[tuple[str, LayerCollapse]]:
    """Vanishing neurons and identical groups of every analysed ResNet layer, ``(name, LayerCollapse)``."""
    return [
        (name, analyse_layer(v, vanish_threshold, identical_threshold))
        for name, v in resnet_neuron_layers(params, scheme, norm_params)
    ]


def layer_names(params, scheme: str = "exact") -> list[str]:
    """Names of the analysed layers of a network: ``fc1, fc2, ...`` / ``conv1, ...`` for a list of layers
    (dense / convolution), the ResNet names of :func:`resnet_layer_names` otherwise."""
    if models.is_resnet(params):
        return resnet_layer_names(params, scheme)
    return [f"{'conv' if np.ndim(la['w']) == 4 else 'fc'}{i + 1}" for i, la in enumerate(params[:-1])]


def extract_resnet(
    params: dict,
    stats: dict | None = None,
    analysis: Sequence[tuple[str, LayerCollapse]] | None = None,
    **kw,
) -> tuple[dict, dict | None, dict[str, list[list[int]]]]:
    """The collapsed ResNet: in every block, vanishing inner channels removed and identical ones merged.

    A merged channel takes its group's mean conv1 slice, BN scale/bias (and running mean/variance) and the *sum*
    of its conv2 input slices. On the exact invariant set a member channel's pre-BN activations, hence its batch
    statistics and BN output, equal the merged channel's, so the smaller ResNet computes the same function in
    training and (with equal running statistics) evaluation mode. Residual-stream channels are not removed.

    Args:
      params: the ResNet.
      stats: its running BatchNorm statistics (optional).
      analysis: ``analyse_resnet(params, "exact")`` output (computed with ``**kw`` thresholds when None).

    Returns:
      ``(small_params, small_stats, groups)``; ``groups["layer{s}.{b}.inner"]`` lists, per kept channel, the
      original channels it stands for. Blocks may end up with different inner widths (shapes drive the model).
    """
    if analysis is None:
        analysis = analyse_resnet(params, "exact", **kw)
    found = dict(analysis)
    small = jax.tree.map(np.asarray, params)
    small_stats = None if stats is None else jax.tree.map(np.asarray, stats)
    groups_out: dict[str, list[list[int]]] = {}
    for s, stage in enumerate(small["stages"]):
        for b, blk in enumerate(stage):
            name = f"layer{s + 1}.{b}.inner"
            if name not in found:
                raise ValueError(f"analysis has no entry {name!r} (use scheme='exact')")
            groups = [list(g) for g in found[name].groups]
            dtype = blk["conv1"].dtype
            if not groups:  # every channel vanishes: keep one zero channel so shapes stay valid
                groups = [[0]]
                blk["conv1"] = blk["conv1"] * 0
                blk["bn1"] = {"scale": blk["bn1"]["scale"], "bias": blk["bn1"]["bias"] * 0}
                blk["conv2"] = blk["conv2"] * 0

            def mean(a, axis=-1, groups=groups, dtype=dtype):
                a64 = np.asarray(a, np.float64)
                return np.stack([np.take(a64, g, axis=axis).mean(axis=axis) for g in groups], axis=axis).astype(dtype)

            blk["conv1"] = mean(blk["conv1"])
            blk["bn1"] = {k: mean(v) for k, v in blk["bn1"].items()}
            c2 = np.asarray(blk["conv2"], np.float64)
            blk["conv2"] = np.stack([c2[:, :, g, :].sum(axis=2) for g in groups], axis=2).astype(dtype)
            if small_stats is not None:
                st = small_stats["stages"][s][b]
                st["bn1"] = {k: mean(v) for k, v in st["bn1"].items()}
            groups_out[name] = groups
    to_jnp = lambda t: jax.tree.map(jnp.asarray, t)  # noqa: E731
    return to_jnp(small), (None if small_stats is None else to_jnp(small_stats)), groups_out
