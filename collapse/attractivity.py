"""Stochastic attractivity of invariant sets (paper Sec. 4): the curvature-vs-noise condition and simulations.

Near an invariant set the coordinates ``z`` normal to it follow, to first order, the random linear map

    z_{k+1} = (I - eta J_k) z_k,   J_k = Hbar + A_k,   E[A_k] = 0,

where ``Hbar`` is the loss Hessian in the normal directions and ``A_k`` its minibatch / label-noise fluctuation
(on a vanishing set every per-sample gradient vanishes, so the gradient noise is itself linear in ``z``). Along a
direction ``e`` (unit, an eigenvector of ``Hbar`` with eigenvalue ``h``) the log-distance drifts by
``-eta h - eta^2 s / 2`` per step with ``s = E[(e^T A_k e)^2]`` (Ito / second order), so the set attracts when

    h + (eta / 2) s > 0                                                                  (curvature condition)

even for ``h < 0`` (a saddle or a maximum of the loss): the critical learning rate is ``eta_c = -2 h / s``. In the
1-D SDE form ``d theta = -L'(theta) dt + g(theta) dW`` with ``g(0) = 0`` this is ``L''(0) + g'(0)^2 / 2 > 0``,
i.e. ``L''(0) + D''(0) / 2 > 0`` with ``D = g^2 / 2`` (the notes' normalisation). For the quartic well
``d theta = -(theta^3 - mu theta) dt + zeta theta dW`` it gives ``zeta_c = sqrt(2 mu)``
(``sqrt(3)`` at
``mu = 1.5``). Beyond the second-order condition, :func:`lyapunov_exponent` computes the exact top Lyapunov
exponent of the linearised SGD map by Monte Carlo (no small-``eta`` expansion).

Simulations (:func:`simulate_sde_1d`, :func:`simulate_single_neuron_sde`,
:func:`simulate_hidden_neuron_sgd`)
run thousands of trajectories at once (vectorised over seeds and ``vmap``-ed over the swept noise level) to
measure the collapse probability.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

# ----------------------------------------------------------------------------------------------------------
# 1-D SDE toys


def quartic_loss(theta: jax.Array, mu: float = 1.5) -> jax.Array:
    """The quartic well ``L = theta^4 / 4 - mu theta^2 / 2`` (drift ``-(theta^3 - mu theta)``, Fig. 1)."""
    return theta**4 / 4.0 - mu * theta**2 / 2.0


def margin_1d(
    loss_fn: Callable[[jax.Array], jax.Array],
    noise_fn: Callable[[jax.Array], jax.Array],
    theta_star: float = 0.0,
) -> float:
    """``L''(theta*) + D''(theta*) / 2`` with ``D = g^2 / 2``: positive means theta* attracts (1-D condition).

    Args:
      loss_fn: the loss ``L`` whose negative gradient is the drift.
      noise_fn: the diffusion coefficient ``g`` (``d theta = -L' dt + g dW``); must vanish at theta*.
      theta_star: the invariant point.
    """
    t = jnp.asarray(theta_star, jnp.float32)
    curv = jax.grad(jax.grad(loss_fn))(t)
    d2 = jax.grad(jax.grad(lambda th: 0.5 * noise_fn(th) ** 2))(t)
    return float(curv + 0.5 * d2)


def critical_noise_1d(
    loss_fn: Callable[[jax.Array], jax.Array],
    noise_shape: Callable[[jax.Array], jax.Array],
    theta_star: float = 0.0,
) -> float:
    """Smallest ``zeta`` for which ``g = zeta * noise_shape`` makes theta* attractive (0 if it already is).

    The margin is ``L'' + zeta^2 h'(0)^2 / 2`` for ``g = zeta h`` with ``h(0) = 0``, so
    ``zeta_c = sqrt(-2 L'' / h'^2)``.
    """
    t = jnp.asarray(theta_star, jnp.float32)
    curv = float(jax.grad(jax.grad(loss_fn))(t))
    slope = float(jax.grad(noise_shape)(t))
    if curv >= 0:
        return 0.0
    if slope == 0:
        return float("inf")
    return float(np.sqrt(-2.0 * curv / slope**2))


def simulate_sde_1d(
    key: jax.Array,
    drift: Callable[[jax.Array], jax.Array],
    noise: Callable[[jax.Array], jax.Array],
    theta0: jax.Array,
    dt: float,
    num_steps: int,
) -> jax.Array:
    """Euler-Maruyama ``theta += drift dt + noise sqrt(dt) N(0, 1)`` for a vector of independent trajectories.

    Returns ``theta`` after ``num_steps`` steps, same shape as ``theta0``.
    """
    sqdt = jnp.sqrt(dt)

    def step(theta, i):
        eps = jax.random.normal(jax.random.fold_in(key, i), theta.shape, theta.dtype)
        return theta + drift(theta) * dt + noise(theta) * sqdt * eps, None

    out, _ = jax.lax.scan(step, theta0, jnp.arange(num_steps))
    return out


def quartic_collapse_probability(
    key: jax.Array,
    zetas: jax.Array,
    *,
    mu: float = 1.5,
    num_seeds: int = 2000,
    dt: float = 0.0025,
    time: float = 25.0,
    init_scale: float = 2.0,
    eps: float = 1e-15,
) -> jax.Array:
    """P(|theta_T| < eps) for the quartic-well SDE at each ``zeta`` (all trajectories in one vmapped scan).

    ``theta_0 ~ init_scale * N(0, 1)`` as in the paper's Fig. 1 notebook.
    """
    num_steps = int(round(time / dt))
    k0, k1 = jax.random.split(key)
    theta0 = init_scale * jax.random.normal(k0, (num_seeds,))

    def one(zeta):
        th = simulate_sde_1d(k1, lambda t: -(t**3 - mu * t), lambda t: zeta * t, theta0, dt, num_steps)
        return jnp.mean(jnp.abs(th) < eps)

    return jax.jit(jax.vmap(one))(jnp.asarray(zetas, jnp.float32))


def _grid(xs, ys) -> tuple[np.ndarray, np.ndarray]:
    """``xs`` / ``ys`` as float arrays; ``xs`` must be a non-empty, strictly increasing grid of ``ys``'s length."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"the grid must be a non-empty 1-D sequence, got shape {xs.shape}")
    if ys.shape != xs.shape:
        raise ValueError(f"values of shape {ys.shape} for a grid of shape {xs.shape}")
    if np.any(np.diff(xs) <= 0):
        raise ValueError(f"the grid must be strictly increasing, got {xs.tolist()}")
    return xs, ys


def crossing(xs: np.ndarray, ps: np.ndarray, level: float = 0.5) -> float:
    """First ``x`` at which the increasing curve ``ps(xs)`` reaches ``level`` (linear interpolation); nan if never."""
    xs, ps = _grid(xs, ps)
    above = np.flatnonzero(ps >= level)
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(xs[0])
    x0, x1, p0, p1 = xs[i - 1], xs[i], ps[i - 1], ps[i]
    return float(x0 + (level - p0) * (x1 - x0) / (p1 - p0))


# ----------------------------------------------------------------------------------------------------------
# Linearisation around an invariant set of a regression model with label noise


@dataclasses.dataclass(frozen=True)
class Linearization:
    """Per-sample second-order data at an invariant point, in the coordinates normal to the set.

    For the per-sample loss ``l_i = (f_i(z) - y_i - xi_i)^2 / 2`` with label noise ``xi_i ~ N(0, zeta^2)`` and
    ``grad_z f_i = 0`` on the set: ``Hess_z l_i = H0_i - xi_i G_i`` with ``H0_i = (f_i - y_i) G_i`` and
    ``G_i = Hess_z f_i``.

    Attributes:
      h0: ``[n, d, d]`` clean per-sample Hessians.
      g: ``[n, d, d]`` per-sample Hessians of the model output.
    """

    h0: np.ndarray
    g: np.ndarray

    @property
    def hbar(self) -> np.ndarray:
        """Full-batch loss Hessian in the normal directions."""
        return self.h0.mean(axis=0)

    def most_unstable(self) -> tuple[float, np.ndarray]:
        """Smallest eigenvalue ``h`` of ``hbar`` and its unit eigenvector ``e``."""
        vals, vecs = np.linalg.eigh(self.hbar)
        return float(vals[0]), vecs[:, 0]

    def noise_curvature(self, label_noise: float, batch_size: int | None, e: np.ndarray | None = None) -> float:
        """``s = E[(e^T A e)^2]`` for one SGD step.

        ``batch_size=None`` means the SDE of the paper's single-neuron notebook, whose diffusion is
        ``sqrt(eta) zeta / sqrt(n) * sum_i grad f_i dW_i`` (no minibatch sampling noise): ``s = zeta^2 E_i[(e^T G_i
        e)^2]``. Otherwise minibatches of ``batch_size`` drawn with replacement, each sample with fresh label
        noise: ``s = (Var_i[e^T H0_i e] + zeta^2 E_i[(e^T G_i e)^2]) / B``.
        """
        if e is None:
            _, e = self.most_unstable()
        qh = np.einsum("i,nij,j->n", e, self.h0, e)
        qg = np.einsum("i,nij,j->n", e, self.g, e)
        label = label_noise**2 * np.mean(qg**2)
        if batch_size is None:
            return float(label)
        return float((np.var(qh) + label) / batch_size)

    def critical_lr(self, label_noise: float, batch_size: int | None) -> float:
        """Second-order (curvature condition) critical learning rate ``eta_c = -2 h / s`` (0 if ``h >= 0``)."""
        h, e = self.most_unstable()
        if h >= 0:
            return 0.0
        s = self.noise_curvature(label_noise, batch_size, e)
        return float("inf") if s == 0 else float(-2.0 * h / s)

    def critical_lr_full_batch(self, label_noise: float) -> float:
        """``eta_c`` for full-batch GD on labels with fresh Gaussian noise of std ``label_noise`` at every step
        (the merging toy's protocol): no sampling noise, the label noise averaged over ``n`` samples, i.e. the
        SDE form with ``label_noise / sqrt(n)``."""
        return self.critical_lr(label_noise / np.sqrt(self.h0.shape[0]), None)

    def margin(self, lr: float, label_noise: float, batch_size: int | None) -> float:
        """``h + (eta / 2) s`` along the most unstable direction: > 0 predicts collapse."""
        h, e = self.most_unstable()
        return h + 0.5 * lr * self.noise_curvature(label_noise, batch_size, e)


def linearize(
    output_fn: Callable[[jax.Array, jax.Array], jax.Array],
    x: jax.Array,
    y: jax.Array,
    dim: int,
) -> Linearization:
    """Per-sample Hessians at ``z = 0`` of a scalar model ``output_fn(z, x_i)`` whose set ``z = 0`` is invariant.

    Args:
      output_fn: model output as a function of the normal coordinates ``z`` (``[dim]``) and one input.
      x: inputs ``[n, ...]``.
      y: targets ``[n]``.
      dim: number of normal coordinates.
    """
    z0 = jnp.zeros((dim,), jnp.float32)
    f0 = jax.vmap(lambda xi: output_fn(z0, xi))(x)
    gi = jax.vmap(lambda xi: jax.hessian(output_fn)(z0, xi))(x)
    grads = jax.vmap(lambda xi: jax.grad(output_fn)(z0, xi))(x)
    if float(jnp.max(jnp.abs(grads))) > 1e-6:
        raise ValueError("z = 0 is not a vanishing set of output_fn: its gradient there is nonzero")
    h0 = (f0 - y)[:, None, None] * gi
    return Linearization(h0=np.asarray(h0, np.float64), g=np.asarray(gi, np.float64))


def lyapunov_exponent(
    key: jax.Array,
    lin: Linearization,
    lrs: jax.Array,
    label_noise: float,
    batch_size: int,
    *,
    num_steps: int = 2000,
    num_seeds: int = 64,
) -> jax.Array:
    """Top Lyapunov exponent per step of ``z -> (I - eta J_k) z`` (linearised SGD), for each ``eta`` in ``lrs``.

    ``J_k = mean_{i in batch}(H0_i - xi_i G_i)`` with a fresh batch (with replacement) and fresh label noise each
    step; negative means the invariant set attracts. Averaged over ``num_seeds`` independent products.
    """
    h0 = jnp.asarray(lin.h0, jnp.float32)
    g = jnp.asarray(lin.g, jnp.float32)
    n, d, _ = h0.shape

    def one_seed(lr, k):
        k_init, k = jax.random.split(k)
        z0 = jax.random.normal(k_init, (d,))
        z0 = z0 / jnp.linalg.norm(z0)

        def step(z, i):
            kb, kn = jax.random.split(jax.random.fold_in(k, i))
            idx = jax.random.randint(kb, (batch_size,), 0, n)
            xi = label_noise * jax.random.normal(kn, (batch_size,))
            j = jnp.mean(h0[idx] - xi[:, None, None] * g[idx], axis=0)
            z = z - lr * (j @ z)
            nz = jnp.linalg.norm(z)
            return z / nz, jnp.log(nz)

        _, logs = jax.lax.scan(step, z0, jnp.arange(num_steps))
        return logs.mean()

    keys = jax.random.split(key, num_seeds)
    per_lr = jax.vmap(lambda lr: jax.vmap(lambda k: one_seed(lr, k))(keys).mean())
    return jax.jit(per_lr)(jnp.asarray(lrs, jnp.float32))


def root(xs: np.ndarray, ys: np.ndarray) -> float:
    """First sign change from + to - of ``ys(xs)`` (linear interpolation); nan if none."""
    xs, ys = _grid(xs, ys)
    for i in range(1, len(xs)):
        if ys[i - 1] > 0 >= ys[i]:
            return float(xs[i - 1] + ys[i - 1] * (xs[i] - xs[i - 1]) / (ys[i - 1] - ys[i]))
    return float("nan")


# ----------------------------------------------------------------------------------------------------------
# (b) single neuron f = w2 tanh(w1 x)


def single_neuron_data(seed: int, n: int = 32, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's data: ``x ~ N(0, 1)``, ``y = x + noise * N(0, 1)``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x.astype(np.float32), (x + noise * rng.normal(size=n)).astype(np.float32)


def single_neuron_output(z: jax.Array, x: jax.Array) -> jax.Array:
    """``f = w2 tanh(w1 x)`` with ``z = (w1, w2)``."""
    return z[1] * jnp.tanh(z[0] * x)


def single_neuron_critical_lr(x: np.ndarray, y: np.ndarray, label_noise: float) -> float:
    """Closed form for the notebook's SDE: collapse iff ``eta zeta^2 sigma'(0) / 2 > sum x y / sum x^2``."""
    return float(2.0 * np.sum(x * y) / np.sum(x * x) / label_noise**2)  # sigma'(0) = 1 for tanh


def simulate_single_neuron_sde(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    lrs: jax.Array,
    label_noise: float,
    *,
    num_seeds: int = 1000,
    dt: float = 0.01,
    time: float = 200.0,
    init_std: float = 1e-3,
    threshold: float = 1e-2,
) -> jax.Array:
    """P(||w_T|| < threshold) for the single-neuron SDE of the paper's Fig. 2, at each learning rate.

    ``dw = -grad L dt + sqrt(eta) zeta / sqrt(n) sum_i grad f_i dW_i``; the 2-D noise is sampled exactly from
    its 2x2 covariance ``eta zeta^2 / n * sum_i grad f_i grad f_i^T`` (cheaper than n Wiener increments).
    """
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    num_steps = int(round(time / dt))
    k0, k1 = jax.random.split(key)
    w0 = init_std * jax.random.normal(k0, (num_seeds, 2))

    def one(lr):
        def step(w, i):
            return single_neuron_advance(w, i, k1, lr, x, y, label_noise, dt), None

        w, _ = jax.lax.scan(step, w0, jnp.arange(num_steps))
        return jnp.mean(jnp.linalg.norm(w, axis=1) < threshold)

    return jax.jit(jax.vmap(one))(jnp.asarray(lrs, jnp.float32))


# ----------------------------------------------------------------------------------------------------------
# (c) the two kinds of invariant set of a two-layer network: a vanishing hidden neuron, two identical neurons

# Exact GELU (erf form) as PyTorch's nn.GELU in the released toy; jax.nn.gelu defaults to the tanh approximation.
ACTIVATIONS = {"tanh": jnp.tanh, "gelu": lambda z: jax.nn.gelu(z, approximate=False)}
KINDS = ("vanishing", "identical")


@dataclasses.dataclass(frozen=True)
class HiddenNeuronProblem:
    """A two-layer regression network ``f(x) = sum_j a_j act(w_j . x)`` on fixed data, sitting on an invariant set.

    ``kind = "vanishing"``: the last neuron is exactly zero (``w_H = 0, a_H = 0``); its normal coordinates are
    ``z = (w_H, a_H)``. ``kind = "identical"``: neurons 0 and 1 are equal; the normal coordinates are the
    difference ``z = ((w_0 - w_1) / sqrt 2, (a_0 - a_1) / sqrt 2)`` (orthonormal, so SGD moves ``z`` with the
    same learning rate as the parameters). Either way ``z`` has ``d + 1`` entries and the other parameters sit at
    a minimum of the loss restricted to the set (full-batch GD, which keeps the set).

    Attributes:
      x: ``[n, d]`` inputs; y: ``[n]`` targets.
      params: ``{"w": [H, d], "a": [H]}`` on the invariant set.
      kind: "vanishing" or "identical".
      act: "tanh" or "gelu" (both have act(0) = 0).
    """

    x: np.ndarray
    y: np.ndarray
    params: dict[str, np.ndarray]
    kind: str = "vanishing"
    act: str = "tanh"

    @property
    def dim(self) -> int:
        """Number of coordinates normal to the invariant set (``d + 1``)."""
        return self.x.shape[1] + 1


def two_layer_output(params: dict[str, jax.Array], x: jax.Array, act: str = "tanh") -> jax.Array:
    """``f(x) = sum_j a_j act(w_j . x)`` for one input ``x``."""
    return jnp.sum(params["a"] * ACTIVATIONS[act](params["w"] @ x))


def embed(kind: str, params: dict[str, jax.Array], z: jax.Array) -> dict[str, jax.Array]:
    """``params`` moved so that its normal coordinates (see :class:`HiddenNeuronProblem`) equal ``z``; the
    coordinates along the set (the other neurons, or the mean of the identical pair) are kept."""
    d = params["w"].shape[1]
    if kind == "vanishing":
        return {"w": params["w"].at[-1].set(z[:d]), "a": params["a"].at[-1].set(z[d])}
    mw, ma = 0.5 * (params["w"][0] + params["w"][1]), 0.5 * (params["a"][0] + params["a"][1])
    s = 1.0 / np.sqrt(2.0)
    w = params["w"].at[0].set(mw + s * z[:d]).at[1].set(mw - s * z[:d])
    a = params["a"].at[0].set(ma + s * z[d]).at[1].set(ma - s * z[d])
    return {"w": w, "a": a}


def normal_coordinates(kind: str, params: dict[str, jax.Array]) -> jax.Array:
    """The normal coordinates ``z`` of ``params`` (the inverse of :func:`embed`)."""
    if kind == "vanishing":
        return jnp.concatenate([params["w"][-1], params["a"][-1:]])
    s = 1.0 / np.sqrt(2.0)
    return s * jnp.concatenate([params["w"][0] - params["w"][1], params["a"][:1] - params["a"][1:2]])


def _fit_on_set(problem_kind: str, act: str, x, y, params, gd_steps: int, gd_lr: float):
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def loss(p):
        f = jax.vmap(lambda xi: two_layer_output(p, xi, act))(xj)
        return 0.5 * jnp.mean((f - yj) ** 2)

    @jax.jit
    def fit(p):
        def step(p, _):
            g = jax.grad(loss)(p)
            return jax.tree.map(lambda a, b: a - gd_lr * b, p, g), None

        return jax.lax.scan(step, p, None, length=gd_steps)[0]

    p = fit(embed(problem_kind, params, jnp.zeros((x.shape[1] + 1,))))
    return embed(problem_kind, p, jnp.zeros((x.shape[1] + 1,)))  # exactly on the set (GD keeps it to rounding)


def make_hidden_neuron_problem(
    seed: int, *, n: int = 64, d: int = 1, width: int = 2, gd_steps: int = 4000, gd_lr: float = 0.1
) -> HiddenNeuronProblem:
    """Data from a bump ``y = 3 t exp(-t^2)`` (``t`` a projection of x); a student of ``width``
    units whose first ``width - 1`` are trained
    by full-batch GD while the last is held on its vanishing set (which GD preserves).

    With scalar inputs (``d = 1``, the paper's 1-H-1 networks) the per-sample Hessians in the normal plane
    ``(w_probe, a_probe)`` all commute, so the curvature condition is exact to second order; with ``d > 1`` the
    rotating noise makes :func:`lyapunov_exponent` the relevant predictor.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    u = rng.normal(size=d)
    t = x @ (u / np.linalg.norm(u))
    y = (3.0 * t * np.exp(-(t**2))).astype(np.float32)  # a bump one tanh unit cannot fit
    kw, ka = jax.random.split(jax.random.key(seed))
    params = {"w": 0.5 * jax.random.normal(kw, (width, d)), "a": 0.5 * jax.random.normal(ka, (width,))}
    params = _fit_on_set("vanishing", "tanh", x, y, params, gd_steps, gd_lr)
    return HiddenNeuronProblem(x=x, y=y, params=jax.tree.map(np.asarray, params))


def make_merging_problem(seed: int, *, n: int = 8, gd_steps: int = 20000, gd_lr: float = 0.1) -> HiddenNeuronProblem:
    """The released two-neuron merging toy (paper Fig. 3, ``nbs/one_hidden_layer/toy_model.ipynb``): a 1-2-1
    GELU network without biases on ``n = 8`` samples with ``x, y ~ N(0, 1)``, started at ``w = (1.0, 0.6)``,
    ``a = (-0.6, -0.4)``. Here the pair is put on its identical set at the mean of that start and the mean
    trained to the minimum on the set by full-batch GD (the set is invariant, so GD stays on it)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1)).astype(np.float32)
    y = rng.normal(size=n).astype(np.float32)
    params = {"w": jnp.asarray([[1.0], [0.6]]), "a": jnp.asarray([-0.6, -0.4])}
    params = _fit_on_set("identical", "gelu", x, y, params, gd_steps, gd_lr)
    return HiddenNeuronProblem(x=x, y=y, params=jax.tree.map(np.asarray, params), kind="identical", act="gelu")


def hidden_neuron_linearization(problem: HiddenNeuronProblem) -> Linearization:
    """:func:`linearize` for the normal coordinates of the problem's invariant set (a vanishing neuron's
    ``(w, a)``, or the difference coordinate of an identical pair: its gradient also vanishes on the set)."""
    p = jax.tree.map(jnp.asarray, problem.params)
    return linearize(
        lambda z, xi: two_layer_output(embed(problem.kind, p, z), xi, problem.act),
        jnp.asarray(problem.x),
        jnp.asarray(problem.y),
        problem.dim,
    )


def _sgd_parts(problem: HiddenNeuronProblem, label_noise: float, batch_size: int | None):
    """(loss(p, idx, noise), batch draw(key) -> (idx, noise)) for minibatch SGD with Gaussian label noise;
    ``batch_size=None`` is full-batch GD on noisy labels (the merging toy's protocol)."""
    x, y = jnp.asarray(problem.x), jnp.asarray(problem.y)
    n = x.shape[0]

    def loss(p, idx, xi):
        f = jax.vmap(lambda xv: two_layer_output(p, xv, problem.act))(x[idx])
        return 0.5 * jnp.mean((f - y[idx] - xi) ** 2)

    def draw(k):
        kb, kn = jax.random.split(k)
        if batch_size is None:
            return jnp.arange(n), label_noise * jax.random.normal(kn, (n,))
        return jax.random.randint(kb, (batch_size,), 0, n), label_noise * jax.random.normal(kn, (batch_size,))

    return loss, draw


def simulate_hidden_neuron_sgd(
    key: jax.Array,
    problem: HiddenNeuronProblem,
    lrs: jax.Array,
    label_noise: float,
    batch_size: int | None,
    *,
    num_seeds: int = 1000,
    num_steps: int = 4000,
    init_std: float = 1e-3,
    threshold: float = 1e-2,
    train_rest: bool = True,
) -> jax.Array:
    """P(||z|| < threshold after ``num_steps``) under nonlinear SGD, ``z`` the set's normal coordinates.

    Plain SGD, minibatches with replacement, Gaussian label noise of std ``label_noise`` redrawn per sample and
    step; every run starts at the problem's point with ``z = init_std * N(0, I)``. With ``train_rest`` all
    parameters move (the real dynamics); without, only ``z`` does. This is a finite-time, global measure: a run
    that escapes the neighbourhood and comes back counts as collapsed (see :func:`hidden_neuron_exit`).
    """
    loss, draw = _sgd_parts(problem, label_noise, batch_size)
    base = jax.tree.map(jnp.asarray, problem.params)
    kind = problem.kind

    def run(lr, k):
        k_init, k = jax.random.split(k)
        p0 = embed(kind, base, init_std * jax.random.normal(k_init, (problem.dim,)))

        def step(p, i):
            idx, xi = draw(jax.random.fold_in(k, i))
            p = _sgd_step(kind, loss, p, idx, xi, lr, train_rest)
            return p, None

        p, _ = jax.lax.scan(step, p0, jnp.arange(num_steps))
        return jnp.linalg.norm(normal_coordinates(kind, p)) < threshold

    keys = jax.random.split(key, num_seeds)
    per_lr = jax.vmap(lambda lr: jnp.mean(jax.vmap(lambda k: run(lr, k))(keys)))
    return jax.jit(per_lr)(jnp.asarray(lrs, jnp.float32))


def _sgd_step(kind, loss, p, idx, xi, lr, train_rest):
    g = jax.grad(loss)(p, idx, xi)
    new = jax.tree.map(lambda a, b: a - lr * b, p, g)
    if not train_rest:  # only the normal coordinates move
        new = embed(kind, p, normal_coordinates(kind, new))
    return new


def single_neuron_advance(w, i, key, lr, x, y, label_noise, dt):
    """Step ``i`` of the single-neuron SDE for every run ``w [runs, 2]`` at once: noise ``N(0, I_2)`` per run from
    ``fold_in(key, i)``, then :func:`_single_neuron_step` (shared by the finite-time and the exit-problem
    simulations, so both integrate the same paths)."""
    eps = jax.random.normal(jax.random.fold_in(key, i), w.shape)
    return jax.vmap(lambda wi, ei: _single_neuron_step(wi, lr, ei, x, y, label_noise, dt))(w, eps)


def _single_neuron_step(w, lr, eps, x, y, label_noise, dt):
    """One Euler-Maruyama step of the single-neuron SDE for one run ``w = (w1, w2)``, ``eps ~ N(0, I_2)``."""
    n = x.shape[0]
    t = jnp.tanh(w[0] * x)
    r = w[1] * t - y
    dfw1 = w[1] * (1 - t**2) * x
    dfw2 = t
    drift = -jnp.stack([jnp.mean(r * dfw1), jnp.mean(r * dfw2)])
    c = lr * label_noise**2 / n
    a, b, d = c * jnp.sum(dfw1**2), c * jnp.sum(dfw1 * dfw2), c * jnp.sum(dfw2**2)
    l11 = jnp.sqrt(a)
    l21 = jnp.where(l11 > 0, b / jnp.where(l11 > 0, l11, 1.0), 0.0)
    l22 = jnp.sqrt(jnp.maximum(d - l21**2, 0.0))
    noise = jnp.stack([l11 * eps[0], l21 * eps[0] + l22 * eps[1]])
    return w + drift * dt + noise * jnp.sqrt(dt)
