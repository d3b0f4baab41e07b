"""Known-answer tests of the cutting-plane estimator: closed-form regions of known codimension."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifolds import cutting_planes as cp

D = 32
MMAX = 4
CONVERGED = cp.Budget(lr=0.1, steps=1500)
DIMS = (1, 2, 3, 4, 6)


def closed_form(params, x):
    """2 classes with the logit difference h·(w·x − b) + t·10·(1 − |A(x − c)| / ε) (one function, so every test
    shares one compilation): h=1, t=0 is the halfspace w·x >= b; h=0, t=1 the ε-tube around the flat
    {A(x − c) = 0}, of codimension rank(A) (A has MMAX rows, the first m orthonormal, the rest zero)."""
    dist = jnp.sqrt(jnp.sum(jnp.square((x - params["c"]) @ params["a"].T), axis=-1) + 1e-12)
    z = params["h"] * (x @ params["w"] - params["b"]) + params["t"] * 10.0 * (1.0 - dist / params["eps"])
    return jnp.stack([jnp.zeros_like(z), params["scale"] * z], axis=-1)


def _params(a=None, w=None, b=0.0, h=0.0, t=1.0, scale=1.0, eps=0.2, c=None):
    f = jnp.float32
    return {
        "a": jnp.asarray(np.zeros((MMAX, D)) if a is None else a, jnp.float32),
        "c": jnp.zeros(D) if c is None else jnp.asarray(c, jnp.float32),
        "w": jnp.asarray(np.zeros(D) if w is None else w, jnp.float32),
        "b": f(b),
        "h": f(h),
        "t": f(t),
        "scale": f(scale),
        "eps": f(eps),
    }


def tube_params(m, seed=0, scale=1.0, eps=0.2):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(D, MMAX)))
    a = q.T.copy()
    a[m:] = 0.0
    return _params(a=a, scale=scale, eps=eps), a


def tube_starts(a, m, n=4, r=2.0, seed=1):
    """Points at distance r from the flat (random directions within the m constrained coordinates)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D))
    x = x - (x @ a[:m].T) @ a[:m]
    u = rng.normal(size=(n, m))
    u *= r / np.linalg.norm(u, axis=1, keepdims=True)
    return (x + u @ a[:m]).astype(np.float32)


def _halfspace(distance=4.0, n=4):
    rng = np.random.default_rng(0)
    w = rng.normal(size=D)
    w /= np.linalg.norm(w)
    x0 = rng.normal(size=(n, D))
    x0 -= (x0 @ w)[:, None] * w  # on the parallel hyperplane through 0: `distance` from the halfspace
    return _params(w=w, b=distance, h=5.0, t=0.0), x0.astype(np.float32)


def test_halfspace_at_a_converged_budget_is_one_and_a_short_budget_is_flagged():
    p, x0 = _halfspace()
    far = cp.Budget(lr=0.5, steps=400)  # reach 200 per unit direction: enough for a hyperplane 4 away in D = 32
    good = cp.critical_dimension(closed_form, x0, 1, DIMS, 6, jax.random.key(0), params=p, budget=far, check_repeats=6)
    # A line meets a hyperplane: d* = 1 once the optimiser can travel far enough; the check (4x the steps at
    # the same rate) agrees, so the estimate is marked converged.
    assert good.converged is True
    assert good.d_star_grid == 1.0 and good.success_rate[0] >= 0.9
    assert good.d_star == pytest.approx(1.0, abs=0.05)
    assert good.effective_dimension == pytest.approx(D - good.d_star)
    # 100 steps at lr 0.05 travel 5 per unit direction: a random line is too oblique to meet a hyperplane 4 away,
    # only large d reach it; the check (4x the steps at the same rate) finds it at much smaller d.
    dims = (1, 2, 4, 8, 16, 32)
    short = cp.critical_dimension(
        closed_form, x0, 1, dims, 6, jax.random.key(0), params=p, budget=cp.Budget(lr=0.05, steps=100), check_repeats=6
    )
    conv = short.convergence
    assert np.isfinite(conv["d_star_subset"]) and conv["d_star_subset_check"] < conv["d_star_subset"] - conv["allowed"]
    assert short.converged is False


@pytest.fixture(scope="module")
def tube_results():
    out = {}
    for m in (1, 3):
        p, a = tube_params(m)
        x0 = tube_starts(a, m)
        out[m] = cp.critical_dimension(
            closed_form, x0, 1, DIMS, 6, jax.random.key(m), params=p, budget=CONVERGED, check_budget=None
        )
    return out


