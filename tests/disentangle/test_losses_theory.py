"""Eq. 2's terms against hand-computed values, Theorem 1's energy formula, the factor sampler, the sprites set."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from disentangle import losses, models, tasks, theory


def test_loss_terms_match_hand_computed_values():
    a = jnp.array([[1.0, -2.0], [-3.0, 4.0]])
    assert float(losses.nonneg_penalty(a)) == pytest.approx((2.0 + 3.0) / 2)
    assert float(losses.activity_energy(a)) == pytest.approx((1 + 4 + 9 + 16) / 2)
    w = [jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([[0.5]])]
    assert float(losses.weight_energy(w)) == pytest.approx(30.25)
    pred, target = jnp.array([[1.0, 2.0], [0.0, 0.0]]), jnp.array([[0.0, 0.0], [0.0, 3.0]])
    assert float(losses.squared_error(pred, target)) == pytest.approx((1 + 4 + 9) / 2)
    assert float(losses.l1_penalty(a)) == pytest.approx((1 + 2 + 3 + 4) / 2)
    hp = {"beta_nonneg": 2.0, "beta_activity": 0.1, "beta_weight": 0.01, "beta_l1": 0.5}
    total, terms = losses.constrained_loss(jnp.float32(1.0), [a, a], w, hp)
    assert float(terms["nonneg"]) == pytest.approx(5.0) and float(terms["activity"]) == pytest.approx(30.0)
    assert float(terms["l1"]) == pytest.approx(10.0)
    assert float(total) == pytest.approx(1.0 + 2.0 * 5.0 + 0.1 * 30.0 + 0.01 * 30.25 + 0.5 * 10.0, rel=1e-6)


def test_weight_energy_sees_weights_not_biases():
    cfg = models.ModelConfig("deep_ae", 5, 5, 3, (4,))
    init = jax.jit(lambda k: models.init_params(k, cfg))
    params = jax.tree.map(lambda x: np.asarray(x) + 1.0, init(jax.random.key(0)))  # biases become 1
    expected = sum(np.sum(layer["w"].astype(np.float64) ** 2) for part in ("enc", "dec") for layer in params[part])
    got = jax.jit(lambda p: losses.weight_energy(models.weights(p)))(params)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert len(models.weights(params)) == 4


def test_relu_gate_interpolates_between_identity_and_relu():
    h = jnp.array([-2.0, 0.5])
    assert models.constrained(h, 0.0).tolist() == [-2.0, 0.5]
    assert models.constrained(h, 1.0).tolist() == [0.0, 0.5]
    # a gate of 1 makes the nonnegativity penalty vanish on any input
    x = np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32)
    cfg = models.ModelConfig("linear_ae", 6, 6, 4)

    @jax.jit
    def penalty(g):
        params = models.init_params(jax.random.key(2), cfg)
        return losses.nonneg_penalty(models.apply(params, x, cfg, {"relu": g})["code"])

    assert float(penalty(1.0)) == 0.0
    assert float(penalty(0.0)) > 0.0


def test_theorem1_energy_formula_closed_form_values():
    e = theory.rotated_code_energy(jnp.array([0.0, np.pi / 4, np.pi / 2, np.pi, -np.pi / 4]))
    np.testing.assert_allclose(np.asarray(e), [8 / 3, 14 / 3, 8 / 3, 8 / 3, 14 / 3], rtol=1e-6)


def test_theorem1_energy_against_independent_numpy_monte_carlo():
    rng = np.random.default_rng(0)
    e = rng.uniform(-1, 1, size=(400_000, 2))
    for th in (0.0, 0.3, np.pi / 4, 1.2):
        r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        z = e @ r.T
        corners = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]]) @ r.T  # the support's extreme points
        z = z - corners.min(axis=0)  # smallest shift that is nonnegative on the whole square
        assert z.min() >= -1e-12
        mc = np.mean(np.sum(z**2, axis=1))
        assert float(theory.rotated_code_energy(th)) == pytest.approx(mc, rel=3e-3)


def test_simulated_energy_is_minimal_at_axis_alignment():
    thetas = jnp.linspace(0.0, np.pi / 2, 9)
    sim = np.asarray(theory.simulated_code_energy(jax.random.key(0), thetas, num_samples=400_000))
    ana = np.asarray(theory.rotated_code_energy(thetas))
    assert np.max(np.abs(sim - ana) / ana) < 0.01
    assert np.argmin(sim[:-1]) == 0 and np.argmax(sim) == 4  # minimal at 0 (and pi/2), maximal at pi/4


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_correlated_factors_keep_uniform_marginals(rho):
    e = np.asarray(tasks.sample_factors(jax.random.key(3), 100_000, 4, rho))
    assert e.min() >= 0 and e.max() <= 1
    np.testing.assert_allclose(e.mean(0), 0.5, atol=0.01)
    np.testing.assert_allclose(e.var(0), 1 / 12, rtol=0.03)
    c = np.corrcoef(e.T)[np.triu_indices(4, 1)]
    np.testing.assert_allclose(c, rho, atol=0.02)


@pytest.mark.parametrize("corner", [0.5, 0.8])
def test_corner_cut_support_is_the_uniform_band(corner):
    e = np.asarray(tasks.sample_factors(jax.random.key(4), 200_000, 5, 0.0, corner))
    assert e.min() >= 0 and e.max() <= 1
    w = 1 - corner
    area = 1 - corner**2  # the square without its two off-diagonal corner triangles
    for a, b in ((0, 1), (2, 3)):
        d = e[:, a] - e[:, b]
        assert np.abs(d).max() <= w + 1e-6  # the corners are gone ...
        assert np.abs(d).max() > w - 0.01 and e[:, a].min() < 0.01 and e[:, a].max() > 0.99  # ... the band is not
        # uniform on the band: P(u < 1/4, v < 1/4) = area of that box inside the band / the band's area
        box = 1 / 16 - (max(0.0, 0.25 - w) ** 2)  # the box minus its two corners beyond the band
        assert np.mean((e[:, a] < 0.25) & (e[:, b] < 0.25)) == pytest.approx(box / area, abs=0.003)
        # marginals stay U[0, 1] (the band is symmetric), correlation 1 - w^2 (1 + ... ) measured against numpy
        np.testing.assert_allclose(e[:, a].mean(), 0.5, atol=0.005)
    np.testing.assert_allclose(e[:, 4].mean(), 0.5, atol=0.01)  # the odd factor stays U[0, 1]
    assert abs(np.corrcoef(e[:, 1], e[:, 2])[0, 1]) < 0.01  # pairs are independent of each other
    # the same band by rejection sampling in numpy: the same correlation
    r = np.random.default_rng(0).uniform(size=(400_000, 2))
    r = r[np.abs(r[:, 0] - r[:, 1]) <= w]
    assert np.corrcoef(e[:, 0], e[:, 1])[0, 1] == pytest.approx(np.corrcoef(r.T)[0, 1], abs=0.01)


def test_sprites_factors_are_complete_and_move_the_sprite():
    images, factors, names = tasks.sprites(size=16, num_scales=3, num_positions=5)
    assert names == ("shape", "scale", "x", "y")
    assert images.shape == (3 * 3 * 5 * 5, 256) and factors.shape == (225, 4)
    assert len({img.tobytes() for img in images}) == 225  # every factor combination is a different image
    assert images.sum(1).min() > 0
    img = images.reshape(-1, 16, 16)
    cols = (img.sum(1) * np.arange(16)).sum(1) / img.sum((1, 2))  # horizontal centroid
    for s in range(3):
        sel = (factors[:, 0] == s) & (factors[:, 1] == 2) & (factors[:, 3] == 2)
        order = np.argsort(factors[sel, 2])
        assert np.all(np.diff(cols[sel][order]) > 0)
    area = img.sum((1, 2))
    for s in range(3):
        sel = (factors[:, 0] == s) & (factors[:, 2] == 2) & (factors[:, 3] == 2)
        assert np.all(np.diff(area[sel][np.argsort(factors[sel, 1])]) >= 0)  # larger scale, no smaller sprite
        assert area[sel].max() > area[sel].min()
