"""The networks of the paper's experiments as plain pytrees of weight matrices, applied functionally.

The science here is about individual neurons of one layer (the representation) and the energy of every weight
matrix, so parameters are plain dicts `{"enc": [{"w", "b"}, ...], "dec": [...]}` whose layer structure the config
declares (as collapse/ does), not NNX modules. Every model returns its output and the list of *constrained*
activities (the layers Eq. 2's activity and nonnegativity terms act on); `weights(params)` lists every weight matrix
for the weight-energy term.

Kinds (`ModelConfig.kind`):
  - "supervised": x -> ReLU layers (`hidden`, none by default) -> the code layer (constrained) -> linear readout
    y_hat.
  - "linear_ae": x -> z = W_e x + b_e (constrained code) -> x_hat = W_d z + b_d.
  - "deep_ae": x -> ReLU MLP -> z (constrained code) -> ReLU MLP -> x_hat.
  - "vae": images -> ReLU MLP -> (mu, log sigma^2); the posterior mean goes through the constrained activation
    (a ReLU in the paper's VAE) and is the code; z = mu + sigma eps -> ReLU MLP -> Bernoulli logits.

Nonnegativity as a ReLU is a traced gate `relu` in [0, 1]: a = relu * max(h, 0) + (1 - relu) * h, so constraint
variants with and without the ReLU share one compiled, vmapped program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from common import nn

KINDS = ("supervised", "linear_ae", "deep_ae", "vae")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static shape of a model: kind, input/output sizes, the code size and hidden widths."""

    kind: str
    input_dim: int
    output_dim: int
    code_dim: int
    hidden: tuple[int, ...] = ()


def _mlp(key: jax.Array, sizes: list[int]) -> list[dict]:
    keys = jax.random.split(key, len(sizes) - 1)
    return [nn.dense_init(k, a, b, kernel="w", bias="b") for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def init_params(key: jax.Array, cfg: ModelConfig, mu_bias: jax.Array | float = 0.0) -> dict:
    """PyTorch's default dense init (common.nn.dense_init) for every layer. For the VAE, `mu_bias` is added to the
    initial bias of the posterior-mean outputs (a positive start keeps ReLU / nonnegative latents alive)."""
    k_enc, k_dec = jax.random.split(key)
    h = list(cfg.hidden)
    if cfg.kind == "supervised":
        return {
            "enc": _mlp(k_enc, [cfg.input_dim, *h, cfg.code_dim]),
            "dec": _mlp(k_dec, [cfg.code_dim, cfg.output_dim]),
        }
    if cfg.kind == "linear_ae":
        return {"enc": _mlp(k_enc, [cfg.input_dim, cfg.code_dim]), "dec": _mlp(k_dec, [cfg.code_dim, cfg.output_dim])}
    if cfg.kind == "deep_ae":
        return {
            "enc": _mlp(k_enc, [cfg.input_dim, *h, cfg.code_dim]),
            "dec": _mlp(k_dec, [cfg.code_dim, *reversed(h), cfg.output_dim]),
        }
    if cfg.kind == "vae":
        enc = _mlp(k_enc, [cfg.input_dim, *h, 2 * cfg.code_dim])
        shift = jnp.concatenate([jnp.full((cfg.code_dim,), mu_bias, jnp.float32), jnp.zeros((cfg.code_dim,))])
        enc[-1] = {"w": enc[-1]["w"], "b": enc[-1]["b"] + shift}
        return {"enc": enc, "dec": _mlp(k_dec, [cfg.code_dim, *reversed(h), cfg.output_dim])}
    raise ValueError(f"unknown model kind {cfg.kind!r}; expected one of {KINDS}")


def weights(params: dict) -> list[jax.Array]:
    """Every weight matrix (no biases): the arguments of the weight-energy term."""
    return [layer["w"] for part in ("enc", "dec") for layer in params[part]]


def constrained(h: jax.Array, relu_gate: jax.Array) -> jax.Array:
    """relu_gate * max(h, 0) + (1 - relu_gate) * h: a ReLU when the gate is 1, the identity when it is 0."""
    return relu_gate * jax.nn.relu(h) + (1.0 - relu_gate) * h


def _forward(layers: list[dict], x: jax.Array, hidden_act) -> jax.Array:
    for layer in layers[:-1]:
        x = hidden_act(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


def apply(
    params: dict, x: jax.Array, cfg: ModelConfig, hp: Mapping[str, jax.Array], key: jax.Array | None = None
) -> dict[str, jax.Array | list]:
    """Runs the model on a batch x [B, input_dim].

    Returns {'out': prediction or reconstruction (logits for the VAE), 'code': the representation [B, code_dim],
    'constrained': list of activities the biological terms act on} and for the VAE also 'mu', 'logvar'
    (the posterior mean after the constrained activation, and the log variance). `key` draws the VAE's sample;
    without it the VAE decodes its posterior mean.
    """
    gate = hp["relu"]
    if cfg.kind == "supervised":
        h = constrained(_forward(params["enc"], x, jax.nn.relu), gate)
        out = h @ params["dec"][0]["w"] + params["dec"][0]["b"]
        return {"out": out, "code": h, "constrained": [h]}
    if cfg.kind in ("linear_ae", "deep_ae"):
        z = constrained(_forward(params["enc"], x, jax.nn.relu), gate)
        out = _forward(params["dec"], z, jax.nn.relu)
        return {"out": out, "code": z, "constrained": [z]}
    if cfg.kind == "vae":
        stats = _forward(params["enc"], x, jax.nn.relu)
        mu = constrained(stats[:, : cfg.code_dim], gate)
        logvar = jnp.clip(stats[:, cfg.code_dim :], -10.0, 5.0)
        z = mu if key is None else mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        out = _forward(params["dec"], z, jax.nn.relu)
        return {"out": out, "code": mu, "constrained": [mu], "mu": mu, "logvar": logvar}
    raise ValueError(f"unknown model kind {cfg.kind!r}; expected one of {KINDS}")
