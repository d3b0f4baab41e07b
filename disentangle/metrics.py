"""Disentanglement metrics from a discretised mutual-information matrix: MIR, MIG, InfoM, InfoC, modularity.

A tool for any (codes, factors) pair of arrays:

    from disentangle import metrics
    m = metrics.mutual_information(codes, factors, factor_bins=20)   # codes [N, latents], factors [N, factors]
    metrics.scores(m)   # {'mir', 'mig', 'info_m', 'info_c', 'modularity', 'num_active'}

Every metric is a function of one matrix I[n, f], the mutual information (nats) between latent n and factor f,
estimated the way google-research/disentanglement_lib does it (`evaluation/metrics/utils.py`, the
`histogram_discretizer` with `num_bins = 20` of its MIG config, then `sklearn.metrics.mutual_info_score`):

  - each code column is cut into `num_bins` equal-width bins between its minimum and maximum (np.histogram's edges,
    np.digitize against all but the last edge: the maximum falls into the last bin; a constant column is one bin);
  - factors: with `factor_bins=None` (disentanglement_lib's protocol) every distinct value of a factor is a class of
    its own. That is right for discrete ground truth (dSprites, Shapes3D) and wrong for a continuous factor, where
    every sample is its own class, H[f] = log N and MIG collapses towards 0. `factor_bins=B` bins a factor that has
    more than B distinct values into B equal-width bins like a code (a factor with at most B values stays as it is).
    The binning is always this explicit argument, never a guess;
  - I[n, f] = sum_ab p(a, b) log(p(a, b) / (p(a) p(b))) over the joint histogram (the plug-in estimator), and
    H[f] = I[f, f] is the factor's entropy.

Scale: every metric is invariant to rescaling and shifting any latent (the bins follow each latent's own range), as
in disentanglement_lib. A constant latent carries zero information; it is *inactive* and left out of MIR, InfoM,
InfoC and modularity (in MIG a zero row changes nothing). The optional `activity_threshold` (default 0: off) also
marks inactive every latent whose standard deviation is below that fraction of the largest one: the paper's reading
of "active neurons" for energy-constrained codes, where a silent neuron costs nothing. It makes the scores depend on
the latents' relative scales, so it is off unless asked for, and disentanglement_lib has no such rule.

The plug-in estimator is biased upward by about (B_n - 1)(B_f - 1) / (2N) nats, which is why an entangled code
scores MIR ~0.4 with 20-bin factors, not 0. Joint histograms are integer bincounts (numpy, no compilation).

Bad input (mismatched lengths, non-finite values, no informative latent, a constant factor, too few samples, a bad
bin count) raises ValueError with a one-line message.
"""

from __future__ import annotations

import dataclasses

import numpy as np

NUM_BINS = 20
_MAX_CELLS = 1 << 24  # joint-histogram cells per bincount call (memory bound for many-valued factors)


@dataclasses.dataclass(frozen=True)
class MutualInformation:
    """I[n, f] (nats) between every latent and factor, the factors' entropies H[f], and which latents are active."""

    mi: np.ndarray  # [num_latents, num_factors]
    entropy: np.ndarray  # [num_factors]
    active: np.ndarray  # bool [num_latents]


def _as_2d(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be [samples, columns], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or x.dtype == bool:
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    return x


def _check_inputs(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    codes, factors = _as_2d(codes, "codes"), _as_2d(factors, "factors")
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes and factors need the same number of samples, got {codes.shape[0]} and {factors.shape[0]}"
        )
    if codes.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got {codes.shape[0]}")
    if codes.shape[1] == 0 or factors.shape[1] == 0:
        raise ValueError(f"need at least one latent and one factor, got shapes {codes.shape}, {factors.shape}")
    for name, x in (("codes", codes), ("factors", factors)):
        bad = ~np.isfinite(x)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"{name} hold {int(bad.sum())} non-finite values (first at sample {r}, column {c})")
    return codes, factors


def _check_bins(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 2):
        raise ValueError(f"{name} must be an integer >= 2{' or None' if allow_none else ''}, got {value!r}")


def histogram_discretize(x, num_bins: int = NUM_BINS) -> np.ndarray:
    """Equal-width bin index 0..num_bins-1 of every column of x [N, K] (disentanglement_lib's histogram
    discretizer: np.digitize against np.histogram's edges without the last, so the maximum is in the last bin)."""
    x = _as_2d(x, "x")
    out = np.empty(x.shape, np.int64)
    for j in range(x.shape[1]):
        edges = np.histogram_bin_edges(x[:, j], num_bins)
        out[:, j] = np.digitize(x[:, j], edges[:-1]) - 1
    return out


