"""SGD training of the list-of-layers MLP/CNN classifiers and the BatchNorm ResNet as pure, vmappable functions.

One run is ``state -> state`` over ``lax.scan`` steps, parametrised by scalar hyperparameters (traced, so a whole
grid is one ``jit(vmap(...))`` through :func:`common.sweep.vmapped`):

* ``lr``: learning rate until step ``switch``; ``lr_late`` after it (the large-learning-rate-early experiment);
* ``weight_decay``: L2 coupling added to the gradient before momentum (PyTorch SGD convention);
* ``label_noise``: probability that a loaded example's label is replaced by a uniformly random class, redrawn
  every time the example is loaded (the paper's label-noise setting).

SGD with momentum 0.9 through :func:`common.nn.per_run_lr` (``optax.inject_hyperparams``): before every update the
rate is set to :func:`lr_schedule` of the optimizer's step count (the switch and the warmup), the weight decay is a
traced per-run value; both sit in the optimizer state and so in checkpoints. Minibatches are drawn uniformly with
replacement using ``fold_in(key, step)``, so a run is reproducible and resumable at any chunk boundary.

ResNet runs also carry their BatchNorm running statistics in the state (``state["stats"]``): training normalises
with each minibatch's own statistics (under ``vmap`` every run over its own minibatch) and updates the running
ones, which evaluation uses. An optional linear warmup (``Task.warmup_steps``, the released ResNet config's 1000
steps) scales the rate by ``min(1, (count + 1) / warmup_steps)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from collapse import models
from common import checkpoint, nn

HPARAMS = ("lr", "lr_late", "switch", "weight_decay", "label_noise")


@dataclasses.dataclass(frozen=True)
class Task:
    """Static description of a classification run (shapes, architecture, batch size).

    Attributes:
      arch: "mlp" (inputs flattened), "cnn" or "resnet" (CIFAR ResNet with BatchNorm, see
        :func:`collapse.models.init_resnet`).
      widths: hidden widths (MLP units, CNN channels, or ResNet stage widths).
      num_classes: output size.
      input_shape: shape of one example, e.g. (8, 8, 1).
      batch_size: minibatch size (static: it is a shape).
      act: hidden activation (must have act(0) = 0 for the invariant sets).
      momentum: SGD momentum.
      maxpool_after: CNN layers followed by 2x2 max pooling (VGG).
      dense_head: hidden widths of the dense layers after a max-pooled CNN (VGG).
      blocks: ResNet BasicBlocks per stage (ResNet-18: 2).
      warmup_steps: linear learning-rate warmup length (0 = none).
      augment: random crop (zero padding 4) and horizontal flip of every loaded image (the released CIFAR
        pipeline).
      full_batch: noise-free full-batch gradient descent (every step uses the whole training set, no
        augmentation, ``batch_size`` ignored) on the *expected* loss under the run's label noise (soft targets,
        :func:`expected_cross_entropy`; clean labels at label noise 0): the control that shows what SGD's
        gradient noise, minibatch and label noise alike, adds to the same objective.
    """

    arch: str
    widths: tuple[int, ...]
    num_classes: int
    input_shape: tuple[int, ...]
    batch_size: int
    act: str = "gelu"
    momentum: float = 0.9
    maxpool_after: tuple[int, ...] = ()
    dense_head: tuple[int, ...] = ()
    blocks: int = 2
    warmup_steps: int = 0
    augment: bool = False
    full_batch: bool = False

    def init(self, key: jax.Array) -> Any:
        """Initial parameters."""
        if self.arch == "resnet":
            return models.init_resnet(key, self.input_shape[-1], self.widths, self.num_classes, blocks=self.blocks)
        if self.arch == "mlp":
            sizes = (int(np.prod(self.input_shape)), *self.widths, self.num_classes)
            return models.init_mlp(key, sizes)
        if self.arch == "cnn":
            k1, k2 = jax.random.split(key)
            convs = models.init_cnn(k1, self.input_shape[-1], self.widths, self.num_classes)[:-1]
            fan_in = self.widths[-1] * self._spatial_after_convs()
            head = models.init_mlp(k2, (fan_in, *self.dense_head, self.num_classes))
            return convs + head
        raise ValueError(f"arch must be 'mlp', 'cnn' or 'resnet', got {self.arch!r}")

    def _spatial_after_convs(self) -> int:
        if not self.maxpool_after:
            return 1  # global average pooling
        h, w = self.input_shape[0], self.input_shape[1]
        f = 2 ** len(self.maxpool_after)
        return (h // f) * (w // f)

    def init_stats(self, params: Any) -> Any:
        """BatchNorm running statistics (ResNet), else None."""
        return models.init_resnet_stats(params) if self.arch == "resnet" else None

    def apply_train(self, params: Any, stats: Any, x: jax.Array) -> tuple[jax.Array, Any]:
        """Training-mode logits and updated running statistics (unchanged None for MLP/CNN)."""
        if self.arch == "resnet":
            return models.apply_resnet(params, x, stats, train=True, act=self.act)
        return self.apply(params, x), stats

    def apply(self, params: Any, x: jax.Array, stats: Any = None) -> jax.Array:
        """Logits ``[B, num_classes]`` (evaluation mode: a ResNet uses the running statistics ``stats``)."""
        if self.arch == "resnet":
            return models.apply_resnet(params, x, stats, train=False, act=self.act)[0]
        if self.arch == "mlp":
            return models.apply(params, x.reshape(x.shape[0], -1), act=self.act)
        pool = "flatten" if self.maxpool_after else "mean"
        return models.apply(params, x, act=self.act, pool=pool, maxpool_after=self.maxpool_after)


def lr_schedule(task: Task, hp: dict[str, jax.Array]) -> optax.Schedule:
    """The run's rate at update ``count``: ``lr`` before step ``switch``, ``lr_late`` from it on, times the linear
    warmup ``min(1, (count + 1) / warmup_steps)`` when the task has one (hp values may be traced)."""

    def schedule(count: jax.Array) -> jax.Array:
        lr = jnp.where(count < hp["switch"], hp["lr"], hp["lr_late"])
        if task.warmup_steps:
            lr = lr * jnp.minimum(1.0, (count + 1) / task.warmup_steps)
        return jnp.asarray(lr, jnp.float32)

    return schedule


def make_optimizer(task: Task, hp: dict[str, jax.Array]) -> optax.GradientTransformation:
    """SGD with momentum and coupled weight decay, its rate held in the optimizer state (:func:`common.nn.per_run_lr`;
    :func:`run_steps` sets it to :func:`lr_schedule` of the optimizer's own step count before every update, so a
    resumed run continues the schedule), the decay injected per run."""

    def build(learning_rate, weight_decay):
        return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate, momentum=task.momentum))

    return nn.per_run_lr(build, weight_decay=hp["weight_decay"])


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def expected_cross_entropy(logits: jax.Array, labels: jax.Array, p: jax.Array, num_classes: int) -> jax.Array:
    """Mean cross-entropy averaged over the label noise of :func:`noisy_labels`: against the soft targets
    (1 - p) onehot(label) + p / num_classes (at p = 0 exactly :func:`cross_entropy`)."""
    onehot = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
    return optax.softmax_cross_entropy(logits, (1 - p) * onehot + p / num_classes).mean()


def noisy_labels(key: jax.Array, labels: jax.Array, p: jax.Array, num_classes: int) -> jax.Array:
    """Each label replaced by a uniform random class with probability ``p`` (fresh draw on every call)."""
    k1, k2 = jax.random.split(key)
    flip = jax.random.uniform(k1, labels.shape) < p
    return jnp.where(flip, jax.random.randint(k2, labels.shape, 0, num_classes), labels)


def init_state(task: Task, key: jax.Array, hp: dict[str, jax.Array]) -> dict[str, Any]:
    """Initial training state ``{"params", "opt", "key"}`` (key stored as raw key data for checkpoints), plus
    ``"stats"`` (BatchNorm running statistics) for a ResNet."""
    k_init, k_loop = jax.random.split(key)
    params = task.init(k_init)
    state = {"params": params, "opt": make_optimizer(task, hp).init(params), "key": jax.random.key_data(k_loop)}
    if task.arch == "resnet":
        state["stats"] = task.init_stats(params)
    return state


def run_steps(
    task: Task,
    state: dict[str, Any],
    hp: dict[str, jax.Array],
    data: tuple[jax.Array, jax.Array],
    start: jax.Array,
    num_steps: int,
) -> tuple[dict[str, Any], jax.Array]:
    """Advances one run by ``num_steps`` SGD steps from global step ``start``.

    Returns the new state and ``{"loss": mean train loss, "first_nonfinite": step or -1}``; at a non-finite loss the
    state stops being updated (the step before it is kept).
    """
    x_train, y_train = data
    n = x_train.shape[0]
    opt = make_optimizer(task, hp)
    schedule = lr_schedule(task, hp)
    key = jax.random.wrap_key_data(state["key"])

    def step(carry, i):
        params, opt_state, stats = carry
        t = start + i
        k_batch, k_label = jax.random.split(jax.random.fold_in(key, t))
        if task.full_batch:
            xb, yb = x_train, y_train
        else:
            idx = jax.random.randint(k_batch, (task.batch_size,), 0, n)
            xb = x_train[idx]
            yb = noisy_labels(k_label, y_train[idx], hp["label_noise"], task.num_classes)
            if task.augment:
                xb = nn.augment(jax.random.fold_in(k_batch, 1), xb)

        def loss_fn(p):
            logits, new_stats = task.apply_train(p, stats, xb)
            if task.full_batch:  # the expected loss under label noise: no sampled noise of either kind
                return expected_cross_entropy(logits, yb, hp["label_noise"], task.num_classes), new_stats
            return cross_entropy(logits, yb), new_stats

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        opt_state = nn.set_lr(opt_state, schedule(opt_state.count))
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, stats), loss

    carry = (state["params"], state["opt"], state.get("stats"))
    # Stops updating at the first non-finite loss and reports that step (common.checkpoint.guarded_scan).
    (params, opt_state, stats), losses, bad = checkpoint.guarded_scan(
        lambda c, t: step(c, t - start), carry, start, num_steps
    )
    out = {"params": params, "opt": opt_state, "key": state["key"]}
    if "stats" in state:
        out["stats"] = stats
    return out, {"loss": losses.mean(), checkpoint.NONFINITE: bad}


def accuracy(
    task: Task, params: Any, x: jax.Array, y: jax.Array, stats: Any = None, *, eval_batch: int = 1000
) -> jax.Array:
    """Classification accuracy on ``(x, y)`` (a ResNet in evaluation mode with running ``stats``, evaluated in
    slices of ``eval_batch`` examples to bound activation memory)."""
    if task.arch != "resnet":
        return jnp.mean(jnp.argmax(task.apply(params, x), axis=-1) == y)

    def hits(xb, yb):
        return jnp.sum(jnp.argmax(task.apply(params, xb, stats), axis=-1) == yb)

    n = x.shape[0]
    full = n // eval_batch * eval_batch
    total = jnp.zeros((), jnp.int32)
    if full:  # whole slices as one lax.map (one traced body, however many slices)
        xs = x[:full].reshape(-1, eval_batch, *x.shape[1:])
        total = total + jnp.sum(jax.lax.map(lambda b: hits(*b), (xs, y[:full].reshape(-1, eval_batch))))
    if full < n:
        total = total + hits(x[full:], y[full:])
    return total / n


def train(
    task: Task,
    key: jax.Array,
    hp: dict[str, jax.Array],
    data: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    num_steps: int,
) -> tuple[dict[str, Any], dict[str, jax.Array]]:
    """One whole run as a pure function (for ``jit(vmap)``): returns the final state and test accuracy."""
    state = init_state(task, key, hp)
    state, m = run_steps(task, state, hp, data[:2], jnp.asarray(0), num_steps)
    return state, {"train_loss": m["loss"], "test_acc": accuracy(task, state["params"], *data[2:], state.get("stats"))}
