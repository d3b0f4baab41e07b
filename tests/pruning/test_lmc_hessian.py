"""Known answers for the error barrier, Lanczos, the full spectrum and the prune-fraction bound."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pruning import hessian, lmc, masks, models


def test_barrier_of_a_convex_loss_is_not_positive():
    a = jax.random.normal(jax.random.key(0), (7,))
    b = jax.random.normal(jax.random.key(1), (7,))
    q = jax.random.normal(jax.random.key(2), (7, 7))
    quad = lambda x: x @ (q @ q.T) @ x + jnp.sum(jnp.exp(x))  # noqa: E731
    barrier = (
        lmc.error_barrier(quad, {"x": a}, {"x": b}, 25)
        if False
        else lmc.error_barrier(lambda p: quad(p["x"]), {"x": a}, {"x": b}, 25)
    )
    assert float(barrier) <= 1e-5 * float(quad(a) + quad(b))
    # and strictly: at every interior alpha the loss lies below the chord
    alphas, vals = lmc.interpolation_curve(lambda p: quad(p["x"]), {"x": a}, {"x": b}, 25)
    chord = alphas * vals[-1] + (1 - alphas) * vals[0]
    assert np.all(np.asarray(vals - chord)[1:-1] < 0)


def test_barrier_of_a_cubic_equals_its_closed_form():
    # f(x) = x (1 - x)(1 + x) between a = 1 and b = 0: chord 0, barrier max_a a - a^3 = 2 / (3 sqrt 3) at 1/sqrt 3
    f = lambda p: p["x"] * (1 - p["x"]) * (1 + p["x"])  # noqa: E731
    got = float(lmc.error_barrier(f, {"x": jnp.float32(1.0)}, {"x": jnp.float32(0.0)}, 3001))
    assert got == pytest.approx(2 / (3 * np.sqrt(3)), abs=1e-6)
    # double well (x^2 - 1)^2 between -1 and 1 (as a = 1, b = -1): barrier 1 at the midpoint
    g = lambda p: (p["x"] ** 2 - 1) ** 2  # noqa: E731
    assert float(lmc.error_barrier(g, {"x": jnp.float32(1.0)}, {"x": jnp.float32(-1.0)}, 11)) == pytest.approx(1.0)
    # the chord is subtracted: adding a linear function of alpha changes nothing
    h = lambda p: f(p) + 3.0 * p["x"] - 2.0  # noqa: E731
    got2 = float(lmc.error_barrier(h, {"x": jnp.float32(1.0)}, {"x": jnp.float32(0.0)}, 3001))
    assert got2 == pytest.approx(got, abs=1e-5)


def test_barrier_under_a_mask_evaluates_masked_networks():
    f = lambda p: jnp.sum(jnp.cos(3 * p["x"]))  # noqa: E731
    a, b = {"x": jnp.array([1.0, 2.0])}, {"x": jnp.array([-1.0, 5.0])}
    m = {"x": jnp.array([True, False])}
    got = lmc.error_barrier(f, a, b, 41, mask=m)
    want = lmc.error_barrier(lambda p: jnp.cos(3 * p["x"][0]) + 1.0, a, b, 41)
    assert float(got) == pytest.approx(float(want), abs=1e-6)


@pytest.fixture(scope="module")
def small_net():
    net = models.MLP(6, (5,), 3)
    params, _ = jax.jit(net.init)(jax.random.key(0))
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(40, 6)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=40))

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(net.apply(p, None, x)[0], y).mean()

    return params, loss


def test_lanczos_top_eigenvalues_equal_eigh(small_net):
    params, loss = small_net
    h = hessian.hessian_matrix(loss, params)  # every parameter: 6*5 + 5 + 5*3 + 3 = 53
    assert h.shape == (53, 53)
    want = np.sort(np.linalg.eigvalsh(h))[::-1][:4]
    got = hessian.top_eigenvalues(loss, params, 4, key=jax.random.key(3), num_iters=40)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
    # the HVP columns are the Hessian: compare with jax.hessian on the flat vector
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    ref = np.asarray(jax.jit(jax.hessian(lambda v: loss(unravel(v))))(flat), np.float64)
    np.testing.assert_allclose(h, 0.5 * (ref + ref.T), atol=1e-5)


def test_restricted_spectrum_is_the_submatrix_of_unpruned_kernels(small_net):
    params, loss = small_net
    rates = masks.prune_rates(params)
    m = masks.magnitude_prune(params, masks.ones_masks(params), 0.5, rates)
    sub = hessian.hessian_matrix(loss, params, mask=m, rates=rates)
    full = hessian.hessian_matrix(loss, params)
    flat_sel = np.concatenate(
        [np.asarray(mm).ravel() & (r != 0) for mm, r in zip(jax.tree.leaves(m), jax.tree.leaves(rates), strict=True)]
    )
    np.testing.assert_allclose(sub, full[np.ix_(flat_sel, flat_sel)], atol=1e-6)
    assert sub.shape[0] == int(masks.count(m, rates)) == hessian.flat_weights(params, m, rates).size


def test_gaussian_width_limits_and_the_bound():
    lam = np.array([4.0, 1.0, 0.0, -1.0])
    eps = 0.5
    # at R = 0 every direction counts fully; far away the width falls like sum r^2 / R^2 (+ flat directions)
    assert hessian.gaussian_width_sq(lam, eps, 0.0) == pytest.approx(4.0)
    r2 = 2 * eps / lam[:2]
    assert hessian.gaussian_width_sq(lam, eps, 100.0) == pytest.approx(2 + np.sum(r2 / (1e4 + r2)))
    # the other readings of eigenvalues <= 0: dropped (contribute 0), or |lambda| (the 0 stays flat)
    assert hessian.gaussian_width_sq(lam, eps, 0.0, nonpositive="drop") == pytest.approx(2.0)
    assert hessian.gaussian_width_sq(lam, eps, 100.0, nonpositive="drop") == pytest.approx(np.sum(r2 / (1e4 + r2)))
    r2a = 2 * eps / np.array([4.0, 1.0, 1.0])
    got_abs = hessian.gaussian_width_sq(lam, eps, 100.0, nonpositive="abs")
    assert got_abs == pytest.approx(1 + np.sum(r2a / (1e4 + r2a)))
    # an isotropic quadratic with all eigenvalues lambda and random pruning: R^2 = p |w|^2, so
    # p D = D r^2 / (p |w|^2 + r^2)  =>  p = (-r^2 + sqrt(r^4 + 4 |w|^2 r^2)) / (2 |w|^2)
    d, lam0 = 200, 2.0
    w = np.random.default_rng(0).normal(size=d)
    r2 = 2 * eps / lam0
    n2 = float(np.sum(w**2))
    want = (-r2 + np.sqrt(r2**2 + 4 * n2 * r2)) / (2 * n2)
    got = hessian.max_prune_fraction(np.full(d, lam0), w, eps, "random")
    assert got == pytest.approx(want, rel=1e-3)
    # magnitude pruning moves less far than random for the same p, so it may prune more
    assert hessian.max_prune_fraction(np.full(d, lam0), w, eps, "magnitude") > got
    # flatter (smaller eigenvalues) allows more
    assert hessian.max_prune_fraction(np.full(d, lam0 / 10), w, eps, "random") > got


def test_pruned_distance_magnitude_is_the_smallest_weights():
    w = np.array([3.0, -1.0, 0.5, 2.0])
    np.testing.assert_allclose(
        hessian.pruned_distance(w, np.array([0.0, 0.25, 0.5, 1.0]), "magnitude"),
        [0.0, 0.5, np.sqrt(1.25), np.sqrt(14.25)],
    )
    np.testing.assert_allclose(hessian.pruned_distance(w, np.array([0.5]), "random"), [np.sqrt(0.5 * 14.25)])


def test_quadratic_check_is_exact_on_a_quadratic_and_misses_exactly_the_cubic_term():
    """At the minimum x* of 0.5 (x - x*)^T A (x - x*) the model's rise equals the loss's; adding sum (x - x*)^3
    leaves the model's rise unchanged and moves the actual one by exactly sum d^3 (d = -x* on the pruned set)."""
    rng = np.random.default_rng(1)
    d = 12
    m = rng.normal(size=(d, d))
    a = m @ m.T / d + np.eye(d)
    xs = rng.normal(size=d)
    a_j, xs_j = jnp.asarray(a, jnp.float32), jnp.asarray(xs, jnp.float32)

    def quad(x):
        z = x - xs_j
        return 0.5 * z @ a_j @ z

    fr = [0.25, 0.5, 1.0]
    for kind in ("magnitude", "random"):
        out = hessian.quadratic_check(quad, xs_j, a, fr, kind, seed=3)
        g = np.random.default_rng(3)  # one generator draws the random subsets in turn, as quadratic_check does
        pruned = [np.where(hessian.pruned_set(xs, p, kind, g), -xs, 0.0) for p in fr]
        want = [0.5 * v @ a @ v for v in pruned]
        np.testing.assert_allclose(out["quadratic_rise"], want, rtol=1e-6)
        np.testing.assert_allclose(out["actual_rise"], want, rtol=1e-4)
        cub = hessian.quadratic_check(lambda x: quad(x) + jnp.sum((x - xs_j) ** 3), xs_j, a, fr, kind, seed=3)
        np.testing.assert_allclose(cub["quadratic_rise"], want, rtol=1e-6)
        np.testing.assert_allclose(
            np.asarray(cub["actual_rise"]) - want, [np.sum(v**3) for v in pruned], rtol=1e-3, atol=1e-4
        )
    # magnitude pruning takes the smallest |x*| first; a quarter of 12 is 3 weights
    sel = hessian.pruned_set(xs, 0.25, "magnitude", rng)
    assert sel.sum() == 3 and set(np.flatnonzero(sel)) == set(np.argsort(np.abs(xs))[:3])


def test_the_flatness_tail_setup_keeps_the_schedule_of_the_steps_it_covers():
    from pruning import flatness, imp

    s = imp.Setup(model=models.MLP(4, (3,), 2), batch_size=2, steps=600, num_levels=2, lr_drops=(300, 450))
    base = jnp.float32(0.15)
    for start in (0, 299, 300, 301, 450, 599):
        t = flatness.tail_setup(s, start)
        assert t.steps == 600 - start
        steps = jnp.arange(t.steps, dtype=jnp.int32)
        got, want = t.lr_at(base, steps), s.lr_at(base, steps + start)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="refine_from"):
        flatness.tail_setup(s, 600)
