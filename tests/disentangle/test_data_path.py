"""The data path never downloads: a tfds set that is not prepared falls back (with a message), without TensorFlow."""

import importlib.util
import sys

import pytest
import tensorflow_datasets as tfds

from common import data

_find_spec = importlib.util.find_spec


def _no_tensorflow(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` raises ImportError
    monkeypatch.setattr(
        data.importlib.util, "find_spec", lambda n, *a: None if n.split(".")[0] == "tensorflow" else _find_spec(n, *a)
    )
    monkeypatch.setattr(tfds, "load", lambda *a, **k: pytest.fail("tfds.load needs TensorFlow"))


def test_unprepared_set_without_tensorflow_falls_back(monkeypatch, tmp_path):
    # Without TensorFlow, tfds.data_source reports a set that was never prepared with a KeyError ("`splits` is
    # empty"); that is "not available offline": the digits fallback with a message, never a traceback or a download.
    _no_tensorflow(monkeypatch)
    calls = []

    def unprepared(name, *, split, data_dir, download):
        calls.append(download)
        raise KeyError(f"Trying to access `splits[{split!r}]` but `splits` is empty.")

    monkeypatch.setattr(tfds, "data_source", unprepared)
    monkeypatch.setattr(data, "_is_prepared", lambda *a: False)
    ds = data.load("dsprites", "train[:40]", data_dir=str(tmp_path), allow_fallback=True)
    assert ds.source == "sklearn:digits (fallback for tfds:dsprites)" and len(ds) == 40
    assert calls == [False]  # asked with download=False
    with pytest.raises(data.DataUnavailable, match="not available offline"):
        data.load("dsprites", "train", data_dir=str(tmp_path))


def test_real_tfds_builder_without_tensorflow_falls_back(monkeypatch, tmp_path):
    # the real tfds call (no mock) with TensorFlow unimportable: tfds' mnist builder imports it and fails with a
    # ModuleNotFoundError; that is "not available offline" too, and nothing is written to the data directory
    _no_tensorflow(monkeypatch)
    ds = data.load("mnist", "test[:10]", data_dir=str(tmp_path / "absent"), allow_fallback=True)
    assert ds.source == "sklearn:digits (fallback for tfds:mnist)" and len(ds) == 10
    assert not (tmp_path / "absent").exists() or not any((tmp_path / "absent").rglob("*.array_record*"))


def test_a_key_error_reading_a_prepared_set_is_raised(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise KeyError("a bug in a prepared set's reader")

    _no_tensorflow(monkeypatch)
    monkeypatch.setattr(tfds, "data_source", broken)
    monkeypatch.setattr(data, "_is_prepared", lambda *a: True)
    with pytest.raises(KeyError, match="a bug"):
        data.load("mnist", "train", data_dir=str(tmp_path), allow_fallback=True)
