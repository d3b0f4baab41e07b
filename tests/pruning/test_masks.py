"""Masks: exact pruned counts, deterministic ties, pruned weights held at exactly zero through training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pruning import masks, models


def _jprune(rates, **kw):
    """magnitude_prune compiled once per rates tree (eager dispatch of its many small ops is slow)."""
    return jax.jit(lambda p, m, f: masks.magnitude_prune(p, m, f, rates, **kw))


def _params():
    return {
        "hidden": [{"kernel": jnp.arange(12.0).reshape(3, 4) - 5.5, "bias": jnp.zeros(4)}],
        "head": {"kernel": jnp.arange(8.0).reshape(4, 2) + 0.25, "bias": jnp.zeros(2)},
    }


def test_rates_choose_kernels_and_the_output_layer():
    p = _params()
    r = masks.prune_rates(p, output_rate=0.5)
    assert r["hidden"][0]["kernel"] == 1.0 and r["head"]["kernel"] == 0.5
    assert r["hidden"][0]["bias"] == 0.0 and r["head"]["bias"] == 0.0
    net, _ = jax.eval_shape(models.ResNet(blocks=1, width=4).init, jax.random.key(0))
    r = masks.prune_rates(net, output_rate=0.0, is_output=models.is_output)
    assert r["head"]["kernel"] == 0.0 and r["stem"]["kernel"] == 1.0 and r["stem"]["bn"]["scale"] == 0.0


@pytest.mark.parametrize("fraction", [0.2, 0.37, 0.5, 0.9])
def test_global_magnitude_prunes_the_exact_count_of_the_smallest(fraction):
    key = jax.random.key(1)
    p = {"a": {"kernel": jax.random.normal(key, (30, 20))}, "b": {"kernel": 3 * jax.random.normal(key, (20, 7))}}
    r = masks.prune_rates(p)
    m = masks.ones_masks(p)
    total = 30 * 20 + 20 * 7
    prune = _jprune(r)
    for _ in range(3):
        remaining = int(masks.count(m, r))
        new = prune(p, m, fraction)
        k = int(np.floor(fraction * remaining + 0.5))
        assert int(masks.count(new, r)) == remaining - k
        # survivors are exactly the largest magnitudes among the previously alive weights
        mags = np.concatenate([np.abs(np.asarray(p[n]["kernel"])).ravel() for n in "ab"])
        alive = np.concatenate([np.asarray(m[n]["kernel"]).ravel() for n in "ab"])
        kept = np.concatenate([np.asarray(new[n]["kernel"]).ravel() for n in "ab"])
        assert not np.any(kept & ~alive)
        assert mags[kept].min(initial=np.inf) >= mags[alive & ~kept].max(initial=-np.inf)
        m = new
    assert int(masks.count(m, r)) < total


def test_ties_break_by_position_and_are_deterministic():
    p = {"x": {"kernel": jnp.ones((2, 5))}, "y": {"kernel": jnp.ones((5, 2))}}
    r = masks.prune_rates(p)
    new = _jprune(r)(p, masks.ones_masks(p), 0.3)  # 6 of 20 equal weights
    flat = np.concatenate([np.asarray(new["x"]["kernel"]).ravel(), np.asarray(new["y"]["kernel"]).ravel()])
    np.testing.assert_array_equal(flat, np.arange(20) >= 6)  # the first 6 positions go first
    again = jax.jit(lambda q, m: masks.magnitude_prune(q, m, 0.3, r))(p, masks.ones_masks(p))
    np.testing.assert_array_equal(np.asarray(again["y"]["kernel"]), np.asarray(new["y"]["kernel"]))


def test_output_rate_and_layerwise_scope():
    key = jax.random.key(2)
    p = {"hidden": [{"kernel": jax.random.normal(key, (10, 10))}], "head": {"kernel": jax.random.normal(key, (10, 4))}}
    r = masks.prune_rates(p, output_rate=0.5)
    new = _jprune(r)(p, masks.ones_masks(p), 0.4)
    assert int(new["hidden"][0]["kernel"].sum()) == 60  # global pool = hidden only: 40 of 100
    assert int(new["head"]["kernel"].sum()) == 32  # 0.2 of 40 on its own
    r1 = masks.prune_rates(p, output_rate=0.0)
    assert int(_jprune(r1)(p, masks.ones_masks(p), 0.4)["head"]["kernel"].sum()) == 40
    q = {"a": {"kernel": 100 * jnp.ones((10, 10))}, "b": {"kernel": jnp.ones((10, 10)) * 0.01}}
    rq = masks.prune_rates(q)
    glob = _jprune(rq)(q, masks.ones_masks(q), 0.5)
    lw = _jprune(rq, scope="layerwise")(q, masks.ones_masks(q), 0.5)
    assert int(glob["a"]["kernel"].sum()) == 100 and int(glob["b"]["kernel"].sum()) == 0
    assert int(lw["a"]["kernel"].sum()) == 50 and int(lw["b"]["kernel"].sum()) == 50


def test_random_prune_counts_and_independence_from_magnitude():
    p = {"a": {"kernel": jnp.arange(400.0).reshape(20, 20)}}
    r = masks.prune_rates(p)
    rand = jax.jit(lambda k, m, f: masks.random_prune(k, m, f, r))
    m = rand(jax.random.key(0), masks.ones_masks(p), 0.5)
    kept = np.asarray(m["a"]["kernel"]).ravel()
    assert kept.sum() == 200
    # random, not by magnitude: about half of the smallest 200 weights survive
    assert 60 < kept[:200].sum() < 140
    m2 = rand(jax.random.key(0), m, 0.5)
    assert int(m2["a"]["kernel"].sum()) == 100 and not np.any(
        np.asarray(m2["a"]["kernel"]) & ~np.asarray(m["a"]["kernel"])
    )


def test_pruned_weights_stay_exactly_zero_with_momentum_and_weight_decay():
    net = models.MLP(16, (12,), 3)
    params, _ = net.init(jax.random.key(0))
    r = masks.prune_rates(params)
    m = _jprune(r)(params, masks.ones_masks(params), 0.6)
    tx = masks.masked(optax.chain(optax.add_decayed_weights(1e-2), optax.sgd(0.1, momentum=0.9)))
    x = jax.random.normal(jax.random.key(1), (64, 16))
    y = jax.random.randint(jax.random.key(2), (64,), 0, 3)

    def loss(p):
        logits, _ = net.apply(p, None, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    # momentum built up while dense, then pruned mid-training without resetting the optimiser: the buffer is
    # nonzero at pruned entries and the pruned weights are nonzero when the mask is set
    @jax.jit
    def step(p, s):
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, u), s

    state = tx.init(params)
    for _ in range(5):
        params, state = step(params, state)
    state = masks.set_masks(state, m)
    np.testing.assert_array_equal(
        np.asarray(masks.get_masks(state)["hidden"][0]["kernel"]), np.asarray(m["hidden"][0]["kernel"])
    )

    start = params
    for _ in range(50):
        params, state = step(params, state)
    for path_m, path_p, path_0 in zip(jax.tree.leaves(m), jax.tree.leaves(params), jax.tree.leaves(start), strict=True):
        pruned = ~np.asarray(path_m)
        assert np.all(np.asarray(path_p)[pruned] == 0.0)
        assert np.any(np.asarray(path_p)[~pruned] != np.asarray(path_0)[~pruned])  # the rest trained
    assert np.count_nonzero(np.asarray(start["hidden"][0]["kernel"])[~np.asarray(m["hidden"][0]["kernel"])]) > 0


def test_cnn_batchnorm_makes_the_train_mode_output_invariant_to_a_kernel_scale():
    """With BatchNorm after each convolution, scaling a convolution's kernel by c > 0 leaves the training-mode
    logits unchanged (the batch statistics absorb it); without it the logits change. BatchNorm's scale and bias are
    not pruned (only kernels are)."""
    x = jax.random.normal(jax.random.key(0), (16, 8, 8, 1))
    for bn in (True, False):
        net = models.CNN((4, 8), (1, 2), 10, 1, batchnorm=bn)
        params, stats = net.init(jax.random.key(1))
        scaled = jax.tree.map(lambda a: a, params)
        scaled["convs"][0]["kernel"] = 3.0 * params["convs"][0]["kernel"]
        a, new_stats = net.apply(params, stats, x, True)
        b, _ = net.apply(scaled, stats, x, True)
        if bn:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
            # the running statistics moved in training and are used (unchanged) in evaluation
            assert not np.allclose(new_stats[0]["bn"]["mean"], stats[0]["bn"]["mean"])
            _, same = net.apply(params, new_stats, x, False)
            np.testing.assert_array_equal(same[0]["bn"]["var"], new_stats[0]["bn"]["var"])
            rates = masks.prune_rates(params)
            assert float(rates["convs"][0]["bn"]["scale"]) == 0.0 and float(rates["convs"][0]["kernel"]) == 1.0
        else:
            assert not np.allclose(a, b, atol=1e-3)
