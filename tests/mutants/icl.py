"""Mutants of icl: the two M* estimates, the Bayes estimators, the task sampler, the evaluation and the transformer."""

from tests.mutants.spec import Mutant

T = "tests/icl/"
EVAL = T + "test_experiment.py::test_evaluation_ridge_matches_the_closed_form_and_masked_dmmse_matches_the_pool_prefix"

MUTANTS = [
    Mutant(
        file="icl/thresholds.py",
        old="mean_curve = np.log(dr.mean(0) + tiny) - np.log(dd.mean(0) + tiny)",
        new="mean_curve = np.log(dr.mean(-1) + tiny) - np.log(dd.mean(-1) + tiny)",
        tests=(T + "test_thresholds_known.py::test_closer_to_ridge_seed_mean_crossing_is_three",),
        why="closer_to_ridge: the seed-mean distances averaged over M instead of the seeds",
    ),
    Mutant(
        file="icl/thresholds.py",
        old="diff = large.mean(0) - small.mean(0) if x.size else np.zeros(0)",
        new="diff = large.mean(-1) - small.mean(-1) if x.size else np.zeros(0)",
        tests=(T + "test_thresholds_known.py::test_batch_crossing_seed_mean_crossing_is_three",),
        why="batch_crossing: the seed-mean d(M) averaged over M instead of the seeds",
    ),
    Mutant(
        file="icl/thresholds.py",
        old="closer = log_ratio < 0",
        new="closer = log_ratio <= 0",
        tests=(T + "test_thresholds_known.py::test_ties_are_not_closer_and_not_positive",),
        why="closer_to_ridge: <= for < (a tie with dMMSE counts as closer to Ridge)",
    ),
    Mutant(
        file="icl/thresholds.py",
        old="pos = np.flatnonzero(diff > 0)",
        new="pos = np.flatnonzero(diff >= 0)",
        tests=(T + "test_thresholds_known.py::test_ties_are_not_closer_and_not_positive",),
        why="batch_crossing: >= for > (d(M) = 0 counts as still positive)",
    ),
    Mutant(
        file="icl/thresholds.py",
        old="se = float(np.std(ok, ddof=1) / math.sqrt(len(ok)))",
        new="se = float(np.std(ok) / math.sqrt(len(ok)))",
        tests=(
            T + "test_experiment.py::test_closer_to_ridge_from_distances_with_multiple_crossings_and_standard_error",
        ),
        why="the standard error of M* from the biased (ddof=0) standard deviation",
    ),
    Mutant(
        file="icl/estimators.py",
        old="a = gram + sigma2 * jnp.eye(d, dtype=xs_BxKxD.dtype)",
        new="a = gram + jnp.sqrt(sigma2) * jnp.eye(d, dtype=xs_BxKxD.dtype)",
        tests=(T + "test_estimators.py::test_ridge_equals_numpy_regularised_least_squares",),
        why="Ridge regularised by the noise std instead of the variance",
    ),
    Mutant(
        file="icl/estimators.py",
        old="return jax.lax.slice_in_dim(jnp.pad(c, pad), 0, a.shape[axis], axis=axis)",
        new="return c",
        tests=(T + "test_estimators.py::test_ridge_equals_numpy_regularised_least_squares",),
        why="inclusive instead of exclusive cumulative sum: position k sees its own pair (x_k, y_k)",
    ),
    Mutant(
        file="icl/estimators.py",
        old="logit_BxKxC = -_exclusive_cumsum(resid**2) / (2.0 * sigma2)",
        new="logit_BxKxC = -_exclusive_cumsum(resid**2) / sigma2",
        tests=(T + "test_estimators.py::test_dmmse_chunked_equals_direct_softmax",),
        why="dMMSE likelihood without the factor 2 in 1 / (2 sigma^2)",
    ),
    Mutant(
        file="icl/estimators.py",
        old="shrink = jnp.exp(run_max - new_max)",
        new="shrink = jnp.exp(new_max - run_max)",
        tests=(T + "test_estimators.py::test_dmmse_chunked_equals_direct_softmax",),
        why="streaming log-sum-exp: the running sums rescaled by the inverse factor",
    ),
    Mutant(
        file="icl/estimators.py",
        old="valid = (jnp.arange(n_chunks * c) < limit).reshape(n_chunks, c)",
        new="valid = (jnp.arange(n_chunks * c) <= limit).reshape(n_chunks, c)",
        tests=(EVAL,),
        why="dMMSE prior mask off by one: M + 1 tasks of the pool",
    ),
    Mutant(
        file="icl/tasks.py",
        old="idx = jax.random.randint(k_idx, (batch_size,), 0, m)",
        new="idx = jax.random.randint(k_idx, (batch_size,), 0, m + 1)",
        tests=(T + "test_tasks.py::test_indices_stay_below_a_traced_m",),
        why="task indices drawn from M + 1 tasks (off by one)",
    ),
    Mutant(
        file="icl/tasks.py",
        old="eps = jax.random.normal(k_eps, (b, num_points), ws_BxD.dtype) * noise_std",
        new="eps = jax.random.normal(k_eps, (b, num_points), ws_BxD.dtype) * noise_std**2",
        tests=(T + "test_tasks.py::test_targets_are_linear_plus_noise_of_the_given_variance",),
        why="label noise scaled by the variance instead of the std",
    ),
    Mutant(
        file="icl/evaluation.py",
        old="dmmse = jnp.where(infinite, ridge, dmmse)",
        new="dmmse = jnp.where(infinite, dmmse, ridge)",
        tests=(EVAL,),
        why="evaluation: Ridge substituted for dMMSE at finite M instead of at M = inf",
    ),
    Mutant(
        file="icl/evaluation.py",
        old="return {key: jnp.sum(v, 0) / (num_prompts * d) for key, v in sums.items()}",
        new="return {key: jnp.sum(v, 0) / num_prompts for key, v in sums.items()}",
        tests=(EVAL,),
        why="evaluation: losses not divided by D (the paper's per-dimension units)",
    ),
    Mutant(
        file="icl/transformer.py",
        old="return out_BxT[:, 0::2]  # the prediction of y_k sits at the token of x_k",
        new="return out_BxT[:, 1::2]  # the prediction of y_k sits at the token of x_k",
        tests=(T + "test_transformer.py::test_model_is_causal",),
        why="read-out at the y tokens: the prediction of y_k sees y_k",
    ),
    Mutant(
        file="icl/transformer.py",
        old="resid_init = nnx.initializers.normal(0.02 / math.sqrt(2 * num_layers))",
        new="resid_init = nnx.initializers.normal(0.02 / math.sqrt(num_layers))",
        tests=(T + "test_transformer.py::test_gpt2_initialisation_scales",),
        why="GPT-2 residual projections scaled by 1/sqrt(L) instead of 1/sqrt(2L)",
    ),
]
