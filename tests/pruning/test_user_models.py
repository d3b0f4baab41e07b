"""The pruning tools on models the package did not write: Flax linen variables, Flax NNX state (paths ending in
.value), layer order by structure, bad arguments, and IMP through the adapters with another optax optimizer."""

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from common import data
from pruning import adapters, hessian, imp, masks


class DeepLinen(linen.Module):
    """Eleven Dense layers: linen names them Dense_0 .. Dense_10 (string order puts Dense_10 before Dense_2)."""

    @linen.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for _ in range(10):
            x = linen.relu(linen.Dense(6)(x))
        return linen.Dense(10)(x)


class SmallNNX(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(64, 12, rngs=rngs)
        self.bn = nnx.BatchNorm(12, rngs=rngs)
        self.l2 = nnx.Linear(12, 10, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.relu(self.bn(self.l1(x.reshape(x.shape[0], -1)))))


def _kernels(tree):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat if np.ndim(x) >= 2}


def test_linen_output_layer_is_found_by_structure_not_by_name():
    params = DeepLinen().init(jax.random.key(0), jnp.zeros((1, 64)))["params"]
    rates = masks.prune_rates(params, output_rate=0.0)
    assert rates["Dense_10"]["kernel"] == 0.0
    assert rates["Dense_9"]["kernel"] == 1.0 and rates["Dense_2"]["kernel"] == 1.0
    assert rates["Dense_10"]["bias"] == 0.0


def test_magnitude_prune_on_nnx_state_prunes_the_exact_count():
    model = SmallNNX(nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    rates = masks.prune_rates(state, output_rate=0.0)
    r = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(rates)[0]}
    assert sorted(k for k, v in r.items() if v == 1.0) == ["['l1']['kernel'].value"]
    assert [k for k, v in r.items() if v == 0.0 and "kernel" in k] == ["['l2']['kernel'].value"]
    m = masks.magnitude_prune(state, masks.ones_masks(state), 0.2, rates)
    n = 64 * 12
    assert int(masks.count(m, rates)) == n - round(0.2 * n)
    kept = np.asarray(m["l1"]["kernel"][...])
    w = np.abs(np.asarray(state["l1"]["kernel"][...]))
    assert w[kept].min() >= w[~kept].max()
    # the pruned state goes back into the model
    nnx.update(model, masks.apply_masks(state, m))
    assert np.sum(np.asarray(model.l1.kernel[...]) == 0) == round(0.2 * n)


@pytest.mark.parametrize("fraction", [1.5, -0.3, float("nan")])
def test_bad_fraction_raises_naming_the_argument(fraction):
    p = {"a": {"kernel": jnp.ones((4, 4))}}
    with pytest.raises(ValueError, match="fraction"):
        masks.magnitude_prune(p, masks.ones_masks(p), fraction, masks.prune_rates(p))


def test_bad_epsilon_raises_naming_the_argument():
    with pytest.raises(ValueError, match="epsilon"):
        hessian.max_prune_fraction(np.ones(3), np.ones(3), -0.1, "random")
    with pytest.raises(ValueError, match="nonpositive"):
        hessian.max_prune_fraction(np.ones(3), np.ones(3), 0.1, "random", nonpositive="clip")


def test_nnx_adapter_trains_batchnorm_statistics_and_keeps_them_in_eval():
    model = adapters.NNX(lambda rngs: SmallNNX(rngs), (8, 8, 1))
    params, stats = model.init(jax.random.key(0))
    x = jnp.asarray(data.digits("train").x[:16])
    logits, new = model.apply(params, stats, x, True)
    assert logits.shape == (16, 10)
    assert not np.allclose(np.asarray(new["bn"]["mean"][...]), np.asarray(stats["bn"]["mean"][...]))
    _, same = model.apply(params, stats, x, False)
    np.testing.assert_array_equal(np.asarray(same["bn"]["mean"][...]), np.asarray(stats["bn"]["mean"][...]))


@pytest.mark.slow
def test_imp_on_a_linen_model_with_adam():
    tr, te = data.digits("train"), data.digits("test")
    d = (tr.x[:128], tr.y[:128], te.x[:64], te.y[:64])
    setup = imp.Setup(
        model=adapters.Linen(DeepLinen(), (8, 8, 1)),
        batch_size=32,
        steps=20,
        num_levels=2,
        barrier_points=3,
        optimizer=optax.adam,
        optimizer_kwargs=(("b1", 0.8),),
    )
    runs = imp.make_runs([0], ["imp"], lr=3e-3, weight_decay=0.0, fraction=0.3, rewind_step=2)
    sw = imp.Sweep(setup, runs, 20)
    state = sw.run(sw.init(), d)
    h = imp.history(state)
    params = jax.tree.map(lambda x: np.asarray(x)[0], state["params"])
    rates = setup.rates(params)
    total = masks.size(masks.ones_masks(params), rates)
    assert h["density"][0, 1] == pytest.approx((total - round(0.3 * total)) / total)
    assert rates["Dense_10"]["kernel"] == 1.0  # output_rate 1: the head is in the global pool
    m = jax.tree.map(lambda x: np.asarray(x)[0], masks.get_masks(state["opt"]))
    for k, w in _kernels(params).items():
        assert np.all(w[~_kernels(m)[k]] == 0), k
    assert np.all(np.isfinite(h["test_error"])) and h["test_error"][0, 0] < 0.9
