"""Config for tests/common/fake_experiment.py."""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False
    c.lr = 0.05
    c.num_steps = 200
    c.chunk_steps = 20
    c.sleep = 0.0
    c.input_file = ""
    c.param_dim = 8
    c.nan_step = -1  # >= 0: the inputs become NaN from this step on
    if arg == "nan":
        c.lr = 1e30
    elif arg:
        raise ValueError(f"unknown variant {arg!r}")
    return c
