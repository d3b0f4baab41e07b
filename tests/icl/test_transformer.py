"""icl.transformer: token layout, causality, GPT-2 initialisation."""

import jax
import jax.numpy as jnp
import numpy as np

from icl import transformer

CFG = transformer.ModelConfig(dim=3, num_points=6, num_layers=2, width=16, num_heads=2)


def test_tokens_interleave_x_and_y():
    xs = jnp.arange(2 * 2 * 3, dtype=jnp.float32).reshape(2, 2, 3) + 1
    ys = jnp.array([[10.0, 20.0], [30.0, 40.0]])
    tok = np.asarray(transformer.to_tokens(xs, ys))
    assert tok.shape == (2, 4, 4)
    np.testing.assert_array_equal(tok[0, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(tok[0, 1], [10, 0, 0, 0])
    np.testing.assert_array_equal(tok[1, 2], [0, 10, 11, 12])
    np.testing.assert_array_equal(tok[1, 3], [40, 0, 0, 0])


def test_model_is_causal():
    gd = transformer.graphdef(CFG)
    params = jax.jit(transformer.init_params, static_argnums=1)(jax.random.key(0), CFG)
    apply = jax.jit(lambda p, x, y: transformer.apply(gd, p, x, y))
    # larger weights than the 0.02 init so that every dependence is far above rounding
    params = jax.tree.map(lambda p: p * 20.0 if p.ndim == 2 else p, params)
    xs = jax.random.normal(jax.random.key(1), (4, 6, 3))
    ys = jax.random.normal(jax.random.key(2), (4, 6))
    base = np.asarray(apply(params, xs, ys))
    for k in range(6):
        moved_y = np.asarray(apply(params, xs, ys.at[:, k].add(3.0)))
        np.testing.assert_array_equal(moved_y[:, : k + 1], base[:, : k + 1])  # y_k is not seen at x_1..x_k
        if k < 5:
            assert np.abs(moved_y[:, k + 1 :] - base[:, k + 1 :]).min() > 1e-6  # but is seen afterwards
        moved_x = np.asarray(apply(params, xs.at[:, k].add(1.0), ys))
        np.testing.assert_array_equal(moved_x[:, :k], base[:, :k])
        assert np.abs(moved_x[:, k] - base[:, k]).min() > 1e-6


def test_gpt2_initialisation_scales():
    cfg = transformer.ModelConfig(4, 8, 4, 64, 2)
    params = jax.jit(transformer.init_params, static_argnums=1)(jax.random.key(0), cfg)
    block = params["blocks"][0]
    np.testing.assert_allclose(np.std(block["qkv"]["kernel"]), 0.02, rtol=0.05)
    np.testing.assert_allclose(np.std(block["fc_out"]["kernel"]), 0.02 / np.sqrt(8), rtol=0.05)
    np.testing.assert_allclose(np.std(params["wpe"]), 0.02, rtol=0.15)
    assert "bias" not in params["read_in"] and "bias" not in params["read_out"]
    assert float(jnp.abs(block["qkv"]["bias"]).max()) == 0.0
    np.testing.assert_array_equal(block["ln_1"]["scale"], 1.0)


def test_flop_count_matches_parameter_count():
    # every weight matrix does one multiply-add per token: 2 * params * tokens, x3 for backward
    cfg = transformer.ModelConfig(dim=4, num_points=8, num_layers=2, width=32, num_heads=2)
    params = jax.eval_shape(lambda: transformer.init_params(jax.random.key(0), cfg))
    matrices = [int(np.prod(x.shape)) for x in jax.tree.leaves(params) if len(x.shape) == 2]
    matrix_params = sum(matrices) - 2 * 8 * 32  # minus the positional embedding
    attention = 2 * 2 * 16 * 32
    assert transformer.train_flops_per_step(cfg, 64) == 6 * 64 * 16 * (matrix_params + attention)
