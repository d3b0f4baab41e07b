"""Known-answer tests of the cutting-plane estimator: closed-form regions of known codimension."""

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


def _params(a=None, w=None, b=0.0, h=0.0, t=1.0, scale=1.0, eps=0.2):
    f = jnp.float32
    return {
        "a": jnp.asarray(np.zeros((MMAX, D)) if a is None else a, jnp.float32),
        "c": jnp.zeros(D),
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


def test_halfspace_converged_is_one_and_released_budget_biased_up():
    rng = np.random.default_rng(0)
    w = rng.normal(size=D)
    w /= np.linalg.norm(w)
    x0 = rng.normal(size=(4, D))
    x0 -= (x0 @ w)[:, None] * w  # on the parallel hyperplane through 0: distance 4 from the halfspace
    p = _params(w=w, b=4.0, h=5.0, t=0.0)
    rel = cp.critical_dimension(
        closed_form, x0, 1, DIMS, 6, jax.random.key(0), params=p, check_budget=cp.LARGER, check_repeats=6
    )
    # A line meets a hyperplane: d* = 1 once the optimiser can travel far enough (the larger budget) ...
    assert rel.convergence["d_star_subset_larger_budget"] == 1.0
    assert rel.convergence["success_rate_subset_larger_budget"][0] >= 0.9
    # ... but within 300 steps at lr 5e-2 a random line is too oblique: the released budget overestimates d*
    # and the check says so.
    assert rel.d_star > 1.5 and rel.d_star_grid >= 2.0
    assert rel.converged is False and rel.convergence["moved"] < -0.5
    assert rel.effective_dimension == pytest.approx(D - rel.d_star)


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
    a = np.stack([a1[0], a2[0]])
    q, _ = np.linalg.qr(a.T)  # start at distance 2 from the intersection, within span of the two normals
    x0 = tube_starts(np.concatenate([q.T, np.zeros((MMAX - 2, D))]), 2, seed=5)
    ens = cp.ensemble_of(closed_form)
    r_ens = cp.critical_dimension(
        ens, x0, 1, DIMS, 6, jax.random.key(7), params=stacked, budget=CONVERGED, check_budget=None
    )
    assert r_ens.d_star_grid == 2 and r_ens.nonfinite_subspaces == 0
    assert 1 < r_ens.d_star <= 2
    for p in (p1, p2):  # each member alone: a line crosses the slab
        r = cp.critical_dimension(
            closed_form, x0, 1, DIMS, 6, jax.random.key(7), params=p, budget=CONVERGED, check_budget=None
        )
        assert r.d_star_grid == 1 and r.success_rate[0] >= 0.9


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


def test_vmapped_sweep_equals_subspaces_one_at_a_time():
    """The one-call sweep reproduces each subspace optimised alone (masked padding rows, early-stop freezing)."""
    m = 2
    params, a = tube_params(m, seed=9)
    x0s = tube_starts(a, m, seed=10)
    reps = 6
    key = jax.random.key(11)
    budget = cp.Budget(steps=120)
    out = cp.sweep_subspaces(closed_form, x0s, 1, DIMS, reps, key, params=params, budget=budget)
    keys = cp.subspace_keys(key, DIMS, range(reps), len(x0s))
    spec = {k: jnp.asarray(v) for k, v in cp._spec(cp.as_target(1), 2, budget, None).items()}

    @jax.jit
    def one(k, d, x0):
        basis = cp.random_basis(k, d, max(DIMS), D)
        return cp.optimize_subspace(closed_form, params, x0, basis, spec)

    rng = np.random.default_rng(0)
    for i, r, s in zip(rng.integers(0, len(DIMS), 16), rng.integers(0, reps, 16), rng.integers(0, 4, 16), strict=True):
        o = one(keys[i, r, s], DIMS[i], x0s[s])
        assert float(o["steps"]) == out["steps"][i, r, s]
        assert bool(o["success"]) == out["success"][i, r, s]
        np.testing.assert_allclose(float(o["best_score"]), out["best_score"][i, r, s], rtol=1e-4, atol=1e-6)
    # the check is not vacuous: some subspaces stop early, others run out of steps
    assert 0 < out["success"].mean() < 1 and (out["steps"] < 120).any() and (out["steps"] == 120).any()


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


@pytest.mark.parametrize(
    "fn, x0, target, dims, match",
    [
        (lambda x: x[:, 0], np.zeros((2, 4)), 1, (1,), "log-probabilities"),
        (lambda x: jnp.zeros((3, 2)), np.zeros((2, 4)), 1, (1,), "log-probabilities"),
        (lambda x: jnp.full((x.shape[0], 2), jnp.nan), np.zeros((2, 4)), 1, (1,), "non-finite"),
        (lambda x: jnp.zeros((x.shape[0], 2)), np.zeros((2, 4)), 1, (1, 5), r"dims must lie in \[1, D=4\]"),
        (lambda x: jnp.zeros((x.shape[0], 2)), np.zeros((2, 4)), (), (1,), "empty"),
        (lambda x: jnp.zeros((x.shape[0], 2)), np.zeros((2, 4)), 2, (1,), "outside"),
        (lambda x: jnp.zeros((x.shape[0], 2)), np.zeros((4,)), 1, (1,), r"\[S, D\]"),
        (lambda x: jnp.stack([x[:, 0], -x[:, 0]], 1), np.array([[1.0, 0], [-1, 0]]), 1, (1,), "already reach"),
    ],
)
def test_bad_inputs_raise_one_clear_error(fn, x0, target, dims, match):
    with pytest.raises(cp.EstimatorInputError, match=match):
        cp.critical_dimension(fn, x0, target, dims, 2, jax.random.key(0))
