"""The GPT-2 style transformer that reads a regression prompt (Raventós et al. 2023, Sec. 2).

Pre-LayerNorm blocks, learned positional embeddings, causal multi-head attention, a 4x MLP with GELU, no dropout,
weights initialised N(0, 0.02) with the residual projections scaled by 1/sqrt(2L); a bias-free linear read-in of the
(D + 1)-wide tokens and a bias-free linear read-out to one number. The prompt x_1, y_1, ..., x_K, y_K is written as
tokens [0, x_k] and [y_k, 0, ..., 0] interleaved, and the prediction for y_k is read at the token of x_k.

The model is a Flax NNX module; `init_params` / `apply` are its functional side (nnx.split / nnx.merge), so the
parameters travel through jit/vmap/scan as a plain nested dict of arrays.
"""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static sizes of the transformer (shapes, so they are never traced)."""

    dim: int  # D, the regression dimension
    num_points: int  # K, pairs per prompt
    num_layers: int
    width: int
    num_heads: int


def to_tokens(xs_BxKxD: jax.Array, ys_BxK: jax.Array) -> jax.Array:
    """Interleaves x_k as [0, x_k] and y_k as [y_k, 0, ..., 0]: returns [B, 2K, D + 1]."""
    b, k, d = xs_BxKxD.shape
    x_tok = jnp.concatenate([jnp.zeros((b, k, 1), xs_BxKxD.dtype), xs_BxKxD], axis=-1)
    y_tok = jnp.concatenate([ys_BxK[..., None], jnp.zeros((b, k, d), ys_BxK.dtype)], axis=-1)
    return jnp.stack([x_tok, y_tok], axis=2).reshape(b, 2 * k, d + 1)


class Block(nnx.Module):
    """One pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, num_heads: int, num_layers: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.normal(0.02)
        # GPT-2: the two projections that write into the residual stream start 1/sqrt(2L) smaller.
        resid_init = nnx.initializers.normal(0.02 / math.sqrt(2 * num_layers))
        self.num_heads = num_heads
        self.ln_1 = nnx.LayerNorm(width, epsilon=1e-5, rngs=rngs)
        self.qkv = nnx.Linear(width, 3 * width, kernel_init=init, rngs=rngs)
        self.attn_out = nnx.Linear(width, width, kernel_init=resid_init, rngs=rngs)
        self.ln_2 = nnx.LayerNorm(width, epsilon=1e-5, rngs=rngs)
        self.fc = nnx.Linear(width, 4 * width, kernel_init=init, rngs=rngs)
        self.fc_out = nnx.Linear(4 * width, width, kernel_init=resid_init, rngs=rngs)

    def __call__(self, h_BxTxW: jax.Array) -> jax.Array:
        b, t, w = h_BxTxW.shape
        nh = self.num_heads
        q, k, v = jnp.split(self.qkv(self.ln_1(h_BxTxW)), 3, axis=-1)
        q, k, v = (a.reshape(b, t, nh, w // nh) for a in (q, k, v))
        # XLA's fused causal attention (measured as fast as the explicit einsum/softmax form on CPU).
        out = jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(b, t, w)
        h_BxTxW = h_BxTxW + self.attn_out(out)
        return h_BxTxW + self.fc_out(jax.nn.gelu(self.fc(self.ln_2(h_BxTxW)), approximate=True))


class Transformer(nnx.Module):
    """Read-in, positional embedding, L pre-LN blocks, final LayerNorm, read-out at the x tokens."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        if cfg.width % cfg.num_heads:
            raise ValueError(f"width {cfg.width} is not divisible by num_heads {cfg.num_heads}")
        init = nnx.initializers.normal(0.02)
        self.read_in = nnx.Linear(cfg.dim + 1, cfg.width, use_bias=False, kernel_init=init, rngs=rngs)
        self.wpe = nnx.Param(init(rngs.params(), (2 * cfg.num_points, cfg.width)))
        self.blocks = nnx.List(
            [Block(cfg.width, cfg.num_heads, cfg.num_layers, rngs=rngs) for _ in range(cfg.num_layers)]
        )
        self.ln_f = nnx.LayerNorm(cfg.width, epsilon=1e-5, rngs=rngs)
        self.read_out = nnx.Linear(cfg.width, 1, use_bias=False, kernel_init=init, rngs=rngs)

    def __call__(self, xs_BxKxD: jax.Array, ys_BxK: jax.Array) -> jax.Array:
        tokens = to_tokens(xs_BxKxD, ys_BxK)
        h = self.read_in(tokens) + self.wpe[...][: tokens.shape[1]]
        for block in self.blocks:
            h = block(h)
        out_BxT = self.read_out(self.ln_f(h))[..., 0]
        return out_BxT[:, 0::2]  # the prediction of y_k sits at the token of x_k


def graphdef(cfg: ModelConfig) -> nnx.GraphDef:
    """The static structure of the model (no arrays allocated)."""
    gd, _ = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))
    return gd


def init_params(key: jax.Array, cfg: ModelConfig) -> dict:
    """Fresh parameters as a nested dict of arrays (traceable, so it works under vmap over keys)."""
    _, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(params=key)))
    return nnx.to_pure_dict(state)


def apply(gd: nnx.GraphDef, params: dict, xs_BxKxD: jax.Array, ys_BxK: jax.Array) -> jax.Array:
    """Predictions [B, K] of y_k from the prompt prefix (x_1, y_1, ..., x_k)."""
    chex.assert_rank([xs_BxKxD, ys_BxK], [3, 2])
    return nnx.merge(gd, params)(xs_BxKxD, ys_BxK)


def num_params(params: dict) -> int:
    """Number of scalar parameters (reported per model size in results.json)."""
    return int(sum(x.size for x in jax.tree.leaves(params)))


def train_flops_per_step(cfg: ModelConfig, batch_size: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3x forward), counted analytically."""
    t, w = 2 * cfg.num_points, cfg.width
    per_token = (cfg.dim + 1) * w + cfg.num_layers * (3 * w * w + w * w + 8 * w * w) + w
    attention = cfg.num_layers * 2 * t * w  # q.k and att.v per token (full causal square, as computed)
    return 3.0 * 2.0 * batch_size * t * (per_token + attention)
