"""Config checks shared by every package: one helper per kind of check, each naming the dotted field it rejects.

    from common import validate as v

    def validate(config):
        v.positive_int(config, "train.num_steps", "train.chunk_steps")
        v.positive(config, "optim.lr")
        v.probability(config, "data.label_noise")
        v.one_of(config, "net.arch", ("mlp", "cnn"))
        v.sorted_grid(config, "sweep.widths", kind=int, positive=True)

Every helper raises `common.app.ConfigError(key, message)`, which the CLI turns into one line and exit status 2
before anything is written. Several keys may be given at once; a field that holds a tuple/list is checked entry by
entry (except by `sorted_grid`, which checks the sequence as a whole).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

from common.app import ConfigError


def get(config: Any, key: str) -> Any:
    """The value at dotted `key` ('train.lr'); a missing field is a ConfigError naming it."""
    node = config
    for part in key.split("."):
        try:
            node = node[part]
        except (KeyError, AttributeError, TypeError):
            raise ConfigError(key, "missing from the config") from None
    return node


def _entries(value: Any) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check(config: Any, keys: Iterable[str], ok, what: str) -> None:
    for key in keys:
        value = get(config, key)
        for x in _entries(value):
            if not ok(x):
                shown = tuple(value) if isinstance(value, (tuple, list)) else value
                raise ConfigError(key, f"must be {what}, got {shown!r}")


def integer(config: Any, *keys: str) -> None:
    """Each field is an integer (bools rejected)."""
    _check(config, keys, _is_int, "an integer")


def positive_int(config: Any, *keys: str) -> None:
    """Each field is an integer > 0."""
    _check(config, keys, lambda x: _is_int(x) and x > 0, "a positive integer")


def non_negative_int(config: Any, *keys: str) -> None:
    """Each field is an integer >= 0."""
    _check(config, keys, lambda x: _is_int(x) and x >= 0, "a non-negative integer")


def finite(config: Any, *keys: str) -> None:
    """Each field is a finite real number."""
    _check(config, keys, lambda x: _is_real(x) and math.isfinite(x), "a finite number")


def positive(config: Any, *keys: str) -> None:
    """Each field is a finite real number > 0."""
    _check(config, keys, lambda x: _is_real(x) and math.isfinite(x) and x > 0, "a finite number > 0")


def non_negative(config: Any, *keys: str) -> None:
    """Each field is a finite real number >= 0."""
    _check(config, keys, lambda x: _is_real(x) and math.isfinite(x) and x >= 0, "a finite number >= 0")


def probability(config: Any, *keys: str, open_low: bool = False, open_high: bool = False) -> None:
    """Each field is a number in [0, 1] (`open_low` / `open_high` exclude 0 / 1)."""

    def ok(x):
        if not (_is_real(x) and math.isfinite(x)):
            return False
        return (x > 0 if open_low else x >= 0) and (x < 1 if open_high else x <= 1)

    lo, hi = "(" if open_low else "[", ")" if open_high else "]"
    _check(config, keys, ok, f"a probability in {lo}0, 1{hi}")


def in_range(config: Any, key: str, low: float | None = None, high: float | None = None) -> None:
    """The field (or each entry) lies in [low, high]; either bound may be None."""

    def ok(x):
        return _is_real(x) and math.isfinite(x) and (low is None or x >= low) and (high is None or x <= high)

    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    _check(config, (key,), ok, f"in [{lo}, {hi}]")


def one_of(config: Any, key: str, choices: Sequence[Any]) -> None:
    """The field equals one of `choices` (True/False never stand in for 1/0, nor the other way round)."""
    value = get(config, key)
    if not any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices):
        raise ConfigError(key, f"must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")


def boolean(config: Any, *keys: str) -> None:
    """Each field is True or False."""
    _check(config, keys, lambda x: isinstance(x, bool), "True or False")


def sorted_grid(
    config: Any,
    key: str,
    *,
    kind: type = float,
    positive: bool = False,
    non_negative: bool = False,
    strict: bool = True,
    allow_empty: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> None:
    """The field is a non-empty, increasing sequence (strictly, unless `strict=False`) of `kind` values.

    `kind=int` demands integers; `kind=float` accepts any finite real. `positive` / `non_negative` / `low` / `high`
    bound every entry. An empty or unsorted grid would otherwise crash after the expensive part of a run.
    """
    value = get(config, key)
    if not isinstance(value, (tuple, list)):
        raise ConfigError(key, f"must be a sequence of values, got {value!r}")
    seq = list(value)
    if not seq:
        if allow_empty:
            return
        raise ConfigError(key, "must not be empty")
    check = _is_int if kind is int else (lambda x: _is_real(x) and math.isfinite(x))
    for x in seq:
        if not check(x):
            raise ConfigError(key, f"must hold {'integers' if kind is int else 'finite numbers'}, got {tuple(seq)!r}")
        if positive and not x > 0:
            raise ConfigError(key, f"entries must be > 0, got {tuple(seq)!r}")
        if non_negative and not x >= 0:
            raise ConfigError(key, f"entries must be >= 0, got {tuple(seq)!r}")
        if (low is not None and x < low) or (high is not None and x > high):
            raise ConfigError(key, f"entries must lie in [{low}, {high}], got {tuple(seq)!r}")
    pairs = list(zip(seq[:-1], seq[1:], strict=True))
    if strict and any(b <= a for a, b in pairs):
        raise ConfigError(key, f"must be strictly increasing (sorted, no repeats), got {tuple(seq)!r}")
    if not strict and any(b < a for a, b in pairs):
        raise ConfigError(key, f"must be sorted in increasing order, got {tuple(seq)!r}")


def divides(config: Any, key: str, other: str) -> None:
    """The integer field `key` divides the integer field `other` (chunk sizes and step counts)."""
    a, b = get(config, key), get(config, other)
    if not (_is_int(a) and a > 0) or b % a:
        raise ConfigError(key, f"must divide {other}={b!r}, got {a!r}")
