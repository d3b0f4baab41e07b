"""Data sets as numpy arrays: tfds when the set is on disk, scikit-learn digits as an offline fallback, synthetic sets.

    ds = data.load("mnist", "train", data_dir=config.data_dir, allow_fallback=config.allow_fallback)
    ds.source   # "tfds:mnist" or "sklearn:digits (fallback for tfds:mnist)": record it in results.json

No download is attempted: this project runs on machines without internet. The tfds path uses `tfds.load` where
TensorFlow is installed and `tfds.data_source` (array_record, no TensorFlow) otherwise; `data_dir` defaults to
$TFDS_DATA_DIR, then tfds' own default. Images are float32 in [0, 1], shape [N, H, W, C]; labels int32.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable, Iterator

import numpy as np
from absl import logging


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Arrays of one split. `num_classes` is 0 for regression targets. `source` names where the data came from."""

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    source: str

    def __len__(self) -> int:
        return int(self.x.shape[0])


class DataUnavailable(Exception):
    """The requested data set is not available offline and no fallback was allowed."""


def _tfds_data_dir(data_dir: str | None) -> str | None:
    return data_dir or os.environ.get("TFDS_DATA_DIR") or None


def _from_tfds(name: str, split: str, data_dir: str | None) -> Dataset:
    import tensorflow_datasets as tfds

    if importlib.util.find_spec("tensorflow") is not None:
        arrays = tfds.as_numpy(tfds.load(name, split=split, data_dir=data_dir, batch_size=-1, download=False))
        images, labels = arrays["image"], arrays["label"]
        info = tfds.builder(name, data_dir=data_dir).info
    else:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        n = len(source)
        if n == 0:
            raise DataUnavailable(f"tfds:{name} split {split!r} is empty")
        records = [source[i] for i in range(n)]
        images = np.stack([r["image"] for r in records])
        labels = np.asarray([r["label"] for r in records])
        info = source.dataset_info
    num_classes = int(info.features["label"].num_classes)
    x = np.asarray(images, dtype=np.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    return Dataset(x, np.asarray(labels, dtype=np.int32), num_classes, f"tfds:{name}")


def digits(split: str = "train", *, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 real images, ships offline), a fixed 80/20 train/test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int32)
    perm = np.random.default_rng(0).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    base = split.split("[")[0]
    if base == "train":
        idx = perm[n_test:]
    elif base == "test":
        idx = perm[:n_test]
    elif base == "all":
        idx = perm
    else:
        raise ValueError(f"digits has splits 'train', 'test', 'all'; got {split!r}")
    return Dataset(x[idx], y[idx], 10, "sklearn:digits")


