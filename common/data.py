"""Data sets as numpy arrays: tfds when the set is on disk, scikit-learn digits as an offline fallback, synthetic sets.

    ds = data.load("mnist", "train", data_dir=config.data_dir, allow_fallback=config.allow_fallback)
    ds.source   # "tfds:mnist" or "sklearn:digits (fallback for tfds:mnist)": record it as results["data_source"]

No download is attempted: this project runs on machines without internet. The tfds path uses `tfds.load` where
TensorFlow is installed and `tfds.data_source` (array_record, no TensorFlow, read in batches) otherwise; `data_dir`
defaults to $TFDS_DATA_DIR, then tfds' own default. tensorflow-datasets is the optional `data` extra
(`pip install -e '.[data]'`). Images are float32 in [0, 1], shape [N, H, W, C]; labels int32.

Split strings follow tfds ("train", "test[:100]", "train[10%:20%]", "train[-500:]", "train[:10%]+test[:10%]"); the
digits set honours them the same way (percent boundaries rounded to the closest example, as tfds does).
Only a set that is not available offline (tensorflow-datasets missing, the set not prepared on disk, or its builder
needing TensorFlow where it is missing) falls back to digits, and only with `allow_fallback`, with a message saying
why; an unknown name, an unknown split or an error while reading a prepared set is raised.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from collections.abc import Callable, Iterator

import numpy as np
from absl import logging

INSTALL_HINT = "pip install -e '.[data]'"
READ_BATCH = 4096  # records per tfds.data_source read


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


class UnknownDataset(DataUnavailable):
    """The name is neither 'digits' nor a data set tfds knows: a typo, never a reason to fall back."""


# ----------------------------------------------------------------------------------------------------------
# split strings


_SUB_SPEC = re.compile(r"^(?P<name>[\w-]+)(\[(?P<selector>[\d%:.-]+)\])?$")
_BOUNDARY = re.compile(r"^(?P<val>-?\d+(\.\d*)?)?(?P<pct>%)?$")


def _boundary(match, default: int, n: int, percent: bool) -> int:
    if match["val"] is None:
        return default
    return int(round(float(match["val"]) * n / 100.0)) if percent else int(match["val"])


def split_indices(split: str, sizes: dict[str, int]) -> list[tuple[str, int, int]]:
    """Resolves a tfds split string against split `sizes` into (split name, start, stop) pieces, as tfds does.

    "train[:100]" -> [("train", 0, 100)]; "train[10%:20%]" rounds each percent boundary to the closest example;
    negative boundaries count from the end; "a+b" concatenates. A slice beyond the split is a ValueError.
    """
    pieces = []
    for spec in re.split(r"\s*\+\s*", split.strip()):
        m = _SUB_SPEC.match(spec)
        if not m:
            raise ValueError(f"unrecognised split {spec!r} (e.g. 'train', 'train[:100]', 'test[10%:20%]')")
        name, selector = m["name"], m["selector"]
        if name not in sizes:
            raise ValueError(f"unknown split {name!r}; this set has {', '.join(map(repr, sizes))}")
        n = int(sizes[name])
        if selector is None:
            pieces.append((name, 0, n))
            continue
        bounds = selector.split(":")
        parsed = [_BOUNDARY.match(b) for b in bounds]
        if len(bounds) != 2 or not all(parsed) or not any(b for b in bounds):
            raise ValueError(f"unrecognised split {spec!r}: a slice is [from:to] with integers or percentages")
        percent = any(p["pct"] for p in parsed)
        if not percent and any("." in (p["val"] or "") for p in parsed):
            raise ValueError(f"unrecognised split {spec!r}: absolute boundaries are integers")

        start, stop = (_boundary(p, default, n, percent) for p, default in zip(parsed, (0, n), strict=True))
        if abs(start) > n or abs(stop) > n:
            raise ValueError(f"split {spec!r}: slice [{bounds[0]}:{bounds[1]}] is beyond its {n} examples")
        start, stop = start % n if start < 0 else start, stop % n if stop < 0 else stop
        pieces.append((name, start, max(start, stop)))
    return pieces


# ----------------------------------------------------------------------------------------------------------
# tfds


class _NotOnDisk(Exception):
    """Internal: tfds says the set is not prepared in the data directory."""


def _tfds_data_dir(data_dir: str | None) -> str | None:
    return data_dir or os.environ.get("TFDS_DATA_DIR") or None


def _import_tfds():
    """tensorflow_datasets, or None when it is not installed (a broken install of it is raised)."""
    try:
        import tensorflow_datasets as tfds
    except ModuleNotFoundError as e:
        if e.name != "tensorflow_datasets":
            raise
        return None
    return tfds


def _is_prepared(tfds, name: str, data_dir: str | None) -> bool:
    return bool(tfds.builder(name, data_dir=data_dir).is_prepared())


def _open_tfds(tfds, name: str, split: str, data_dir: str | None):
    """Opens the split without reading it: (kind, handle, info). Raises tfds' own errors."""
    if importlib.util.find_spec("tensorflow") is not None:
        ds = tfds.load(name, split=split, data_dir=data_dir, batch_size=-1, download=False)
        return "tf", ds, tfds.builder(name, data_dir=data_dir).info
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    return "source", source, source.dataset_info


