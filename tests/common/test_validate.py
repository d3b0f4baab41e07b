"""common.validate: every helper accepts the values it should, rejects the rest with a ConfigError naming the key."""

import math

import ml_collections
import pytest

from common import app
from common import validate as v


def _config(**fields):
    c = ml_collections.ConfigDict()
    c.sub = ml_collections.ConfigDict()
    for k, value in fields.items():
        c.sub[k] = value
    return c


def _rejects(fn, value, *args, match="", **kwargs):
    with pytest.raises(app.ConfigError) as e:
        fn(_config(x=value), "sub.x", *args, **kwargs)
    assert e.value.key == "sub.x" and str(e.value).startswith("sub.x: ")
    assert match in str(e.value)
    assert "\n" not in str(e.value)


def test_get_reads_dotted_keys_and_names_a_missing_one():
    c = _config(x=3)
    assert v.get(c, "sub.x") == 3
    with pytest.raises(app.ConfigError, match="sub.y: missing from the config"):
        v.get(c, "sub.y")
    with pytest.raises(app.ConfigError, match="sub.x.z: missing"):
        v.get(c, "sub.x.z")  # descending into a number


@pytest.mark.parametrize(
    "fn,good,bad",
    [
        (v.integer, [0, -3, 7, (1, 2)], [1.0, True, "1", (1, 2.5)]),
        (v.positive_int, [1, 10**9, (1, 2)], [0, -1, 1.0, True, (1, 0)]),
        (v.non_negative_int, [0, 5, (0, 3)], [-1, 0.0, False, (0, -2)]),
        (v.finite, [0, -2.5, 3, 1e300], [math.inf, -math.inf, math.nan, "1", True, None]),
        (v.positive, [1e-12, 2, (0.1, 3)], [0, -1e-9, math.inf, math.nan, True, (1.0, 0.0)]),
        (v.non_negative, [0, 0.0, 7.5], [-1e-9, math.inf, math.nan, False]),
        (v.boolean, [True, False], [0, 1, "True", None]),
    ],
)
def test_scalar_helpers(fn, good, bad):
    for value in good:
        fn(_config(x=value), "sub.x")
    for value in bad:
        _rejects(fn, value)


def test_several_keys_at_once_name_the_failing_one():
    c = _config(a=1, b=0, c=2)
    v.positive_int(c, "sub.a", "sub.c")
    with pytest.raises(app.ConfigError) as e:
        v.positive_int(c, "sub.a", "sub.b", "sub.c")
    assert e.value.key == "sub.b" and "must be a positive integer, got 0" in str(e.value)


def test_probability_bounds():
    for p in (0, 0.5, 1, 1.0):
        v.probability(_config(x=p), "sub.x")
    for p in (-0.01, 1.01, math.nan, True):
        _rejects(v.probability, p, match="a probability in [0, 1]")
    v.probability(_config(x=0.5), "sub.x", open_low=True, open_high=True)
    _rejects(v.probability, 0.0, open_low=True, match="(0, 1]")
    _rejects(v.probability, 1.0, open_high=True, match="[0, 1)")
    _rejects(v.probability, (0.2, 1.5), match="(0.2, 1.5)")  # a tuple is checked entry by entry


def test_in_range():
    v.in_range(_config(x=2), "sub.x", 2, 3)
    v.in_range(_config(x=3.0), "sub.x", 2, 3)
    v.in_range(_config(x=-1e9), "sub.x", None, 0)
    _rejects(v.in_range, 3.01, 2, 3, match="in [2, 3]")
    _rejects(v.in_range, 1, 2, None, match="in [2, inf]")
    _rejects(v.in_range, math.nan, None, None)


def test_one_of():
    v.one_of(_config(x="cnn"), "sub.x", ("mlp", "cnn"))
    _rejects(v.one_of, "rnn", ("mlp", "cnn"), match="must be one of 'mlp', 'cnn'; got 'rnn'")
    v.one_of(_config(x=2), "sub.x", (True, 2))
    _rejects(v.one_of, 1, (True, 2))  # 1 == True in Python, but a bool choice is not an integer one
    _rejects(v.one_of, False, (0, 1), match="got False")


def test_sorted_grid_accepts_increasing_sequences():
    v.sorted_grid(_config(x=(1, 2, 4)), "sub.x", kind=int, positive=True)
    v.sorted_grid(_config(x=[0.001, 0.1]), "sub.x")
    v.sorted_grid(_config(x=(1, 1, 2)), "sub.x", strict=False)
    v.sorted_grid(_config(x=()), "sub.x", allow_empty=True)
    v.sorted_grid(_config(x=(0.0, 0.5)), "sub.x", low=0, high=0.5)


@pytest.mark.parametrize(
    "value,kwargs,match",
    [
        ((), {}, "must not be empty"),
        ((2, 1), {}, "must be strictly increasing"),
        ((1, 1), {}, "must be strictly increasing"),
        ((1, 3, 2), {"strict": False}, "must be sorted in increasing order"),
        ((1, 2.5), {"kind": int}, "must hold integers"),
        ((1, True), {"kind": int}, "must hold integers"),
        ((0.1, math.inf), {}, "must hold finite numbers"),
        ((0.1, math.nan), {}, "must hold finite numbers"),
        ((0, 1), {"positive": True}, "entries must be > 0"),
        ((-1, 1), {"non_negative": True}, "entries must be >= 0"),
        ((0.5, 1.5), {"low": 0, "high": 1}, "entries must lie in [0, 1]"),
        (0.1, {}, "must be a sequence of values"),
    ],
)
def test_sorted_grid_rejects(value, kwargs, match):
    _rejects(v.sorted_grid, value, match=match, **kwargs)


def test_divides():
    c = _config(chunk=250, steps=1000)
    v.divides(c, "sub.chunk", "sub.steps")
    c.sub.chunk = 300
    with pytest.raises(app.ConfigError, match="sub.chunk: must divide sub.steps=1000, got 300"):
        v.divides(c, "sub.chunk", "sub.steps")
    c.sub.chunk = 0
    with pytest.raises(app.ConfigError, match="sub.chunk"):
        v.divides(c, "sub.chunk", "sub.steps")


def test_a_config_error_exits_2_with_one_line(tmp_path):
    # The same path the package CLIs take: validate() raising ConfigError becomes one line on stderr and exit 2.
    import subprocess
    import sys

    from common import reproduce

    code = (
        "import ml_collections, sys\n"
        "from common import app, validate as v\n"
        "c = ml_collections.ConfigDict({'sweep': {'lrs': (0.1, 0.01)}})\n"
        "try:\n"
        "    v.sorted_grid(c, 'sweep.lrs', positive=True)\n"
        "except app.ConfigError as e:\n"
        "    print(e, file=sys.stderr); sys.exit(2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=reproduce.ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "sweep.lrs: must be strictly increasing (sorted, no repeats), got (0.1, 0.01)"
