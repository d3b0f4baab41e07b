"""Model primitives shared by the packages that write their networks as plain pytrees of arrays.

Pure functions on arrays, so a network is a dict of arrays that `vmap` maps over runs and orbax checkpoints as it is:

- `dense_init(key, n_in, n_out)`: PyTorch's `nn.Linear` / `nn.Conv2d` default, kernel and bias uniform in
  ±1/√fan_in (`conv_init` for a kernel [kh, kw, c_in, c_out]).
- `batch_norm(x, params, stats, train)`: BatchNorm over every axis but the last, with PyTorch's conventions: batch
  statistics with the biased variance in training, running statistics updated as
  `running <- (1 - momentum) running + momentum batch` with the unbiased variance, running statistics at evaluation.
- `conv2d(x, w, stride)`: NHWC convolution with PyTorch's padding (k - 1) // 2, as one matmul over the shifted views
  (im2col; XLA's CPU convolution is slower than this inside a training scan for small images); equal to
  `lax.conv_general_dilated` (tested).
- `augment(key, x, pad)`: random crop from the zero-padded image and random horizontal flip, per image.
- `per_run_lr(make_optimizer)`: the one mechanism for a learning rate that varies per run (or per step): the
  optimizer is built with `optax.inject_hyperparams`, so its rate lives in the optimizer state, a traced value that
  `vmap` maps over runs; `set_lr(opt_state, lr)` writes it.

Which packages use Flax NNX and which keep plain pytrees is decided in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch: running <- (1 - m) running + m batch


def dense_init(key: jax.Array, n_in: int, n_out: int, *, kernel: str = "kernel", bias: str = "bias") -> dict:
    """PyTorch's `nn.Linear` default: kernel [n_in, n_out] and bias [n_out] uniform in ±1/√n_in."""
    kw, kb = jax.random.split(key)
    bound = 1.0 / jnp.sqrt(jnp.float32(n_in))
    return {
        kernel: jax.random.uniform(kw, (n_in, n_out), minval=-bound, maxval=bound),
        bias: jax.random.uniform(kb, (n_out,), minval=-bound, maxval=bound),
    }


def conv_init(key: jax.Array, kh: int, kw: int, c_in: int, c_out: int, *, bias: bool = True) -> dict:
    """PyTorch's `nn.Conv2d` default: kernel [kh, kw, c_in, c_out] (and bias) uniform in ±1/√(kh·kw·c_in)."""
    k_w, k_b = jax.random.split(key)
    bound = 1.0 / jnp.sqrt(jnp.float32(kh * kw * c_in))
    out = {"kernel": jax.random.uniform(k_w, (kh, kw, c_in, c_out), minval=-bound, maxval=bound)}
    if bias:
        out["bias"] = jax.random.uniform(k_b, (c_out,), minval=-bound, maxval=bound)
    return out


def batch_norm_init(c: int) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """(params, running statistics) of a BatchNorm over `c` features: scale 1, bias 0, mean 0, variance 1."""
    params = {"scale": jnp.ones((c,)), "bias": jnp.zeros((c,))}
    stats = {"mean": jnp.zeros((c,)), "var": jnp.ones((c,))}
    return params, stats


def batch_norm(
    x: jax.Array,
    params: dict[str, jax.Array] | None,
    stats: dict[str, jax.Array],
    train: bool,
    *,
    momentum: float = BN_MOMENTUM,
    eps: float = BN_EPS,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """BatchNorm over every axis of `x` but the last; returns (normalised x, new running statistics).

    `params` holds "scale" and "bias" (None: not affine). Train: the batch's mean and biased variance normalise,
    and the running statistics move by `momentum` towards the batch mean and the unbiased variance (PyTorch);
    evaluation: the running statistics normalise and are returned unchanged.
    """
    axes = tuple(range(x.ndim - 1))
    if train:
        mean = x.mean(axis=axes)
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        n = x.size // x.shape[-1]
        unbiased = var * (n / max(n - 1, 1))
        new = {
            "mean": (1 - momentum) * stats["mean"] + momentum * jax.lax.stop_gradient(mean),
            "var": (1 - momentum) * stats["var"] + momentum * jax.lax.stop_gradient(unbiased),
        }
    else:
        mean, var, new = stats["mean"], stats["var"], stats
    y = (x - mean) * jax.lax.rsqrt(var + eps)
    if params is not None:
        y = y * params["scale"] + params["bias"]
    return y, new


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
    """Convolution `[B, H, W, C] * [kh, kw, C, O] -> [B, H', W', O]` with PyTorch's padding `(k - 1) // 2`.

    At stride 1 and an odd kernel the output keeps H and W ("same"); at stride s it is `(H + 2p - kh) // s + 1`.
    """
    kh, kw, c, o = w.shape
    _, hh, ww, _ = x.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    ho, wo = (hh + 2 * ph - kh) // stride + 1, (ww + 2 * pw - kw) // stride + 1
    xp = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    views = [
        xp[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)
    return patches @ w.reshape(kh * kw * c, o)


def augment(key: jax.Array, x: jax.Array, pad: int = 4) -> jax.Array:
    """Random crop from the zero-padded image (a shift of up to `pad` pixels each way) and a random horizontal flip,
    drawn independently for each image of `x` [B, H, W, C]."""
    b, h, w, _ = x.shape
    k_shift, k_flip = jax.random.split(key)
    shifts = jax.random.randint(k_shift, (b, 2), 0, 2 * pad + 1)
    flips = jax.random.bernoulli(k_flip, 0.5, (b,))
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(img, shift, flip):
        crop = jax.lax.dynamic_slice(img, (shift[0], shift[1], 0), (h, w, img.shape[-1]))
        return jnp.where(flip, crop[:, ::-1], crop)

    return jax.vmap(one)(xp, shifts, flips)


def per_run_lr(
    make_optimizer: Callable[..., optax.GradientTransformation], **kwargs: Any
) -> optax.GradientTransformation:
    """`make_optimizer(learning_rate=..., **kwargs)` with its learning rate held in the optimizer state.

    Initialise with `tx.init(params)`, then `set_lr(opt_state, lr)` with a traced per-run (or per-step) value; the
    rate is read from the state at every update, so one compiled step serves every run of a sweep and any schedule
    computed from the step count.
    """
    return optax.inject_hyperparams(make_optimizer)(learning_rate=0.0, **kwargs)


def set_lr(opt_state: Any, lr: Any) -> Any:
    """The optimizer state of a `per_run_lr` optimizer with its learning rate set to `lr` (found at any depth)."""
    if hasattr(opt_state, "hyperparams") and "learning_rate" in opt_state.hyperparams:
        hp = dict(opt_state.hyperparams)
        hp["learning_rate"] = jnp.asarray(lr, jnp.asarray(hp["learning_rate"]).dtype)
        return opt_state._replace(hyperparams=hp)
    if isinstance(opt_state, tuple) and not hasattr(opt_state, "_fields"):
        return tuple(set_lr(s, lr) for s in opt_state)
    if hasattr(opt_state, "_fields"):
        return type(opt_state)(*(set_lr(s, lr) for s in opt_state))
    return opt_state


def get_lr(opt_state: Any) -> Any:
    """The learning rate held in a `per_run_lr` optimizer state (the first one found), or None."""
    if hasattr(opt_state, "hyperparams") and "learning_rate" in opt_state.hyperparams:
        return opt_state.hyperparams["learning_rate"]
    if isinstance(opt_state, tuple):
        for s in opt_state:
            found = get_lr(s)
            if found is not None:
                return found
    return None
