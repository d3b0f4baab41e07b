"""Disentanglement metrics from a discretised mutual-information matrix: MIR, MIG, InfoM, InfoC, modularity.

Every metric here is a function of one matrix I[n, f], the mutual information (nats) between neuron n's activity and
factor f, estimated with histograms the way google-research/disentanglement_lib does it
(`evaluation/metrics/utils.py`: `_histogram_discretize` and `discrete_mutual_info`):

  - each code column is cut into `num_bins` (default 20) equal-width bins between its minimum and maximum
    (np.digitize against np.histogram's edges: the maximum falls into the last bin);
  - a factor column with at most `num_bins` distinct values is used as it is (a categorical label per value, as
    for dSprites or Shapes3D); a continuous factor is binned like a code;
  - I[n, f] = sum_ab p(a, b) log(p(a, b) / (p(a) p(b))) over the joint histogram (the plug-in estimator, which
    sklearn.metrics.mutual_info_score also computes), and H[f] = I[f, f] is the factor's entropy.

The joint histograms of all (neuron, factor) pairs are one matrix product of one-hot encodings per chunk of
samples inside a jitted lax.scan, so 10^5 samples x 100 neurons take a few seconds on a CPU. The plug-in estimator
is biased upward by about (B_n - 1)(B_f - 1) / (2N) nats, which is why an entangled code scores MIR ~0.4, not 0.

Dead neurons: a neuron is *active* when its standard deviation exceeds `activity_threshold` times the largest
standard deviation of any neuron (default 0.05). Inactive neurons are left out of MIR, InfoM, InfoC and modularity
and their row of I is set to zero for MIG (a dead unit carries no information; leaving it in would only add noise).

Bad input (mismatched lengths, non-finite values, no active neuron, a constant factor, too few samples) raises
ValueError with a one-line message before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

NUM_BINS = 20
ACTIVITY_THRESHOLD = 0.05
_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class MutualInformation:
    """I[n, f] (nats) between every neuron and factor, the factors' entropies H[f], and which neurons are active."""

    mi: np.ndarray  # [num_neurons, num_factors]
    entropy: np.ndarray  # [num_factors]
    active: np.ndarray  # bool [num_neurons]


def _check_inputs(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    if codes.ndim == 1:
        codes = codes[:, None]
    if factors.ndim == 1:
        factors = factors[:, None]
    if codes.ndim != 2 or factors.ndim != 2:
        raise ValueError(
            f"codes and factors must be [samples, neurons] and [samples, factors], got {codes.shape}, {factors.shape}"
        )
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes and factors need the same number of samples, got {codes.shape[0]} and {factors.shape[0]}"
        )
    if codes.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got {codes.shape[0]}")
    if codes.shape[1] == 0 or factors.shape[1] == 0:
        raise ValueError(f"need at least one neuron and one factor, got shapes {codes.shape}, {factors.shape}")
    for name, x in (("codes", codes), ("factors", factors)):
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
        bad = ~np.isfinite(x)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"{name} hold {int(bad.sum())} non-finite values (first at sample {r}, column {c})")
    return codes.astype(np.float32), factors


def discretize_factors(factors, num_bins: int = NUM_BINS) -> tuple[np.ndarray, list[int]]:
    """Integer labels per factor column: its distinct values when there are <= num_bins, else equal-width bins.

    Returns (labels [N, F] int32, number of labels per factor). A constant factor is a ValueError (its entropy is 0,
    so every normalised metric would divide by zero).
    """
    factors = np.asarray(factors)
    if factors.ndim == 1:
        factors = factors[:, None]
    labels = np.empty(factors.shape, np.int32)
    sizes = []
    for j in range(factors.shape[1]):
        col = factors[:, j]
        values, inverse = np.unique(col, return_inverse=True)
        if values.size < 2:
            raise ValueError(f"factor {j} is constant (value {values[0]!r}): its entropy is 0")
        if values.size <= num_bins:
            labels[:, j] = inverse.reshape(-1)
            sizes.append(int(values.size))
        else:
            labels[:, j] = np.asarray(_bin_columns(jnp.asarray(col[:, None], jnp.float32), num_bins))[:, 0]
            sizes.append(int(num_bins))
    return labels, sizes


@functools.partial(jax.jit, static_argnames=("num_bins",))
def _bin_columns(x: jax.Array, num_bins: int) -> jax.Array:
    """Equal-width bins 0..num_bins-1 per column between its min and max (np.histogram + np.digitize semantics)."""
    lo = jnp.min(x, axis=0)
    hi = jnp.max(x, axis=0)
    width = jnp.where(hi > lo, hi - lo, 1.0)
    b = jnp.floor((x - lo) / width * num_bins).astype(jnp.int32)
    return jnp.clip(b, 0, num_bins - 1)


