"""Mutants of collapse's training step, its noise-free control and the noise-scale report rule."""

from tests.mutants.spec import Mutant

T = "tests/collapse/test_train_and_experiment.py"

MUTANTS = [
    Mutant(
        file="collapse/train.py",
        old="optax.add_decayed_weights(weight_decay)",
        new="optax.add_decayed_weights(0.5 * weight_decay)",
        tests=(f"{T}::test_full_batch_step_is_gradient_descent_on_the_expected_loss_with_weight_decay",),
        why="the decay term as wd / 2 (the gradient of wd/2 |w|^2 halved twice)",
    ),
    Mutant(
        file="collapse/train.py",
        old="idx = jax.random.randint(k_batch, (task.batch_size,), 0, n)",
        new="idx = jax.random.randint(k_batch, (task.batch_size,), 0, n - 1)",
        tests=(f"{T}::test_minibatch_update_is_unbiased_so_batch_size_changes_only_the_noise",),
        why="the last training example is never drawn: the minibatch gradient is biased",
    ),
    Mutant(
        file="collapse/train.py",
        old='return expected_cross_entropy(logits, yb, hp["label_noise"], task.num_classes), new_stats',
        new="return cross_entropy(logits, yb), new_stats",
        tests=(
            f"{T}::test_full_batch_step_is_gradient_descent_on_the_expected_loss_with_weight_decay",
            f"{T}::test_full_batch_control_keeps_the_label_noise_as_soft_targets",
        ),
        why="the full-batch control trains on clean labels, not on the setting's expected loss",
    ),
    Mutant(
        file="collapse/groups.py",
        old="points += [(float(n.batch_axis_lr), int(b)) for b in n.batch_sizes if int(b) != int(n.lr_axis_batch)]",
        new="points += [(float(n.lrs[0]), int(b)) for b in n.batch_sizes if int(b) != int(n.lr_axis_batch)]",
        tests=(f"{T}::test_noise_groups_cross_at_a_shared_point_and_pair_each_lr_with_its_control",),
        why="the batch axis trained at the first lr of the lr axis instead of batch_axis_lr",
    ),
    Mutant(
        file="collapse/report.py",
        old="rises = (m[1:] - m[:-1]) > (sd[1:] + sd[:-1])",
        new="rises = (m[:-1] - m[1:]) > (sd[1:] + sd[:-1])",
        tests=(f"{T}::test_trend_rule_needs_a_drop_beyond_the_end_points_spread_and_no_rise_beyond_the_error_bars",),
        why="the monotonicity check flags falls instead of rises",
    ),
    Mutant(
        file="collapse/report.py",
        old="sd = x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros(x.shape[1])",
        new="sd = x.std(axis=0) if x.shape[0] > 1 else np.zeros(x.shape[1])",
        tests=(f"{T}::test_trend_rule_needs_a_drop_beyond_the_end_points_spread_and_no_rise_beyond_the_error_bars",),
        why="the seed spread as the population sd (ddof 0): error bars too small by sqrt(n / (n - 1))",
    ),
    Mutant(
        file="collapse/report.py",
        old="gap = mg - ms",
        new="gap = ms - mg",
        tests=(f"{T}::test_control_gap_is_control_minus_sgd_against_the_summed_seed_spread",),
        why="the excess collapse over the control with the wrong sign",
    ),
    Mutant(
        file="collapse/report.py",
        old='"ok": bool(top["shown"][-1]) and trained,',
        new='"ok": bool(top["shown"][0]) and trained,',
        tests=(f"{T}::test_noise_report_passes_a_shown_trend_and_names_the_layer_where_it_is_only_partly_shown",),
        why="the control check reads the first layer instead of the mean of layers",
    ),
    Mutant(
        file="collapse/groups.py",
        old="n.weight_decay, ln, s), switch=float(steps + 1)) for s in seeds]\n    groups",
        new="n.weight_decay, 0.0, s), switch=float(steps + 1)) for s in seeds]\n    groups",
        tests=(f"{T}::test_noise_groups_cross_at_a_shared_point_and_pair_each_lr_with_its_control",),
        why="the noise sweep's control on clean labels while its SGD runs have label noise (not the same loss)",
    ),
    Mutant(
        file="collapse/report.py",
        old='trained = all(p.get("sgd_test_acc_min", p["sgd_test_acc"]) >= min_acc for p in pts)',
        new='trained = all(p["sgd_test_acc"] >= min_acc for p in pts)',
        tests=(f"{T}::test_noise_report_passes_a_shown_trend_and_names_the_layer_where_it_is_only_partly_shown",),
        why="a point passes on its mean accuracy while one of its seeds did not train",
    ),
]
