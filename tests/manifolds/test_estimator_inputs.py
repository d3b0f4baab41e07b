"""The estimator as a tool: every bad input is one EstimatorInputError naming the argument; Flax models work."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from manifolds import checks
from manifolds import cutting_planes as cp

W = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)


def logits(x):
    return x @ W


def _ok_starts():
    """Start points in [0, 1] whose argmax is not class 2."""
    x = np.random.default_rng(1).uniform(size=(40, 4)).astype(np.float32)
    return x[np.argmax(np.asarray(logits(x)), 1) != 2][:3]


X0 = _ok_starts()
ONE_PIXEL_OUT = X0.copy()
ONE_PIXEL_OUT[1, 2] = 1.5


def numpy_model(x):
    return np.asarray(x) @ np.asarray(W)  # numpy inside: cannot be traced by jax.jit / jax.grad


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"log_prob_fn": lambda x: jax.nn.softmax(logits(x))}, "^log_prob_fn: returned probabilities"),
        ({"log_prob_fn": numpy_model}, "^log_prob_fn: must be a JAX function"),
        ({"log_prob_fn": lambda x: x[:, 0]}, "^log_prob_fn: must map"),
        ({"log_prob_fn": lambda x: jnp.full((x.shape[0], 3), jnp.nan)}, "^log_prob_fn: returned non-finite"),
        ({"x0s": ONE_PIXEL_OUT, "bounds": (0.0, 1.0)}, "^x0s: 1 of 3 start points lie outside bounds"),
        ({"x0s": X0[0]}, r"^x0s: must be start points \[S, D\]"),
        ({"x0s": np.full((2, 4), np.nan)}, "^x0s: holds non-finite"),
        ({"dims": (1, 2.5, 4)}, "^dims: must be integers, got 2.5"),
        ({"dims": (1, 5)}, r"^dims: must lie in \[1, D=4\]"),
        ({"dims": ()}, "^dims: is empty"),
        ({"key": 0}, "^key: must be a JAX PRNG key"),
        ({"target": ()}, "^target: the set of target classes is empty"),
        ({"target": 7}, r"^target: classes \(7,\) outside \[0, 3\)"),
        ({"target": (1, 1)}, "^target: repeated"),
        ({"bounds": (1.0, 0.0)}, "^bounds: must be finite"),
        ({"repeats": 0}, "^repeats:"),
        ({"basis": "sparse"}, "^basis:"),
        ({"max_per_call": 0}, "^max_per_call:"),
        ({"budget": cp.Budget(steps=0)}, "^budget:"),
    ],
)
def test_bad_inputs_raise_one_error_naming_the_argument(kwargs, match):
    args = {"log_prob_fn": logits, "x0s": X0, "target": 2, "dims": (1, 2), "repeats": 2, "key": jax.random.key(0)}
    args.update(kwargs)
    with pytest.raises(cp.EstimatorInputError, match=match) as err:
        cp.critical_dimension(**args)
    assert "\n" not in str(err.value)


def test_starts_already_in_the_target_are_refused():
    x = np.random.default_rng(1).uniform(size=(40, 4)).astype(np.float32)
    inside = x[np.argmax(np.asarray(logits(x)), 1) == 2][:2]
    with pytest.raises(cp.EstimatorInputError, match="^x0s: 2 of 2 start points already reach the target"):
        cp.critical_dimension(logits, inside, 2, (1, 2), 2, jax.random.key(0))


def test_legacy_uint32_keys_are_accepted():
    k = checks.check_key(jax.random.PRNGKey(3))
    assert jnp.issubdtype(k.dtype, jax.dtypes.prng_key)


def test_max_per_call_follows_the_free_memory():
    # D = 3072 with every d up to D: one subspace holds ~150 MB, so 64 GB free allows ~100 per call, not 4096.
    n = checks.max_per_call_from_memory(3072, 3072, free=64 * 2**30)
    assert 32 <= n <= 128 and n & (n - 1) == 0
    assert checks.max_per_call_from_memory(3072, 3072, free=10**6) == 1
    assert checks.max_per_call_from_memory(64, 64, free=64 * 2**30) >= 4096


class LinenMLP(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Dense(3)(jax.nn.relu(linen.Dense(16)(x)))


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.a, self.b = nnx.Linear(4, 16, rngs=rngs), nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.b(jax.nn.relu(self.a(x)))


def _starts_outside(fn, target):
    x = np.random.default_rng(2).uniform(size=(200, 4)).astype(np.float32)
    return x[np.argmax(np.asarray(fn(x)), 1) != target][:4]


@pytest.mark.parametrize("kind", ["linen", "nnx"])
def test_flax_classifiers_written_elsewhere(kind):
    """The README's lines on a Flax model the package did not write; the subspaces reach the class at d = D."""
    if kind == "linen":
        model = LinenMLP()
        variables = model.init(jax.random.key(0), jnp.zeros((1, 4)))
        fn, params = model.apply, variables
    else:
        graphdef, state = nnx.split(NnxMLP(nnx.Rngs(0)))
        fn, params = (lambda s, x: nnx.merge(graphdef, s)(x)), state
    target = int(np.bincount(np.argmax(np.asarray(fn(params, np.random.default_rng(3).uniform(size=(200, 4)))), 1),
                             minlength=3).argmax())  # fmt: skip
    x0s = _starts_outside(lambda x: fn(params, x), target)
    res = cp.critical_dimension(fn, x0s, target, dims=(1, 2, 4), repeats=4, key=jax.random.key(0), params=params)
    assert res.success_rate[-1] >= res.success_rate[0] and res.success_rate[-1] > 0.5
    assert np.isfinite(res.d_star) and 1 <= res.d_star <= 4 and res.converged is not None