@pytest.mark.parametrize("m", [1, 3])
def test_codimension_m_region_has_d_star_m(tube_results, m):
    r = tube_results[m]
    rates = dict(zip(DIMS, r.success_rate, strict=True))
    # Gordon: a random d-flat meets a codimension-m flat iff d >= m (the ε-tube: rarely below m).
    assert all(rates[d] <= 0.3 for d in DIMS if d < m)
    assert all(rates[d] >= 0.9 for d in DIMS if d >= m)
    assert r.d_star_grid == m
    assert m - 1 < r.d_star <= m
    assert r.effective_dimension == pytest.approx(D - r.d_star)


def test_ensemble_of_two_slabs_is_codimension_two():
    """Each member's class region is a slab around a hyperplane (codimension 1); averaging the members'
    log-probabilities gives the tube around their intersection: codimension 2 (codimensions add)."""
    p1, a1 = tube_params(1, seed=3)
    p2, a2 = tube_params(1, seed=4)  # an independent normal
    stacked = jax.tree.map(lambda u, v: jnp.stack([u, v]), p1, p2)
    q, _ = np.linalg.qr(np.stack([a1[0], a2[0]]).T)  # start at distance 2 from the intersection
    x0 = tube_starts(np.concatenate([q.T, np.zeros((MMAX - 2, D))]), 2, seed=5)
    kw = dict(budget=CONVERGED, check_budget=None)
    r_ens = cp.critical_dimension(cp.Ensemble(closed_form), x0, 1, DIMS, 6, jax.random.key(7), params=stacked, **kw)
    assert r_ens.d_star_grid == 2 and r_ens.nonfinite_subspaces == 0
    assert 1 < r_ens.d_star <= 2
    for p in (p1, p2):  # each member alone: a line crosses the slab
        r = cp.critical_dimension(closed_form, x0, 1, DIMS, 6, jax.random.key(7), params=p, **kw)
        assert r.d_star_grid == 1 and r.success_rate[0] >= 0.9


def test_ensemble_modes_product_and_mixture():
    p1, _ = tube_params(1, seed=3)
    p2, _ = tube_params(1, seed=4)
    stacked = jax.tree.map(lambda u, v: jnp.stack([u, v]), p1, p2)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, D)), jnp.float32)
    lp = [jax.nn.log_softmax(closed_form(p, x)) for p in (p1, p2)]
    mix = cp.Ensemble(closed_form, "mixture")(stacked, x)
    np.testing.assert_allclose(np.exp(mix), 0.5 * (np.exp(lp[0]) + np.exp(lp[1])), rtol=1e-5, atol=1e-6)
    prod = cp.Ensemble(closed_form)(stacked, x)
    np.testing.assert_allclose(prod, jax.nn.log_softmax(0.5 * (lp[0] + lp[1])), rtol=1e-5, atol=1e-6)
    assert cp.Ensemble(closed_form) == cp.Ensemble(closed_form, "product")  # one static argument: one compile
    with pytest.raises(cp.EstimatorInputError, match="^mode"):
        cp.Ensemble(closed_form, "vote")


def test_logit_rescaling_leaves_class_d_star_unchanged(tube_results):
    """The argmax region of a class does not change when the logits are scaled by a positive constant."""
    m = 3
    p, a = tube_params(m, scale=4.0)
    x0 = tube_starts(a, m)
    r = cp.critical_dimension(
        closed_form, x0, 1, DIMS, 6, jax.random.key(m), params=p, budget=CONVERGED, check_budget=None
    )
    ref = tube_results[m]
    assert r.d_star_grid == ref.d_star_grid
    np.testing.assert_allclose(r.success_rate, ref.success_rate, atol=0.1)
    assert abs(r.d_star_success["d_star"] - ref.d_star_success["d_star"]) < 0.3


