"""Every sweep grid of the collapse config is checked: an empty or unsorted grid is an error naming the key."""

import pytest

from collapse import experiment
from collapse.configs import default, paper
from common import app

# grid -> an unsorted value; the required grids must also be non-empty.
UNSORTED = {
    "sweep.lrs": (0.2, 0.05),
    "sweep.label_noises": (0.2, 0.1),
    "sweep.weight_decays": (1e-3, 0.0),
    "sweep.batch_sizes": (64, 8),
    "large_lr.durations": (100, 0),
    "cnn.lrs": (0.2, 0.1),
    "sde.zetas": (2.5, 1.0),
    "sde.neuron_lrs": (3.0, 1.0),
    "sde.hidden_lr_factors": (1.5, 0.5),
    "teacher_student.sigmas": (20.0, 0.0),
    "net.maxpool_after": (1, 0),
    "sde.merge_lr_factors": (1.5, 0.5),
    "sde.dts": (0.01, 0.0025),
    "sde.times": (20.0, 10.0),
}
REQUIRED = (
    "sweep.lrs",
    "cnn.lrs",
    "sde.zetas",
    "sde.neuron_lrs",
    "sde.hidden_lr_factors",
    "sde.merge_lr_factors",
    "sde.dts",
    "sde.times",
    "teacher_student.sigmas",
)


def _with(key, value):
    c = default.get_config("smoke")
    section, name = key.split(".")
    c[section][name] = value
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


def test_optional_extra_settings_may_be_empty():
    for key in set(UNSORTED) - set(REQUIRED):
        experiment.validate(_with(key, ()))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("large_lr.durations", (0, 150)),  # not a checkpoint step (chunk 100)
        ("large_lr.durations", (0, 200)),  # no room for the fine-tune within num_steps
        ("gd.num_steps", 300),  # beyond num_steps
        ("large_lr.finetune_steps", 50),
        ("sde.r_in", 1.0),  # not below r_out
    ],
)
def test_inconsistent_protocol_fields_are_rejected_naming_the_key(key, value):
    with pytest.raises(app.ConfigError) as err:
        experiment.validate(_with(key, value))
    assert err.value.key == key


@pytest.mark.parametrize("variant", [None, "smoke", "cnn", "resnet", "resnet_smoke"])
def test_shipped_default_variants_validate(variant):
    experiment.validate(default.get_config(variant))


@pytest.mark.parametrize("variant", [None, "resnet18"])
def test_shipped_paper_variants_validate(variant):
    experiment.validate(paper.get_config(variant))
