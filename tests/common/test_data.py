"""common.data: tfds path (mocked), offline fallback, split slicing, batched reads, deterministic batches, synthetic
registry."""

import math
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.testing import mocking

from common import data


def _fixed_mock_getitems(*args, generator, serialized=False):
    # tfds' mock data source sets `__getitems__` as a plain attribute, so it is called without `self` (a tfds bug);
    # this stand-in takes the keys from the last positional argument.
    assert not serialized
    return [generator[k] for k in args[-1]]


@pytest.fixture
def mock_tfds(monkeypatch):
    monkeypatch.setattr(mocking, "_getitems", _fixed_mock_getitems)
    return tfds.testing.mock_data


def test_tfds_path_with_mock_data(mock_tfds):
    with mock_tfds(num_examples=16):
        ds = data.load("mnist", "train")
    assert ds.x.shape == (16, 28, 28, 1) and ds.x.dtype == np.float32
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    assert ds.y.dtype == np.int32 and ds.num_classes == 10
    assert ds.source == "tfds:mnist"


def test_unavailable_without_fallback_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataUnavailable, match="tfds:cifar10 split 'train' is not available offline"):
        data.load("cifar10", "train", data_dir=str(tmp_path))


def test_fallback_to_digits_is_recorded(tmp_path):
    ds = data.load("cifar10", "test", data_dir=str(tmp_path), allow_fallback=True)
    assert ds.source == "sklearn:digits (fallback for tfds:cifar10)"
    assert ds.x.shape[1:] == (8, 8, 1) and ds.num_classes == 10


def test_digits_split_is_fixed_and_disjoint():
    tr, te = data.digits("train"), data.digits("test")
    assert len(tr) + len(te) == 1797 and len(te) == 359
    flat = lambda d: {d.x[i].tobytes() + bytes([d.y[i]]) for i in range(len(d))}  # noqa: E731
    assert len(flat(tr) & flat(te)) < 5  # a handful of identical images exist in the raw set
    np.testing.assert_array_equal(data.digits("train").y, tr.y)


def test_batches_deterministic_cover_each_epoch_and_resume():
    x = np.arange(20, dtype=np.float32)[:, None]
    y = np.arange(20)
    b1 = list(data.batches(x, y, 5, seed=3, epochs=2))
    b2 = list(data.batches(x, y, 5, seed=3, epochs=2))
    assert len(b1) == 8
    for (_, ya), (_, yb) in zip(b1, b2, strict=True):
        np.testing.assert_array_equal(ya, yb)
    assert sorted(np.concatenate([b[1] for b in b1[:4]]).tolist()) == list(range(20))
    assert not np.array_equal(b1[0][1], b1[4][1])  # a new permutation each epoch
    resumed = list(data.batches(x, y, 5, seed=3, epochs=2, start_step=3))
    assert [b[1].tolist() for b in resumed] == [b[1].tolist() for b in b1[3:]]
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches(x, y, 50, seed=0))