def _read_source(source, batch: int = READ_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """All records of a tfds data source, fetched `batch` keys at a time (one call per batch, not per record)."""
    n = len(source)
    images = labels = None
    for start in range(0, n, batch):
        records = source.__getitems__(list(range(start, min(start + batch, n))))
        if images is None:
            first = np.asarray(records[0]["image"])
            images = np.empty((n, *first.shape), first.dtype)
            labels = np.empty((n,), np.int64)
        images[start : start + len(records)] = np.stack([r["image"] for r in records])
        labels[start : start + len(records)] = [r["label"] for r in records]
    return images, labels


def _from_tfds(tfds, name: str, split: str, data_dir: str | None) -> Dataset:
    try:
        kind, handle, info = _open_tfds(tfds, name, split, data_dir)
    except tfds.core.DatasetNotFoundError as e:
        raise UnknownDataset(f"data set {name!r} is neither 'digits' nor a tfds data set") from e
    except ModuleNotFoundError as e:
        # a builder that needs TensorFlow where it is not installed: not available offline either
        if "tensorflow" not in f"{e.name} {e}":
            raise
        raise _NotOnDisk("this set's tfds builder needs TensorFlow, which is not installed") from e
    except (AssertionError, NotImplementedError, OSError, KeyError) as e:
        # What tfds raises for a set that is not on disk (download=False): AssertionError/OSError from tfds.load,
        # KeyError ("`splits` is empty") from tfds.data_source. Anything else, or any error for a set that is
        # prepared, is a real error and is raised.
        if _is_prepared(tfds, name, data_dir):
            raise
        raise _NotOnDisk("not prepared there") from e
    if kind == "tf":
        arrays = tfds.as_numpy(handle)
        images, labels = arrays["image"], arrays["label"]
    else:
        if len(handle) == 0:
            raise DataUnavailable(f"tfds:{name} split {split!r} is empty")
        images, labels = _read_source(handle)
    num_classes = int(info.features["label"].num_classes)
    x = np.asarray(images, dtype=np.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    return Dataset(x, np.asarray(labels, dtype=np.int32), num_classes, f"tfds:{name}")


# ----------------------------------------------------------------------------------------------------------
# digits and load


def digits(split: str = "train", *, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 real images, ships offline), a fixed 80/20 train/test split.

    `split` is a tfds split string over the splits 'train' (1,438) and 'test' (359), or 'all' (1,797).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int32)
    perm = np.random.default_rng(0).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    order = {"train": perm[n_test:], "test": perm[:n_test], "all": perm}
    if split.strip() == "all":
        idx = perm
    else:
        pieces = split_indices(split, {"train": len(y) - n_test, "test": n_test})
        idx = np.concatenate([order[name][start:stop] for name, start, stop in pieces])
    return Dataset(x[idx], y[idx], 10, "sklearn:digits")


def load(name: str, split: str, *, data_dir: str | None = None, allow_fallback: bool = False) -> Dataset:
    """Loads `split` of the image-classification set `name` as numpy arrays, without downloading.

    `name == "digits"` is scikit-learn's digits. Otherwise tfds is used. When the set is not available offline
    (tensorflow-datasets not installed, or the set not prepared in the data directory) a message saying which is
    logged and, only if `allow_fallback`, the digits set (same split string) is returned with a source saying so;
    else DataUnavailable. An unknown name raises UnknownDataset; other errors propagate.
    """
    if name == "digits":
        return digits(split)
    data_dir = _tfds_data_dir(data_dir)
    where = data_dir or os.path.expanduser("~/tensorflow_datasets")
    tfds = _import_tfds()
    if tfds is None:
        msg = (
            f"tfds:{name} split {split!r} is not available offline: tensorflow-datasets is not installed "
            f"(install it with {INSTALL_HINT}), or use the scikit-learn digits fallback"
        )
    else:
        try:
            return _from_tfds(tfds, name, split, data_dir)
        except _NotOnDisk as e:
            msg = (
                f"tfds:{name} split {split!r} is not available offline in {where} ({e}, and nothing is "
                "downloaded); prepare it there (or set TFDS_DATA_DIR), or allow the scikit-learn digits fallback"
            )
    if not allow_fallback:
        raise DataUnavailable(msg)
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