def load(name: str, split: str, *, data_dir: str | None = None, allow_fallback: bool = False) -> Dataset:
    """Loads `split` of the image-classification set `name` as numpy arrays, without downloading.

    `name == "digits"` is scikit-learn's digits. Otherwise tfds is used; when the set is not on disk, a clear message
    is logged and, only if `allow_fallback`, the digits set is returned with a source saying so; else DataUnavailable.
    """
    if name == "digits":
        return digits(split)
    data_dir = _tfds_data_dir(data_dir)
    try:
        return _from_tfds(name, split, data_dir)
    except DataUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - tfds raises many kinds of errors for a set that is not prepared
        where = data_dir or os.path.expanduser("~/tensorflow_datasets")
        if not os.path.isdir(os.path.join(where, name)):
            reason = "no prepared copy there, and nothing is downloaded"
        else:
            reason = f"{type(e).__name__}: " + " ".join(str(e).split())[:200]
        msg = (
            f"tfds:{name} split {split!r} is not available offline in {where} ({reason}); "
            "prepare it there (or set TFDS_DATA_DIR), or allow the scikit-learn digits fallback"
        )
        if not allow_fallback:
            raise DataUnavailable(msg) from e
        logging.warning("%s -> using scikit-learn digits instead", msg)
        ds = digits(split)
        return dataclasses.replace(ds, source=f"sklearn:digits (fallback for tfds:{name})")


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epochs: int | None = None,
    start_step: int = 0,
    drop_remainder: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields shuffled minibatches, deterministically from `seed`: epoch e uses permutation rng((seed, e)).

    `start_step` skips that many batches (resume); `epochs=None` repeats forever.
    """
    n = int(x.shape[0])
    if batch_size <= 0 or (drop_remainder and batch_size > n):
        raise ValueError(f"batch_size must be in [1, {n}], got {batch_size}")
    per_epoch = n // batch_size if drop_remainder else -(-n // batch_size)
    epoch, offset = divmod(int(start_step), per_epoch)
    while epochs is None or epoch < epochs:
        perm = np.random.default_rng((seed, epoch)).permutation(n)
        for b in range(offset, per_epoch):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            yield x[idx], y[idx]
        offset = 0
        epoch += 1


_SYNTHETIC: dict[str, Callable[..., Dataset]] = {}


def register_synthetic(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Decorator registering `fn(rng: np.random.Generator, n: int, **kw) -> Dataset` under `name`."""

    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in _SYNTHETIC:
            raise ValueError(f"synthetic generator {name!r} is already registered")
        _SYNTHETIC[name] = fn
        return fn

    return deco


def synthetic_names() -> list[str]:
    """Names of the registered synthetic generators."""
    return sorted(_SYNTHETIC)


def synthetic(name: str, seed: int, n: int, **kwargs) -> Dataset:
    """Draws `n` examples from the registered synthetic generator `name` with numpy rng(seed)."""
    if name not in _SYNTHETIC:
        raise KeyError(f"unknown synthetic data set {name!r}; registered: {synthetic_names()}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    return _SYNTHETIC[name](np.random.default_rng(seed), int(n), **kwargs)


@register_synthetic("gaussian_mixture")
def _gaussian_mixture(
    rng: np.random.Generator,
    n: int,
    *,
    dim: int = 2,
    num_classes: int = 2,
    separation: float = 3.0,
    noise: float = 1.0,
    means_seed: int = 0,
) -> Dataset:
    """Class c has mean μ_c (random direction × separation, fixed by `means_seed`) and isotropic noise."""
    means = np.random.default_rng(means_seed).normal(size=(num_classes, dim))
    means *= separation / np.linalg.norm(means, axis=1, keepdims=True)
    y = rng.integers(0, num_classes, size=n).astype(np.int32)
    x = (means[y] + noise * rng.normal(size=(n, dim))).astype(np.float32)
    return Dataset(x, y, num_classes, f"synthetic:gaussian_mixture(dim={dim},classes={num_classes})")


@register_synthetic("teacher")
def _teacher(
    rng: np.random.Generator,
    n: int,
    *,
    dim: int = 10,
    hidden: int = 32,
    outputs: int = 1,
    num_classes: int = 0,
    noise: float = 0.0,
    teacher_seed: int = 0,
) -> Dataset:
    """x ~ N(0, I); a fixed random tanh network (weights from `teacher_seed`) gives the targets.

    num_classes = 0: regression targets f(x) + noise·N(0, 1) of width `outputs`; otherwise labels argmax of a
    `num_classes`-output teacher.
    """
    t = np.random.default_rng(teacher_seed)
    out = num_classes if num_classes else outputs
    w1 = t.normal(size=(dim, hidden)) / np.sqrt(dim)
    w2 = t.normal(size=(hidden, out)) / np.sqrt(hidden)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    f = np.tanh(x @ w1) @ w2
    if num_classes:
        return Dataset(
            x,
            np.argmax(f, axis=1).astype(np.int32),
            num_classes,
            "synthetic:teacher(classification)",
        )
    y = (f + noise * rng.normal(size=f.shape)).astype(np.float32)
    return Dataset(x, y, 0, "synthetic:teacher(regression)")