def test_synthetic_registry():
    gm = data.synthetic("gaussian_mixture", 0, 2000, dim=3, num_classes=4, separation=10.0, noise=0.5)
    assert gm.x.shape == (2000, 3) and set(gm.y.tolist()) == {0, 1, 2, 3}
    means = np.stack([gm.x[gm.y == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 10.0, rtol=0.05)
    t = data.synthetic("teacher", 1, 100, dim=4, noise=0.0)
    t2 = data.synthetic("teacher", 2, 100, dim=4, noise=0.0)
    assert t.y.shape == (100, 1) and t.num_classes == 0
    # Same teacher for every seed: y is a deterministic function of x.
    assert not np.allclose(t.x, t2.x)
    with pytest.raises(KeyError, match="unknown synthetic"):
        data.synthetic("nope", 0, 10)

    @data.register_synthetic("test_constant")
    def _const(rng, n, value=1.0):
        return data.Dataset(np.full((n, 1), value, np.float32), np.zeros(n, np.int32), 1, "synthetic:const")

    assert data.synthetic("test_constant", 0, 3, value=2.0).x.sum() == 6.0
    assert "test_constant" in data.synthetic_names()


def test_missing_tfds_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # `import tensorflow_datasets` now fails
    with pytest.raises(
        data.DataUnavailable, match=r"tensorflow-datasets is not installed.*pip install -e '\.\[data\]'"
    ):
        data.load("mnist", "train", data_dir=str(tmp_path))
    ds = data.load("mnist", "test[:50]", data_dir=str(tmp_path), allow_fallback=True)
    assert ds.source == "sklearn:digits (fallback for tfds:mnist)" and len(ds) == 50


class _Info:
    def __init__(self, n):
        self.num_examples = n


@pytest.mark.parametrize(
    "spec",
    [
        "train",
        "train[:100]",
        "train[100:]",
        "train[10%:20%]",
        "train[:33%]",
        "train[-7%:]",
        "train[-100:-10]",
        "test[1:2]",
        "test[50%:]",
        "train[:1%]+test[99%:]",
        "test[:12.5%]",
    ],
)
def test_split_indices_match_tfds(spec):
    sizes = {"train": 1438, "test": 359}
    want = []
    for instr in tfds.core.ReadInstruction.from_spec(spec).to_absolute({k: _Info(v) for k, v in sizes.items()}):
        n = sizes[instr.splitname]
        want.append((instr.splitname, instr.from_ or 0, n if instr.to is None else instr.to))
    assert data.split_indices(spec, sizes) == want


def test_digits_honours_split_slicing():
    train, test = data.digits("train"), data.digits("test")
    assert len(data.digits("train[:100]")) == 100
    np.testing.assert_array_equal(data.digits("train[:100]").y, train.y[:100])
    tenth = data.digits("train[10%:20%]")
    assert len(tenth) == round(0.2 * 1438) - round(0.1 * 1438) == 144
    np.testing.assert_array_equal(tenth.x, train.x[144:288])
    np.testing.assert_array_equal(data.digits("test[-9:]").y, test.y[-9:])
    both = data.digits("train[:3]+test[:2]")
    np.testing.assert_array_equal(both.y, np.concatenate([train.y[:3], test.y[:2]]))
    for bad in ("train[:2000]", "validation", "train[a:b]", "train[1.5:3]"):
        with pytest.raises(ValueError):
            data.digits(bad)


def test_fallback_honours_split_slicing(tmp_path):
    ds = data.load("cifar10", "train[:100]", data_dir=str(tmp_path), allow_fallback=True)
    assert len(ds) == 100 and ds.source == "sklearn:digits (fallback for tfds:cifar10)"
    te = data.load("cifar10", "test[10%:20%]", data_dir=str(tmp_path), allow_fallback=True)
    assert len(te) == round(0.2 * 359) - round(0.1 * 359)


def test_unknown_name_never_falls_back(tmp_path):
    with pytest.raises(data.UnknownDataset, match="'mnsit' is neither 'digits' nor a tfds data set"):
        data.load("mnsit", "train", data_dir=str(tmp_path), allow_fallback=True)


def test_a_code_error_is_raised_not_a_fallback(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise TypeError("a bug, not a missing data set")

    monkeypatch.setattr(tfds, "data_source", broken)
    monkeypatch.setattr(tfds, "load", broken)
    with pytest.raises(TypeError, match="a bug"):
        data.load("cifar10", "train", data_dir=str(tmp_path), allow_fallback=True)


def test_an_error_reading_a_prepared_set_is_raised(monkeypatch, mock_tfds):
    def broken(*args, **kwargs):
        raise NotImplementedError("reader fault")

    with mock_tfds(num_examples=8):
        monkeypatch.setattr(data, "_is_prepared", lambda *a: True, raising=False)
        monkeypatch.setattr(tfds, "data_source", broken)
        with pytest.raises(NotImplementedError, match="reader fault"):
            data.load("mnist", "train", allow_fallback=True)


class _CountingSource:
    """A tfds-style data source that counts how it is read."""

    def __init__(self, n):
        self.n, self.single, self.batched = n, 0, []
        label = _Info(0)
        label.num_classes = 3
        self.dataset_info = type("Info", (), {"features": {"label": label}})()

    def __len__(self):
        return self.n

    def _record(self, i):
        return {"image": np.full((2, 2), i % 256, np.uint8), "label": i % 3}

    def __getitem__(self, i):
        self.single += 1
        return self._record(i)

    def __getitems__(self, keys):
        self.batched.append(len(keys))
        return [self._record(i) for i in keys]


def test_data_source_is_read_in_batches(monkeypatch):
    batch = getattr(data, "READ_BATCH", 4096)
    n = 2 * batch + 5
    source = _CountingSource(n)
    monkeypatch.setattr(tfds, "data_source", lambda *a, **k: source)
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)  # the no-TensorFlow path
    ds = data.load("mnist", "train")
    assert source.single == 0 and source.batched == [batch, batch, 5]
    assert len(source.batched) == math.ceil(n / batch)
    assert ds.x.shape == (n, 2, 2, 1) and ds.num_classes == 3
    np.testing.assert_array_equal(ds.y, np.arange(n) % 3)
    np.testing.assert_allclose(ds.x[:, 0, 0, 0], (np.arange(n) % 256) / 255.0)