def discretize_factors(factors, factor_bins: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Integer labels 0..K_f-1 per factor column and the number of labels K_f of each.

    factor_bins=None: every distinct value is a class (disentanglement_lib). factor_bins=B: a column with more than B
    distinct values is cut into B equal-width bins, others keep one class per value. A constant factor is a
    ValueError (its entropy is 0, so every normalised metric would divide by zero).
    """
    _check_bins("factor_bins", factor_bins, allow_none=True)
    factors = _as_2d(factors, "factors")
    labels = np.empty(factors.shape, np.int64)
    sizes = []
    for j in range(factors.shape[1]):
        values, inverse = np.unique(factors[:, j], return_inverse=True)
        if values.size < 2:
            raise ValueError(f"factor {j} is constant (value {values[0]!r}): its entropy is 0")
        if factor_bins is None or values.size <= factor_bins:
            labels[:, j] = inverse.reshape(-1)
        else:
            labels[:, j] = histogram_discretize(factors[:, j], factor_bins)[:, 0]
        sizes.append(int(labels[:, j].max()) + 1)
    return labels, sizes


def _plug_in_mi(counts: np.ndarray, n: int) -> np.ndarray:
    """I from joint counts [..., A, B] (plug-in, nats)."""
    p = counts / n
    pa = p.sum(-1, keepdims=True)
    pb = p.sum(-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / (pa * pb)), 0.0)
    return np.maximum(terms.sum((-2, -1)), 0.0)


def _mi_matrix(code_bins: np.ndarray, labels: np.ndarray, num_bins: int, sizes: list[int]) -> np.ndarray:
    """I[n, f] from binned codes [N, L] and factor labels [N, F], one bincount per factor and block of latents."""
    n, num_latents = code_bins.shape
    mi = np.zeros((num_latents, labels.shape[1]))
    for f, k in enumerate(sizes):
        block = max(1, _MAX_CELLS // (num_bins * k))
        for lo in range(0, num_latents, block):
            cb = code_bins[:, lo : lo + block]
            offset = np.arange(cb.shape[1]) * (num_bins * k)
            flat = (cb * k + labels[:, f : f + 1] + offset).ravel()
            counts = np.bincount(flat, minlength=cb.shape[1] * num_bins * k).reshape(cb.shape[1], num_bins, k)
            mi[lo : lo + block, f] = _plug_in_mi(counts.astype(np.float64), n)
    return mi


def _entropy(labels: np.ndarray, sizes: list[int]) -> np.ndarray:
    n = labels.shape[0]
    out = []
    for f, k in enumerate(sizes):
        p = np.bincount(labels[:, f], minlength=k) / n
        p = p[p > 0]
        out.append(float(-(p * np.log(p)).sum()))
    return np.asarray(out)


def mutual_information(
    codes, factors, *, num_bins: int = NUM_BINS, factor_bins: int | None = None, activity_threshold: float = 0.0
) -> MutualInformation:
    """The histogram estimate of I[n, f] (see the module docstring), factor entropies and the active-latent mask.

    codes: [N, num_latents] activities (any float dtype, any scale); factors: [N, num_factors] ground-truth values.
    num_bins: bins per latent. factor_bins: None (each factor value a class, disentanglement_lib) or the number of
    equal-width bins for a many-valued (continuous) factor. activity_threshold: 0 (scale-invariant: only constant
    latents are inactive) or the fraction of the largest latent std below which a latent is inactive.
    """
    _check_bins("num_bins", num_bins)
    if not (0 <= activity_threshold < 1):
        raise ValueError(f"activity_threshold must be in [0, 1), got {activity_threshold!r}")
    codes, factors = _check_inputs(codes, factors)
    labels, sizes = discretize_factors(factors, factor_bins)
    code_bins = histogram_discretize(codes, num_bins)
    active = code_bins.min(axis=0) < code_bins.max(axis=0)  # a constant latent is one bin: no information
    mi = np.where(active[:, None], _mi_matrix(code_bins, labels, int(num_bins), sizes), 0.0)
    if activity_threshold > 0:
        std = codes.astype(np.float64).std(axis=0)
        active &= std > activity_threshold * std.max()
    if not active.any():
        raise ValueError(f"no active latent: all {codes.shape[1]} code columns are constant")
    return MutualInformation(mi, _entropy(labels, sizes), active)


def _as_mi(codes_or_mi, factors, kw) -> MutualInformation:
    if isinstance(codes_or_mi, MutualInformation):
        return codes_or_mi
    if factors is None:
        raise ValueError("factors are required unless a MutualInformation is passed")
    return mutual_information(codes_or_mi, factors, **kw)


def _normalised_max_share(m: np.ndarray, axis: int) -> np.ndarray:
    """max / sum along `axis`, rescaled so that 1/K (uniform over K entries) -> 0 and 1 -> 1; K = 1 gives 1."""
    k = m.shape[axis]
    total = m.sum(axis=axis)
    share = np.where(total > 0, m.max(axis=axis) / np.where(total > 0, total, 1.0), 1.0 / k)
    if k == 1:
        return np.ones_like(share)
    return (share - 1.0 / k) / (1.0 - 1.0 / k)


def mir(codes, factors=None, **kw) -> float:
    """Mutual information ratio (the paper's App. A.1): how much each active latent codes a single factor.

    r_n = max_f I[n, f] / sum_f I[n, f] over active latents n; MIR = (mean_n r_n - 1/F) / (1 - 1/F), so a code
    whose every latent depends on one factor scores 1 and one whose latents spread information evenly scores 0.
    Accepts codes and factors (keywords as `mutual_information`), or a MutualInformation.
    """
    m = _as_mi(codes, factors, kw)
    return float(np.mean(_normalised_max_share(m.mi[m.active], axis=1)))


def mig(codes, factors=None, **kw) -> float:
    """Mutual information gap (Chen et al. 2018, "Isolating sources of disentanglement in VAEs"; disentanglement_lib
    `mig.py`).

    MIG = mean over factors f of (I[n1, f] - I[n2, f]) / H[f], where n1, n2 are the latents with the largest and
    second-largest information about f (inactive latents count as zero information). 1: each factor is captured by
    exactly one latent; a duplicated latent scores 0 for its factor. With a single latent the gap is I[n1, f] / H[f].
    """
    m = _as_mi(codes, factors, kw)
    mi = np.where(m.active[:, None], m.mi, 0.0)
    top = np.sort(mi, axis=0)[::-1]
    second = top[1] if top.shape[0] > 1 else np.zeros_like(top[0])
    return float(np.mean((top[0] - second) / m.entropy))


def info_m(codes, factors=None, **kw) -> float:
    """InfoM, the modularity part of InfoMEC (Hsu, Dorrell, Whittington, Wu, Finn 2023, "Disentanglement via latent
    quantization"): MIR computed on the normalised matrix NMI[n, f] = I[n, f] / H[f], over active latents.

    InfoM = (mean_n max_f NMI[n, f] / sum_f NMI[n, f] - 1/F) / (1 - 1/F).
    """
    m = _as_mi(codes, factors, kw)
    nmi = m.mi[m.active] / m.entropy[None, :]
    return float(np.mean(_normalised_max_share(nmi, axis=1)))


def info_c(codes, factors=None, **kw) -> float:
    """InfoC, the compactness part of InfoMEC (Hsu et al. 2023): how much each factor lives in a single latent.

    InfoC = (mean_f max_n NMI[n, f] / sum_n NMI[n, f] - 1/N_a) / (1 - 1/N_a) over the N_a active latents
    (NMI = I / H[f]); a duplicated latent halves its factor's share. With one active latent it is 1.
    """
    m = _as_mi(codes, factors, kw)
    nmi = m.mi[m.active] / m.entropy[None, :]
    return float(np.mean(_normalised_max_share(nmi, axis=0)))


def modularity(codes, factors=None, **kw) -> float:
    """Modularity (Ridgeway & Mozer 2018, "Learning deep disentangled embeddings with the F-statistic loss"), as in
    disentanglement_lib `modularity_explicitness.py`, over active latents.

    For latent n with theta_n = max_f I[n, f]: delta_n = (sum_f I[n, f]^2 - theta_n^2) / (theta_n^2 (F - 1)),
    modularity_n = 1 - delta_n (0 for a latent with no information); the score is the mean over active latents.
    """
    m = _as_mi(codes, factors, kw)
    sq = np.square(m.mi[m.active])
    f = sq.shape[1]
    theta2 = sq.max(axis=1)
    if f == 1:
        return 1.0
    delta = (sq.sum(axis=1) - theta2) / np.where(theta2 > 0, theta2 * (f - 1), 1.0)
    return float(np.mean(np.where(theta2 > 0, 1.0 - delta, 0.0)))  # no information: 0, as disentanglement_lib


def scores(codes, factors=None, **kw) -> dict[str, float]:
    """Every metric from one MI estimate: {'mir', 'mig', 'info_m', 'info_c', 'modularity', 'num_active'}."""
    m = _as_mi(codes, factors, kw)
    return {
        "mir": mir(m),
        "mig": mig(m),
        "info_m": info_m(m),
        "info_c": info_c(m),
        "modularity": modularity(m),
        "num_active": int(m.active.sum()),
    }