def test_padded_vmapped_sweep_equals_each_subspace_alone_unpadded():
    """The one-call sweep (bases padded to max(dims) rows with zeros, calls padded to a power of two, sharded
    over the devices) reproduces each subspace optimised alone with a basis of exactly d rows."""
    m = 2
    params, a = tube_params(m, seed=9)
    x0s = tube_starts(a, m, seed=10)
    reps, key, budget = 5, jax.random.key(11), cp.Budget(lr=0.05, steps=120)
    out = cp.sweep_subspaces(closed_form, x0s, 1, DIMS, reps, key, params=params, budget=budget)
    keys = cp.subspace_keys(key, DIMS, range(reps), len(x0s))
    spec = {k: jnp.asarray(v) for k, v in cp._spec(cp.as_target(1), 2, budget, None).items()}

    @functools.partial(jax.jit, static_argnums=1)
    def one(k, d, x0):
        basis = cp.random_basis(k, d, max(DIMS), D)[:d]  # the d real rows only: no padding rows
        return cp.optimize_subspace(closed_form, params, x0, basis, spec)

    rng = np.random.default_rng(0)
    for i, r, s in zip(rng.integers(0, len(DIMS), 12), rng.integers(0, reps, 12), rng.integers(0, 4, 12), strict=True):
        o = one(keys[i, r, s], DIMS[i], x0s[s])
        assert float(o["steps"]) == out["steps"][i, r, s]
        assert bool(o["success"]) == out["success"][i, r, s]
        np.testing.assert_allclose(float(o["best_score"]), out["best_score"][i, r, s], rtol=1e-4, atol=1e-6)
    # the check is not vacuous: some subspaces stop early, others run out of steps
    assert 0 < out["success"].mean() < 1 and (out["steps"] < 120).any() and (out["steps"] == 120).any()
    # several smaller calls give the same numbers as one (max_per_call splits the subspaces)
    split = cp.sweep_subspaces(closed_form, x0s, 1, DIMS, reps, key, params=params, budget=budget, max_per_call=16)
    np.testing.assert_allclose(split["best_score"], out["best_score"], rtol=1e-5, atol=1e-6)


