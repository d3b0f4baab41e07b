"""Every grid of the spectra config is checked: an empty or unsorted grid is an error naming the key."""

import pytest

from common import app
from spectra import experiment
from spectra.configs import default

UNSORTED = {
    "bbp_thetas": (3.0, 1.5),
    "finite_thetas": (1.5, 0.8),
    "phase_bs": (0.3, 0.01),
    "phase_sim_bs": (0.3, 0.1),
}
REQUIRED = ("bbp_thetas", "finite_thetas", "phase_bs")


def _with(key, value):
    c = default.get_config("smoke")
    c[key] = value
    return c


@pytest.mark.parametrize("key", sorted(UNSORTED))
def test_unsorted_grid_is_rejected_naming_the_key(key):
    with pytest.raises(app.ConfigError) as err:
        experiment.validate(_with(key, UNSORTED[key]))
    assert err.value.key == key and "increasing" in str(err.value)


@pytest.mark.parametrize("key", REQUIRED)
def test_empty_grid_is_rejected_naming_the_key(key):
    with pytest.raises(app.ConfigError) as err:
        experiment.validate(_with(key, ()))
    assert err.value.key == key and "must not be empty" in str(err.value)


def test_grid_bounds():
    experiment.validate(_with("phase_sim_bs", ()))  # the phase diagram without simulated points
    for key, value in (("phase_bs", (0.5, 1.0)), ("phase_sim_bs", (0.0, 0.5)), ("bbp_thetas", (-1.0, 2.0))):
        with pytest.raises(app.ConfigError) as err:
            experiment.validate(_with(key, value))
        assert err.value.key == key
