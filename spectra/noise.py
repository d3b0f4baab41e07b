"""The noise level of Y = S + noise: the Marchenko-Pastur constants of Gavish and Donoho, their median rule, and the
fit of the extensive spike model's spectrum to the data's singular values (the default, `DEFAULT_NOISE`)."""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import integrate, optimize

from spectra import theory

# ------------------------------------------------------------------------------------------------
# Marchenko-Pastur helpers (Gavish-Donoho constants).


@functools.lru_cache(maxsize=256)
def mp_median(c: float) -> float:
    """Median of the Marchenko-Pastur eigenvalue law of X X^T (X N x M, var 1/M, c = N/M <= 1)."""
    lo, hi = (1 - math.sqrt(c)) ** 2, (1 + math.sqrt(c)) ** 2

    def pdf(x):
        return math.sqrt(max((hi - x) * (x - lo), 0.0)) / (2 * math.pi * c * x)

    def cdf(x):
        return integrate.quad(pdf, lo, x, limit=200)[0]

    return float(optimize.brentq(lambda x: cdf(x) - 0.5, lo, hi, xtol=1e-12))


def hard_threshold_coef(c: float) -> float:
    """Gavish-Donoho optimal hard threshold lambda*(c) in units where the noise edge is 1 +
    sqrt(c)."""
    return math.sqrt(2 * (c + 1) + 8 * c / (c + 1 + math.sqrt(c * c + 14 * c + 1)))


def hard_threshold_omega(c: float) -> float:
    """omega(c) = lambda*(c) / sqrt(mu_c): threshold in units of the median singular value (sigma
    unknown)."""
    return hard_threshold_coef(c) / math.sqrt(mp_median(c))


# ------------------------------------------------------------------------------------------------
# Input handling and the shared decomposition.


ESTIMATE = "estimate"  # noise_std value: fit the noise level (fit_noise_std)
MEDIAN = "median"  # noise_std value: Gavish-Donoho median rule (biased by extensive signals)
DEFAULT_NOISE = ESTIMATE  # the noise rule of every estimator here and of the command line when none is given


def _check_sigma(noise_std) -> float | str | None:
    if noise_std is None or (isinstance(noise_std, str) and noise_std in (ESTIMATE, MEDIAN)):
        return noise_std
    try:
        s = float(noise_std)
    except (TypeError, ValueError):
        raise ValueError(f"noise_std must be a number > 0, {ESTIMATE!r} or {MEDIAN!r}, got {noise_std!r}") from None
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"noise_std must be a finite number > 0, got {noise_std}")
    return s


def median_noise_std(y_raw: np.ndarray, m: int, c: float) -> float:
    """Gavish-Donoho (2014) noise level from singular values y_raw of an N x M matrix (N <= M):
    median(y) / sqrt(M mu_c). Consistent for low-rank signals, biased upwards by extensive ones."""
    return float(np.median(y_raw)) / math.sqrt(m * mp_median(c))


_FIT_LEVELS = (np.arange(100) + 0.5) / 100


def fit_noise_std(y_raw: np.ndarray, m: int, c: float) -> float:
    """Noise level fitted to the whole spectrum: the ESM spectrum (b, s) and scale sigma whose
    singular-value quantiles (theory.esm_quantiles) best match the data's, in least squares.

    sigma is profiled out in closed form for each (b, s); (b, s) is found on a coarse grid refined
    twice around the best cell, each grid one batched theory solve. Unbiased when the signal is an
    ESM (any b, s, including pure noise); for other signal spectra it is the best ESM description
    (bias measured in the README).
    """
    y = np.sort(np.asarray(y_raw, dtype=np.float64))
    q_emp = np.quantile(y, _FIT_LEVELS)
    unit = float(q_emp[-1])
    if not unit > 0:
        raise ValueError("Y: cannot estimate the noise level (most singular values are 0)")
    q_emp = q_emp / unit

    def losses(bs, ss):
        qt = theory.esm_quantiles(bs, ss, c, _FIT_LEVELS)
        a = (qt @ q_emp) / np.maximum(np.sum(qt * qt, 1), 1e-300)  # q_emp ~ a q_theory
        return np.sum((q_emp[None] - a[:, None] * qt) ** 2, 1), a

    lb, ss = np.meshgrid(np.log(np.geomspace(0.01, 0.95, 9)), np.geomspace(0.3, 8.0, 12))
    lb, ss = lb.ravel(), ss.ravel()
    db, ds = 0.5, 0.35
    best = (np.inf, 1.0)
    for _ in range(3):
        loss, a = losses(np.exp(lb), ss)
        i = int(np.argmin(loss))
        best = (float(loss[i]), float(a[i]))
        b0, s0 = lb[i], ss[i]
        g = np.linspace(-1.0, 1.0, 5)
        lb_g, ls_g = np.meshgrid(b0 + db * g, math.log(s0) + ds * g)
        lb, ss = np.minimum(lb_g, math.log(0.999)).ravel(), np.maximum(np.exp(ls_g), 0.05).ravel()
        db, ds = db / 2.5, ds / 2.5
    return best[1] * unit / math.sqrt(m)
