"""Mutants of manifolds/: the estimator's optimiser, bases, box, convergence rule and ensembles; the training
snapshots and equal-epoch stop; the trend change of the report."""

from tests.mutants.spec import Mutant

CP = "tests/manifolds/test_cutting_planes.py"
INPUTS = "tests/manifolds/test_estimator_inputs.py"
TRAIN = "tests/manifolds/test_train.py"
EXP = "tests/manifolds/test_experiment.py"

MUTANTS = [
    Mutant(
        file="manifolds/cutting_planes.py",
        old='mhat = m / jnp.where(released, 1 - spec["b1"], 1 - spec["b1"] ** t1)',
        new='mhat = m / jnp.where(released, 1 - spec["b1"], 1 - spec["b1"] ** c["t"])',
        tests=(f"{CP}::test_adam_updates_match_a_numpy_reference",),
        why="Adam's bias correction one step behind (β₁ to the power t instead of t + 1)",
    ),
    Mutant(
        file="manifolds/cutting_planes.py",
        old='vhat = v / jnp.where(released, 1 - spec["b2"], 1 - spec["b2"] ** t1)',
        new='vhat = v / jnp.where(released, 1 - spec["b1"], 1 - spec["b2"] ** t1)',
        tests=(f"{CP}::test_adam_updates_match_a_numpy_reference",),
        why="the released optimiser's second moment divided by 1 − β₁ instead of 1 − β₂",
    ),
    Mutant(
        file="manifolds/cutting_planes.py",
        old="rows = jnp.arange(dmax)[:, None] < d",
        new="rows = jnp.arange(dmax)[:, None] <= d",
        tests=(f"{CP}::test_padded_vmapped_sweep_equals_each_subspace_alone_unpadded", f"{CP}::test_bases"),
        why="one padding row too many kept: a d-dimensional cut is really (d + 1)-dimensional",
    ),
    Mutant(
        file="manifolds/cutting_planes.py",
        old="g = g / jnp.linalg.norm(g, axis=1, keepdims=True)",
        new="g = g / jnp.linalg.norm(g, axis=0, keepdims=True)",
        tests=(f"{CP}::test_bases",),
        why="basis vectors normalised over the wrong axis (columns instead of rows)",
    ),
    Mutant(
        file="manifolds/cutting_planes.py",
        old='return jnp.where(spec["clip"] > 0, jnp.clip(x, spec["lo"], spec["hi"]), x)',
        new="return x",
        tests=(f"{CP}::test_bounds_keep_the_search_in_the_box_and_report_saturation",),
        why="the search leaves the data: points are not clipped into the box",
    ),
    Mutant(
        file="manifolds/cutting_planes.py",
        old="x = x0 + step * jnp.where((r > 0) & (n > r), r_safe / jnp.maximum(n, r_safe), 1.0)",
        new="x = x0 + step",
        tests=(f"{CP}::test_radius_limits_the_reach_and_the_check_keeps_it",),
        why="the reach is not limited: the search goes as far as the rate and steps carry it",
    ),
    Mutant(
        file="manifolds/cutting_planes.py",
        old="converged = bool(abs(moved) <= allowed)",
        new="converged = bool(moved <= allowed)",
        tests=(f"{CP}::test_halfspace_at_a_converged_budget_is_one_and_a_short_budget_is_flagged",),
        why="the convergence check compares the signed move, so any fall of d* passes",
    ),
    Mutant(
        file="manifolds/cutting_planes.py",
        old="return jax.nn.log_softmax(logp.mean(axis=0), axis=-1)",
        new="return jax.nn.log_softmax(logp.mean(axis=-1, keepdims=True) + logp[0], axis=-1)",
        tests=(
            f"{CP}::test_ensemble_of_two_slabs_is_codimension_two",
            f"{CP}::test_ensemble_modes_product_and_mixture",
        ),
        why="the ensemble averages over classes instead of over members (only the first member counts)",
    ),
    Mutant(
        file="manifolds/checks.py",
        old="out = np.flatnonzero(np.any((x < lo - 1e-6) | (x > hi + 1e-6), axis=1))",
        new="out = np.flatnonzero(np.all((x < lo - 1e-6) | (x > hi + 1e-6), axis=1))",
        tests=(f"{INPUTS}::test_bad_inputs_raise_one_error_naming_the_argument",),
        why="start points outside the box accepted unless every pixel is out of range",
    ),
    Mutant(
        file="manifolds/train.py",
        old="snaps = _snapshot(task, snaps, params, t + 1)",
        new="snaps = _snapshot(task, snaps, params, t)",
        tests=(f"{TRAIN}::test_snapshots_from_the_initialisation_and_chunks_resume",),
        why="snapshots one step late: the parameters after step t filed under step t - 1",
    ),
    Mutant(
        file="manifolds/train.py",
        old='opt = nn.set_lr(opt, jnp.where(t < hp["stop_step"], hp["lr"], 0.0))',
        new='opt = nn.set_lr(opt, jnp.where(t <= hp["stop_step"], hp["lr"], 0.0))',
        tests=(f"{TRAIN}::test_stop_step_freezes_the_parameters_and_random_labels_differ",),
        why="equal-epoch runs take one step more than their stop step",
    ),
    Mutant(
        file="manifolds/train.py",
        old="scale = jnp.sqrt(wmax / width)",
        new="scale = jnp.sqrt(width / wmax)",
        tests=(f"{TRAIN}::test_masked_wide_mlp_is_the_narrow_mlp_and_stays_masked",),
        why="the narrower MLP's output layer initialised at the wide net's fan-in scale, inverted",
    ),
    Mutant(
        file="manifolds/models.py",
        old="mean = z.mean(axis=(1, 2, 4), keepdims=True)",
        new="mean = z.mean(axis=(0, 1, 2, 4), keepdims=True)",
        tests=(f"{TRAIN}::test_toy_resnet_is_per_example_and_trains",),
        why="the ResNet's normalisation takes batch statistics: one image's logits depend on the rest of the batch",
    ),
    Mutant(
        file="manifolds/models.py",
        old="if s > 0 and b == 0:",
        new="if b == 0:",
        tests=(f"{TRAIN}::test_resnet20_and_wideresnet_shapes_and_parameter_counts",),
        why="a shortcut convolution (and its stride 2) in the first stage too: not ResNet-20's layout",
    ),
    Mutant(
        file="manifolds/summary.py",
        old="        diff = last - first\n",
        new="        diff = first - last\n",
        tests=(
            f"{EXP}::test_trend_change_is_paired_over_seeds_and_signed",
            f"{EXP}::test_report_rows_say_which_trends_hold",
        ),
        why="a trend's change taken backwards: every direction reported against the paper's sign",
    ),
]