@functools.partial(jax.jit, static_argnames=("num_bins", "factor_bins", "chunk"))
def _mi_core(codes: jax.Array, labels: jax.Array, num_bins: int, factor_bins: int, chunk: int):
    """Joint histograms of every (neuron, factor) pair by chunked one-hot matmuls; returns (I [n, f], H [f])."""
    n_samples, n_neurons = codes.shape
    n_factors = labels.shape[1]
    code_bins = _bin_columns(codes, num_bins)
    n_chunks = -(-n_samples // chunk)
    pad = n_chunks * chunk - n_samples
    code_bins = jnp.pad(code_bins, ((0, pad), (0, 0)))
    labels = jnp.pad(labels, ((0, pad), (0, 0)))
    weight = jnp.pad(jnp.ones((n_samples,), jnp.float32), (0, pad))

    def body(counts, xs):
        cb, fl, w = xs
        oh_c = jax.nn.one_hot(cb, num_bins, dtype=jnp.float32).reshape(chunk, n_neurons * num_bins)
        oh_f = jax.nn.one_hot(fl, factor_bins, dtype=jnp.float32).reshape(chunk, n_factors * factor_bins)
        return counts + (oh_c * w[:, None]).T @ oh_f, None

    init = jnp.zeros((n_neurons * num_bins, n_factors * factor_bins), jnp.float32)
    xs = (
        code_bins.reshape(n_chunks, chunk, n_neurons),
        labels.reshape(n_chunks, chunk, n_factors),
        weight.reshape(n_chunks, chunk),
    )
    counts, _ = jax.lax.scan(body, init, xs)
    p = counts.reshape(n_neurons, num_bins, n_factors, factor_bins).transpose(0, 2, 1, 3) / n_samples
    pa = p.sum(axis=3, keepdims=True)
    pb = p.sum(axis=2, keepdims=True)
    ratio = jnp.where(p > 0, p / jnp.maximum(pa * pb, 1e-30), 1.0)
    mi = jnp.sum(jnp.where(p > 0, p * jnp.log(ratio), 0.0), axis=(2, 3))
    pf = pb[0, :, 0, :]  # [f, Bf]
    entropy = -jnp.sum(jnp.where(pf > 0, pf * jnp.log(jnp.where(pf > 0, pf, 1.0)), 0.0), axis=1)
    return jnp.maximum(mi, 0.0), entropy


def active_neurons(codes, activity_threshold: float = ACTIVITY_THRESHOLD) -> np.ndarray:
    """Mask of neurons whose std exceeds `activity_threshold` x the largest neuron std (none if all are constant)."""
    std = np.asarray(codes, np.float64).std(axis=0)
    top = std.max()
    if top <= 0:
        return np.zeros(std.shape, bool)
    return std > activity_threshold * top


def mutual_information(
    codes, factors, *, num_bins: int = NUM_BINS, activity_threshold: float = ACTIVITY_THRESHOLD
) -> MutualInformation:
    """The histogram estimate of I[n, f] (see the module docstring), factor entropies and the active-neuron mask.

    codes: [N, num_neurons] activities; factors: [N, num_factors] ground-truth factor values.
    """
    if not (isinstance(num_bins, (int, np.integer)) and num_bins >= 2):
        raise ValueError(f"num_bins must be an integer >= 2, got {num_bins!r}")
    if not (0 <= activity_threshold < 1):
        raise ValueError(f"activity_threshold must be in [0, 1), got {activity_threshold!r}")
    codes, factors = _check_inputs(codes, factors)
    active = active_neurons(codes, activity_threshold)
    if not active.any():
        raise ValueError(f"no active neuron: all {codes.shape[1]} code columns are constant")
    labels, sizes = discretize_factors(factors, num_bins)
    chunk = min(_CHUNK, codes.shape[0])
    mi, entropy = _mi_core(jnp.asarray(codes), jnp.asarray(labels), int(num_bins), int(max(sizes)), int(chunk))
    return MutualInformation(np.asarray(mi, np.float64), np.asarray(entropy, np.float64), active)


def _as_mi(codes_or_mi, factors, num_bins, activity_threshold) -> MutualInformation:
    if isinstance(codes_or_mi, MutualInformation):
        return codes_or_mi
    if factors is None:
        raise ValueError("factors are required unless a MutualInformation is passed")
    return mutual_information(codes_or_mi, factors, num_bins=num_bins, activity_threshold=activity_threshold)


def _normalised_max_share(m: np.ndarray, axis: int) -> np.ndarray:
    """max / sum along `axis`, rescaled so that 1/K (uniform over K entries) -> 0 and 1 -> 1; K = 1 gives 1."""
    k = m.shape[axis]
    total = m.sum(axis=axis)
    share = np.where(total > 0, m.max(axis=axis) / np.where(total > 0, total, 1.0), 1.0 / k)
    if k == 1:
        return np.ones_like(share)
    return (share - 1.0 / k) / (1.0 - 1.0 / k)


def mir(codes, factors=None, *, num_bins: int = NUM_BINS, activity_threshold: float = ACTIVITY_THRESHOLD) -> float:
    """Mutual information ratio (the paper's App. A.1): how much each active neuron codes a single factor.

    r_n = max_f I[n, f] / sum_f I[n, f] over active neurons n; MIR = (mean_n r_n - 1/F) / (1 - 1/F), so a code
    whose every neuron depends on one factor scores 1 and one whose neurons spread information evenly scores 0.
    A neuron with zero information about every factor counts as r_n = 1/F. Accepts codes and factors, or a
    MutualInformation from `mutual_information` (then `factors` is not needed).
    """
    m = _as_mi(codes, factors, num_bins, activity_threshold)
    return float(np.mean(_normalised_max_share(m.mi[m.active], axis=1)))


def mig(codes, factors=None, *, num_bins: int = NUM_BINS, activity_threshold: float = ACTIVITY_THRESHOLD) -> float:
    """Mutual information gap (Chen et al. 2018, "Isolating sources of disentanglement in VAEs"; disentanglement_lib).

    MIG = mean over factors f of (I[n1, f] - I[n2, f]) / H[f], where n1, n2 are the neurons with the largest and
    second-largest information about f (inactive neurons count as zero information). 1: each factor is captured by
    exactly one neuron; a duplicated neuron scores 0 for its factor. With a single neuron the gap is I[n1, f] / H[f].
    """
    m = _as_mi(codes, factors, num_bins, activity_threshold)
    mi = np.where(m.active[:, None], m.mi, 0.0)
    top = np.sort(mi, axis=0)[::-1]
    second = top[1] if top.shape[0] > 1 else np.zeros_like(top[0])
    return float(np.mean((top[0] - second) / m.entropy))


def info_m(codes, factors=None, *, num_bins: int = NUM_BINS, activity_threshold: float = ACTIVITY_THRESHOLD) -> float:
    """InfoM, the modularity part of InfoMEC (Hsu, Dorrell, Whittington, Wu, Finn 2023, "Disentanglement via latent
    quantization"): MIR computed on the normalised matrix NMI[n, f] = I[n, f] / H[f], over active neurons.

    InfoM = (mean_n max_f NMI[n, f] / sum_f NMI[n, f] - 1/F) / (1 - 1/F).
    """
    m = _as_mi(codes, factors, num_bins, activity_threshold)
    nmi = m.mi[m.active] / m.entropy[None, :]
    return float(np.mean(_normalised_max_share(nmi, axis=1)))


def info_c(codes, factors=None, *, num_bins: int = NUM_BINS, activity_threshold: float = ACTIVITY_THRESHOLD) -> float:
    """InfoC, the compactness part of InfoMEC (Hsu et al. 2023): how much each factor lives in a single neuron.

    InfoC = (mean_f max_n NMI[n, f] / sum_n NMI[n, f] - 1/N_a) / (1 - 1/N_a) over the N_a active neurons
    (NMI = I / H[f]); a duplicated neuron halves its factor's share. With one active neuron it is 1.
    """
    m = _as_mi(codes, factors, num_bins, activity_threshold)
    nmi = m.mi[m.active] / m.entropy[None, :]
    return float(np.mean(_normalised_max_share(nmi, axis=0)))


def modularity(
    codes, factors=None, *, num_bins: int = NUM_BINS, activity_threshold: float = ACTIVITY_THRESHOLD
) -> float:
    """Modularity (Ridgeway & Mozer 2018, "Learning deep disentangled embeddings with the F-statistic loss"), as in
    disentanglement_lib `modularity_explicitness.py`, over active neurons.

    For neuron n with theta_n = max_f I[n, f]: delta_n = (sum_f I[n, f]^2 - theta_n^2) / (theta_n^2 (F - 1)),
    modularity_n = 1 - delta_n (0 for a neuron with no information); the score is the mean over neurons.
    """
    m = _as_mi(codes, factors, num_bins, activity_threshold)
    sq = np.square(m.mi[m.active])
    f = sq.shape[1]
    theta2 = sq.max(axis=1)
    if f == 1:
        return float(np.mean(np.where(theta2 > 0, 1.0, 0.0)))
    delta = (sq.sum(axis=1) - theta2) / np.where(theta2 > 0, theta2 * (f - 1), 1.0)
    return float(np.mean(np.where(theta2 > 0, 1.0 - delta, 0.0)))


def scores(
    codes, factors=None, *, num_bins: int = NUM_BINS, activity_threshold: float = ACTIVITY_THRESHOLD
) -> dict[str, float]:
    """Every metric from one MI estimate: {'mir', 'mig', 'info_m', 'info_c', 'modularity', 'num_active'}."""
    m = _as_mi(codes, factors, num_bins, activity_threshold)
    return {
        "mir": mir(m),
        "mig": mig(m),
        "info_m": info_m(m),
        "info_c": info_c(m),
        "modularity": modularity(m),
        "num_active": int(m.active.sum()),
    }
