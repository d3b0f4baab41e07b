"""common.data: tfds path (mocked), offline fallback, deterministic batches, synthetic registry."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from common import data


def test_tfds_path_with_mock_data():
    with tfds.testing.mock_data(num_examples=16):
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
