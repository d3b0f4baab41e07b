"""Λ from the graph: margin's own stacks agree with the structural rule; Flax models the package did not write
satisfy the scaling identity with the inferred Λ; wrong or mismatched rates and {0, 1} labels fail in one line."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from margin import models
from margin import quasi_homogeneous as qh


@pytest.mark.parametrize(
    "layers,in_dim",
    [(models.residual_net(6), 2), (models.plain_net(5), 2), (models.bn_mlp((7, 5), 4, 3), 6)],
    ids=["residual_net", "plain_net", "bn_mlp"],
)
def test_traced_rates_equal_the_structural_rule(layers, in_dim):
    params = models.init_stack(jax.random.key(0), layers, in_dim, 1.0, 0.3)
    x = jax.random.normal(jax.random.key(1), (10, in_dim))
    traced = qh.infer_rates(models.stack_fn(layers), params, x)
    structural = qh.infer_rates(layers)
    for a, b in zip(jax.tree.leaves(traced), jax.tree.leaves(structural), strict=True):
        assert a == pytest.approx(b, abs=1e-6)


class Block(nn.Module):
    """A ResNet basic block as in the Flax ImageNet example (BatchNorm on batch statistics)."""

    channels: int

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.channels, (3, 3), use_bias=False)(x)
        y = nn.relu(nn.BatchNorm(use_running_average=False)(y))
        y = nn.Conv(self.channels, (3, 3), use_bias=False)(y)
        y = nn.BatchNorm(use_running_average=False)(y)
        return nn.relu(x + y)


class ResNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.BatchNorm(use_running_average=False)(nn.Conv(8, (3, 3))(x)))
        x = Block(8)(Block(8)(x))
        x = nn.avg_pool(x, (2, 2), (2, 2)).mean(axis=(1, 2))
        return nn.Dense(3)(x)


def _resnet_case():
    model = ResNet()
    x = jax.random.normal(jax.random.key(0), (6, 8, 8, 3))
    variables = model.init(jax.random.key(1), x)
    stats = variables["batch_stats"]

    def f(params, x):
        return model.apply({"params": params, "batch_stats": stats}, x, mutable=["batch_stats"])[0]

    noise = jax.tree.map(lambda a: 0.2 * jax.random.normal(jax.random.key(3), a.shape), variables["params"])
    params = jax.tree.map(jnp.add, variables["params"], noise)  # nonzero biases and scales away from 1
    return f, params, x


def test_flax_resnet_rates_satisfy_the_scaling_identity():
    f, params, x = _resnet_case()
    rates = qh.infer_rates(f, params, x)
    # everything before the last BatchNorm (convolutions, BatchNorm scales and biases) feeds a normalisation or the
    # residual stream that does: rate 0; only the head (W, b) scales
    flat = {qh.path_name(p): r for p, r in jax.tree_util.tree_flatten_with_path(rates)[0]}
    assert flat.pop("Dense_0/kernel") == pytest.approx(1.0) and flat.pop("Dense_0/bias") == pytest.approx(1.0)
    assert all(v == 0.0 for v in flat.values()), flat
    assert qh.check_rates(f, params, rates, x) < 1e-4
    # the scaling identity at a large α, directly
    scaled = f(qh.scale(params, rates, 1.5), x)
    np.testing.assert_allclose(scaled, np.exp(1.5) * f(params, x), rtol=1e-3, atol=1e-4)
    wrong = jax.tree.map(lambda r: r, rates)
    wrong["Block_1"]["BatchNorm_1"]["scale"] = 1.0
    with pytest.raises(qh.NotQuasiHomogeneous, match="Block_1/BatchNorm_1/scale"):
        qh.check_rates(f, params, wrong, x)


class _NNXNet(nnx.Module):
    """Conv -> affine LayerNorm -> ReLU -> residual Dense block -> average pool -> Dense (Flax NNX)."""

    def __init__(self, rngs):
        self.conv = nnx.Conv(2, 4, (3, 3), rngs=rngs)
        self.norm = nnx.LayerNorm(4, rngs=rngs)
        self.inner = nnx.Linear(4, 4, rngs=rngs)
        self.head = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.norm(self.conv(x)))
        h = h + nnx.relu(self.inner(h))
        return self.head(nnx.avg_pool(h, (2, 2), (2, 2)).mean(axis=(1, 2)))


def test_flax_nnx_model_rates():
    graphdef, state = nnx.split(_NNXNet(nnx.Rngs(0)))
    state = jax.tree.map(lambda a: a + 0.1, state)
    x = jax.random.normal(jax.random.key(2), (5, 6, 6, 2))

    def f(s, x):
        return nnx.merge(graphdef, s)(x)

    rates = qh.infer_rates(f, state, x)
    assert qh.check_rates(f, state, rates, x) < 1e-4
    flat = {qh.path_name(p): r for p, r in jax.tree_util.tree_flatten_with_path(rates)[0]}
    # LayerNorm's scale and bias set the stream's rate a; the residual branch's weight 0 and its bias a;
    # the head's kernel 1 - a and bias 1; minimum norm over the factors (scale, head kernel): a = 1/2
    assert flat["conv/kernel/value"] == 0.0 and flat["conv/bias/value"] == 0.0
    assert flat["norm/scale/value"] == pytest.approx(0.5, abs=1e-6)
    assert flat["norm/bias/value"] == pytest.approx(0.5, abs=1e-6)
    assert flat["inner/kernel/value"] == 0.0 and flat["inner/bias/value"] == pytest.approx(0.5, abs=1e-6)
    assert flat["head/kernel/value"] == pytest.approx(0.5, abs=1e-6)
    assert flat["head/bias/value"] == pytest.approx(1.0, abs=1e-6)


def test_no_rates_for_a_tanh_network():
    with pytest.raises(ValueError, match="no rates"):
        qh.infer_rates(
            lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"] * 0 + jnp.tanh(x @ p["w"]).sum(1),
            {"w": jnp.ones((2, 3)), "v": jnp.ones(3)},
            jnp.ones((4, 2)),
        )


def test_homogeneous_net_declared_identity_is_told_the_uniform_rates():
    layers = models.plain_net(5)
    params = models.init_stack(jax.random.key(0), layers, 2)
    x = jax.random.normal(jax.random.key(1), (12, 2))
    f = models.stack_fn(layers, squeeze=True)
    identity = jax.tree.map(lambda _: 1.0, params)
    with pytest.raises(qh.NotQuasiHomogeneous, match=r"homogeneous of order 3: use the uniform Λ = I/3"):
        qh.check_rates(f, params, identity, x)


def test_mismatched_rates_tree_is_one_line_naming_rates():
    layers = models.plain_net(5)
    params = models.init_stack(jax.random.key(0), layers, 2)
    x = jnp.ones((3, 2))
    bad = {"in": {"w": 1 / 3}, "out": {"w": 1 / 3}}
    for call in (
        lambda: qh.check_rates(models.stack_fn(layers), params, bad, x),
        lambda: qh.seminorm(params, bad),
        lambda: qh.scale(params, bad, 0.3),
    ):
        with pytest.raises(ValueError, match=r"^rates: its tree does not match the parameters' \(missing block/w\)$"):
            call()