def _numpy_adam(grads, lr, b1, b2, eps, released):
    theta, m, v, out = 0.0, 0.0, 0.0, []
    for t, g in enumerate(grads, start=1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        mh, vh = (m / (1 - b1), v / (1 - b2)) if released else (m / (1 - b1**t), v / (1 - b2**t))
        theta = theta - lr * mh / (np.sqrt(vh) + eps)
        out.append(theta)
    return np.asarray(out)


@pytest.mark.parametrize("budget", [cp.DEFAULT, cp.RELEASED])
def test_adam_updates_match_a_numpy_reference(budget):
    spec = {k: jnp.asarray(v) for k, v in cp._spec(cp.as_target(1), 2, budget, None).items()}
    grads = [0.5, -1.0, 2.0, 0.1, 0.3]
    c = {"theta": jnp.zeros(1), "m": jnp.zeros(1), "v": jnp.zeros(1), "t": jnp.float32(0)}
    got = []
    for g in grads:
        c = cp._adam(c, jnp.asarray([g], jnp.float32), spec)
        got.append(float(c["theta"][0]))
    ref = _numpy_adam(grads, budget.lr, budget.b1, budget.b2, budget.eps, budget.adam == "released")
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    other = _numpy_adam(grads, budget.lr, budget.b1, budget.b2, budget.eps, budget.adam != "released")
    assert np.max(np.abs(other - ref)) > 1e-3  # the two corrections differ after the first step


def test_stopping_rules_plateau_and_budget():
    """On a flat loss the released rule stops at its first look-back (6 losses scored, 5 updates); ours runs the
    whole budget."""
    flat = _params(h=0.0, t=0.0)  # the logit difference is 0 everywhere: loss log 2, never reached
    x0 = np.zeros((2, D), np.float32)
    for budget, steps in ((cp.RELEASED, 5), (cp.Budget(lr=0.1, steps=40), 40)):
        out = cp.sweep_subspaces(closed_form, x0, 1, (1, 2), 1, jax.random.key(0), params=flat, budget=budget)
        assert np.all(out["steps"] == steps)


def test_bounds_keep_the_search_in_the_box_and_report_saturation():
    """A linear class whose region is the far corner of the unit box: reached only with saturated pixels."""
    w = np.ones(D) / np.sqrt(D)
    p = _params(w=w, b=0.9 * np.sqrt(D), h=20.0, t=0.0)  # mean pixel >= 0.9
    x0 = np.full((3, D), 0.5, np.float32)
    r = cp.critical_dimension(closed_form, x0, 1, (8, 16, 32), 4, jax.random.key(1), params=p, bounds=(0.0, 1.0),
                              check_budget=None)  # fmt: skip
    assert r.success_rate[-1] > 0 and r.saturated_fraction > 0.2
    with pytest.raises(cp.EstimatorInputError, match="^x0s: .*outside bounds"):
        cp.critical_dimension(closed_form, x0 + 0.6, 1, (1,), 1, jax.random.key(1), params=p, bounds=(0.0, 1.0))


def test_radius_limits_the_reach_and_the_check_keeps_it():
    """A halfspace 4 away. Unlimited, a line reaches it (`test_halfspace_...`: d* = 1); with reach r the
    subspace must hold a direction within r of it: a line (|w·u| ~ 0.18 in D = 32) needs r ≈ 22, the full space
    r > 4. So r = 5 reaches it only at d = D, r = 3.5 never, however many steps: the convergence check (4x the
    steps) keeps the radius and finds the same success rates."""
    p, x0 = _halfspace()
    far = cp.Budget(lr=0.5, steps=400)
    for r, rate in ((5.0, [0.0, 1.0]), (3.5, [0.0, 0.0])):
        out = cp.critical_dimension(closed_form, x0, 1, (1, D), 4, jax.random.key(0), params=p,
                                    budget=dataclasses.replace(far, radius=r), check_repeats=4)  # fmt: skip
        np.testing.assert_array_equal(out.success_rate, rate)
        np.testing.assert_array_equal(out.convergence["success_rate_subset_check"], rate)  # 4x the steps
    with pytest.raises(cp.EstimatorInputError, match="^budget: .*radius > 0"):
        cp.critical_dimension(closed_form, x0, 1, (1,), 1, jax.random.key(0), params=p,
                              budget=dataclasses.replace(far, radius=0.0))  # fmt: skip


def test_threshold_d_star_grows_with_the_certainty_asked(tube_results):
    r = tube_results[3]
    d = [r.at_threshold(t, num_boot=0)["d_star"] for t in (0.6, 0.9, 0.99)]
    assert d[0] <= d[1] <= d[2]


def test_fresh_start_points_one_per_subspace():
    params, a = tube_params(1, seed=2)
    x0 = tube_starts(a, 1, n=len(DIMS) * 3, seed=3)
    r = cp.critical_dimension(closed_form, x0, 1, DIMS, 3, jax.random.key(0), params=params, budget=CONVERGED,
                              check_budget=None, fresh_starts=True)  # fmt: skip
    assert r.raw["success"].shape == (len(DIMS), 3, 1) and r.d_star_grid == 1
    with pytest.raises(cp.EstimatorInputError, match="^x0s: fresh_starts"):
        cp.critical_dimension(closed_form, x0[:5], 1, DIMS, 3, jax.random.key(0), params=params, fresh_starts=True)


def test_bases():
    key = jax.random.key(0)
    g = np.asarray(cp.random_basis(key, 3, 5, 12, "gaussian"))
    assert np.all(g[3:] == 0) and np.allclose(np.linalg.norm(g[:3], axis=1), 1, atol=1e-6)
    o = np.asarray(cp.random_basis(key, 4, 5, 12, "orthonormal"))
    assert np.all(o[4:] == 0)
    np.testing.assert_allclose(o[:4] @ o[:4].T, np.eye(4), atol=1e-5)
    # masking after orthonormalising spans the same space as the first rows of the Gaussian draw
    g4 = np.asarray(cp.random_basis(key, 4, 5, 12, "gaussian"))[:4]
    np.testing.assert_allclose(g4 @ o[:4].T @ o[:4], g4, atol=1e-5)
    a = np.asarray(cp.random_basis(key, 5, 5, 12, "axis", nonzeros=2))
    assert np.all((a != 0).sum(axis=1) == 2) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-6)


def test_sigmoid_fit_recovers_crossing_and_bootstrap_error_shrinks():
    dims = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32])
    true = 5.0
    p = 1 / (1 + np.exp(-(np.log(dims) - np.log(true)) / 0.3))
    d, bracket, _ = cp.crossing(dims, p, free_levels=False)
    assert bracket == "inside" and d == pytest.approx(true, rel=1e-3)
    # levels: 0.1 + 0.8 σ crosses 0.5 at the centre too
    d, _, fit = cp.crossing(dims, 0.1 + 0.8 * p)
    assert d == pytest.approx(true, rel=1e-3) and fit["lo"] == pytest.approx(0.1, abs=1e-3)
    rng = np.random.default_rng(0)
    errs = []
    for n in (16, 256):
        samples = (rng.uniform(size=(len(dims), n)) < p[:, None]).astype(float)
        b = cp.bootstrap_crossing(dims, samples, free_levels=False, num_boot=200)
        assert abs(b["d_star"] - true) < 4 * b["error"] + 0.2
        errs.append(b["error"])
    assert errs[1] < 0.5 * errs[0]  # ~1/sqrt(n)
    assert cp.crossing(dims, np.full(len(dims), 0.9))[:2] == (1.0, "below")
    assert cp.crossing(dims, np.full(len(dims), 0.1))[:2] == (np.inf, "above")
