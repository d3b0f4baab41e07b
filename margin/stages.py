"""The training stages (a)-(e): each trains its runs through `margin.train` (or simulates) and returns raw outputs.

Keys: the config's key `jax.random.key(seed)` folded with one constant per purpose (`PURPOSE`), then with the model's
index inside the stage, then split into one key per run.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from common import app, data, sweep
from margin import committee, models, perceptron, probes, robustness, teacher_student, toys, train
from margin import max_margin as mm
from margin import neural_collapse as nc
from margin import quasi_homogeneous as qh

PURPOSE = {
    "toy": 1,
    "program": 2,
    "nets": 3,
    "nc_ufm": 4,
    "nc_mlp": 5,
    "nc_control": 6,
    "cover": 7,
    "teacher_student": 8,
    "committee": 9,
}


def run_keys(seed: int, purpose: str, index: int, n: int) -> jax.Array:
    """n keys for the runs of model `index` of the stage `purpose` (fold_in per purpose and model, then split)."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), PURPOSE[purpose]), index)
    return jax.random.split(key, n)


def purpose_key(seed: int, purpose: str) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), PURPOSE[purpose])


def _spec(cfg, f, init, rates, loss, probe=None) -> train.Spec:
    return train.make_spec(
        f, init, rates, loss=loss, step=cfg.step, lr=cfg.lr, max_lr=cfg.max_lr, log_every=cfg.log_every, probe=probe
    )


def _train(cfg, spec, dat, keys, workdir, writer, name):
    return train.train(
        spec,
        dat,
        name=name,
        keys=keys,
        num_steps=cfg.num_steps,
        chunk_steps=cfg.chunk_steps,
        workdir=workdir,
        writer=writer,
    )


# --- (a) toy models ----------------------------------------------------------------------------------------------


def toy_program(name: str, f, rates, x, y, key, starts: int) -> dict[str, Any]:
    """The toy's program: the convex QP in β (w·x: the SVM; w x1 + uv x2: only w penalised) and SLSQP in (w, u, v)."""
    penal = np.array([True, True]) if name == "linear" else np.array([True, False])
    prog = mm.linear_program(x, y, penalized=penal)
    nonconvex = mm.solve_program(f, toys.toy_init(name, 1.0), rates, x, y, key=key, num_starts=starts)
    beta_nc = np.asarray(models.toy_predictor(name, nonconvex["params"]), np.float64)
    return {
        "prog": prog,
        "beta_dir": prog["beta"] / np.linalg.norm(prog["beta"][penal]),  # β at ‖θ‖_Λ^{1/λ_max} = 1
        "nonconvex": {
            "beta": (beta_nc / np.linalg.norm(beta_nc[penal])).tolist(),
            "objective": nonconvex["objective"],
            "qp_objective": prog["objective"],
            "kkt": {k: v for k, v in nonconvex["kkt"].items() if k != "multipliers"},
            "num_feasible_starts": nonconvex["num_feasible_starts"],
        },
    }


def run_toy(config, workdir, writer) -> dict[str, Any]:
    """Both toys trained to the limit, with their programs: {model: (program, history)} and the data."""
    cfg = config.toy
    x, y = toys.toy_data(cfg.data_seed, cfg.num_points, cfg.noise)
    dat = {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(y, jnp.float32)}
    out = {}
    for index, (model, (name, f, rates)) in enumerate(toys.TOY_MODELS.items()):
        pkey = jax.random.fold_in(purpose_key(config.seed, "program"), index)
        prog = toy_program(name, f, rates, x, y, pkey, cfg.program_starts)
        frozen = train.Frozen.of(rates)
        probe = probes.ToyDirection(name, frozen, tuple(float(b) for b in prog["beta_dir"]))
        spec = _spec(cfg, f, toys.toy_init(name, cfg.init_scale), rates, cfg.loss, probe)
        keys = run_keys(config.seed, "toy", index, cfg.num_seeds)
        _, hist = _train(cfg, spec, dat, keys, workdir, writer, f"toy_{model}")
        out[model] = {"name": name, "rates": rates, "program": prog, "hist": hist}
    return {"models": out, "x": x, "y": y}


# --- (b), (c) networks with biases and a residual block vs the homogeneous twin ---------------------------------


def _robust_eval(f, eps, pgd_steps, state, test):
    return robustness.robust_accuracy(f, state["params"], test["x"], test["y"], list(eps), pgd_steps)


def run_nets(config, workdir, writer) -> dict[str, Any]:
    """The residual net with biases and its homogeneous twin: histories, rates, PGD accuracy, trained parameters."""
    cfg = config.nets
    x, y = toys.xor_data(cfg.data_seed, cfg.num_train, cfg.radius, cfg.noise)
    xt, yt = toys.xor_data(cfg.data_seed + 1, cfg.num_test, cfg.radius, cfg.noise)
    dat = {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(y, jnp.float32)}
    test = {"x": jnp.asarray(xt, jnp.float32), "y": jnp.asarray(yt, jnp.float32)}
    nets = {"quasi_homogeneous": models.residual_net(cfg.hidden), "homogeneous": models.plain_net(cfg.hidden)}
    out = {}
    for index, (model, layers) in enumerate(nets.items()):
        f = models.stack_fn(layers, squeeze=True)
        rates = qh.infer_rates(layers)
        init = models.StackInit(layers, 2, float(cfg.init_scale), float(cfg.bias_scale))
        keys = run_keys(config.seed, "nets", index, cfg.num_seeds)
        one = jax.tree.map(lambda a: a + 0.1, init(keys[0]))  # nonzero biases, so a wrong bias rate would show
        check_err = qh.check_rates(f, one, rates, dat["x"])
        spec = _spec(cfg, f, init, rates, cfg.loss, probes.Sparsity(train.Frozen.of(rates)))
        res, hist = _train(cfg, spec, dat, keys, workdir, writer, f"net_{model}")
        ev = sweep.vmapped(_robust_eval, in_axes=(0, None), static=(f, tuple(cfg.eps), cfg.pgd_steps))
        acc = np.concatenate([sweep.to_numpy(ev(g.state, test), len(g.runs)) for g in res.groups])
        out[model] = {
            "f": f,
            "rates": rates,
            "check_err": check_err,
            "hist": hist,
            "accuracy": acc,
            "params": res.state["params"],
        }
    return {"models": out, "x": x, "y": y}


# --- (d) neural collapse ----------------------------------------------------------------------------------------


def balanced_digits(cfg) -> tuple[np.ndarray, np.ndarray, str]:
    """The first `per_class` examples of every class of the configured image set, flattened."""
    try:
        ds = data.load(cfg.dataset, "train", allow_fallback=cfg.allow_fallback)
    except data.DataUnavailable as e:
        raise app.UserError(str(e)) from e
    xs = ds.x.reshape(len(ds), -1)
    idx = []
    for c in range(ds.num_classes):
        members = np.flatnonzero(ds.y == c)
        if members.size < cfg.per_class:
            raise app.UserError(f"nc_mlp.per_class={cfg.per_class}: class {c} of {ds.source} has {members.size}")
        idx.append(members[: cfg.per_class])
    idx = np.concatenate(idx)
    return xs[idx], ds.y[idx], ds.source


def nc_run(cfg, config, layers, x, y, k, purpose, workdir, writer) -> dict[str, Any]:
    """One neural-collapse model trained on (x, y): its history and the rate check at a perturbed init."""
    f = models.stack_fn(layers)
    rates = qh.infer_rates(layers)
    dat = {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(y, jnp.int32)}
    init = models.StackInit(tuple(layers), int(x.shape[1]))
    keys = run_keys(config.seed, purpose, 0, cfg.num_seeds)
    check_err = qh.check_rates(f, jax.tree.map(lambda a: a + 0.05, init(keys[0])), rates, dat["x"])
    spec = _spec(cfg, f, init, rates, cfg.loss, probes.Collapse(tuple(layers), int(k)))
    _, hist = _train(cfg, spec, dat, keys, workdir, writer, purpose)
    return {"hist": hist, "check_err": check_err, "rates": rates, "num_examples": int(x.shape[0])}


def run_neural_collapse(config, workdir, writer) -> dict[str, Any]:
    """Unconstrained features, the BatchNorm MLP on digits, and its control without normalisation."""
    u = config.nc_ufm
    n = u.classes * u.per_class
    labels = np.repeat(np.arange(u.classes), u.per_class)
    ufm_layers = models.unconstrained_features(n, u.dim, u.classes)
    ufm = nc_run(u, config, ufm_layers, np.eye(n), labels, u.classes, "nc_ufm", workdir, writer)
    m = config.nc_mlp
    x, y, source = balanced_digits(m)
    mlp = nc_run(m, config, models.bn_mlp(tuple(m.hidden), m.dim, 10), x, y, 10, "nc_mlp", workdir, writer)
    control = nc_run(m, config, models.plain_mlp(tuple(m.hidden), m.dim, 10), x, y, 10, "nc_control", workdir, writer)
    return {"ufm": ufm, "mlp": mlp, "control": control, "source": source, "etf": nc.etf_margin}


# --- (e) statistical mechanics of learning ----------------------------------------------------------------------


def run_perceptron(config) -> dict[str, Any]:
    """Cover's C(P, N) by draws, and the four teacher-student students by simulation (raw arrays)."""
    p = config.perceptron
    cover = perceptron.cover_draws(
        purpose_key(config.seed, "cover"), p.cover_n, list(p.cover_p), p.cover_draws, p.iters
    )
    ts = teacher_student.teacher_student_draws(
        purpose_key(config.seed, "teacher_student"),
        p.ts_n,
        list(p.ts_alphas),
        p.ts_draws,
        2 * p.iters,
        p.chain_iters,
        p.chain_burn_in,
    )
    return {"cover": cover, "teacher_student": ts}


def run_committee(config) -> dict[str, Any]:
    """Online SGD of the soft committee machine from each seed and the order-parameter ODEs from its start."""
    c = config.committee
    keys = jax.random.split(purpose_key(config.seed, "committee"), c.num_seeds)
    return committee.compare(
        keys,
        k=c.student_units,
        m=c.teacher_units,
        n=c.n,
        eta=c.lr,
        alpha_max=c.alpha_max,
        records=c.records,
        init_std=c.init_std,
        d_alpha=c.d_alpha,
    )
