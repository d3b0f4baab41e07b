"""margin at CPU scale: every demonstration (a)-(e) in one run.

    python -m margin.main --config=margin/configs/default.py
    python -m margin.main --config=margin/configs/default.py:smoke   # seconds; tests and notebooks

default: (a) the two 2-D toys, 12 points, 3 seeds, 20k steps each; (b, c) a width-16 ReLU net with biases and a
residual block and its homogeneous twin on 2-D XOR blobs, 3 seeds, 10k steps, PGD-ℓ2 on 500 test points; (d)
unconstrained features (K = 4, 5 per class, d = 6, 16k steps), an MLP (64) with BatchNorm on 100 balanced digits
(10 per class, d = 18, 20k steps) and the same MLP without normalisation as the control, 3 seeds each; (e) Cover's
C(P, 10) from 150 draws per P, the Hebb / max-margin / Gibbs / Bayes teacher-student errors at N = 100 (16 draws
per α), and the soft committee machine (K = M = 2, N = 500, 6 seeds) against its ODEs. Step rule "sharpness" at
0.2 (toys) / 0.1 (nets) / 0.5 (neural collapse) of the stability limit (margin/train.py). Expected results and runtime:
margin/README.md ("Measured here").
smoke: the same pipeline at a few hundred steps and a handful of draws; checks only that everything runs.
"""

from __future__ import annotations

import ml_collections


def _training(num_seeds, num_steps, chunk_steps, log_every, lr=0.5, step="sharpness", max_lr=100.0):
    c = ml_collections.ConfigDict()
    c.num_seeds = num_seeds
    c.num_steps = num_steps
    c.chunk_steps = chunk_steps  # steps per compiled call = checkpoint interval
    c.log_every = log_every  # history rows (γ, smoothed γ, log L, min margin) every this many steps
    c.lr = lr  # η: for "sharpness" the fraction of 1/|λ_max(∇² log L)|
    c.max_lr = max_lr  # cap on the "sharpness" step
    c.step = step  # "loss" (∇ log L), "unit" (∇ log L / ‖∇ log L‖) or "sharpness"
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The CPU-scale config; `arg` picks a variant: None/'default' or 'smoke'."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False

    c.toy = _training(3, 20000, 2000, 20, lr=0.2)
    c.toy.loss = "exp"
    c.toy.num_points = 12
    c.toy.data_seed = 0
    c.toy.noise = 0.1
    c.toy.init_scale = 0.1
    c.toy.program_starts = 4  # SLSQP starts of the non-convex program in the model's own parameters

    c.nets = _training(3, 10000, 500, 20, lr=0.1)
    c.nets.loss = "exp"
    c.nets.hidden = 16
    c.nets.num_train = 200
    c.nets.num_test = 500
    c.nets.data_seed = 0
    c.nets.radius = 2.0
    c.nets.noise = 0.35
    c.nets.init_scale = 1.0
    c.nets.bias_scale = 0.1  # nonzero: the output bias is the only rate-λ_max parameter, so ‖θ‖_Λ > 0 from the start
    c.nets.eps = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
    c.nets.pgd_steps = 20
    c.nets.sparsity_fit_from = 0.5  # the decay exponent is fitted over the chunks from this fraction of training on

    c.nc_ufm = _training(3, 16000, 800, 20)
    c.nc_ufm.loss = "cross_entropy"
    c.nc_ufm.classes = 4
    c.nc_ufm.per_class = 5
    c.nc_ufm.dim = 6

    c.nc_mlp = _training(3, 20000, 1000, 20)
    c.nc_mlp.loss = "cross_entropy"
    c.nc_mlp.dataset = "digits"  # or a tfds image set with 10 classes (e.g. "mnist") prepared offline
    c.nc_mlp.allow_fallback = True
    c.nc_mlp.per_class = 10  # 100 digits: past separability within the budget (1,000 reach 0.67 of γ_ETF in 4k steps)
    c.nc_mlp.hidden = (64,)
    c.nc_mlp.dim = 18

    c.perceptron = ml_collections.ConfigDict()
    c.perceptron.cover_n = 10
    c.perceptron.cover_p = tuple(range(4, 33, 4))
    c.perceptron.cover_draws = 150
    c.perceptron.ts_n = 100
    c.perceptron.ts_alphas = (0.5, 1.0, 2.0, 4.0)
    c.perceptron.ts_draws = 16
    c.perceptron.iters = 1000  # FISTA iterations of the max-margin dual (teacher-student uses twice as many)
    c.perceptron.chain_iters = 100  # exact-HMC iterations on the version space (Gibbs: the last; Bayes: the mean)
    c.perceptron.chain_burn_in = 20

    c.committee = ml_collections.ConfigDict()
    c.committee.student_units = 2  # K
    c.committee.teacher_units = 2  # M
    c.committee.n = 500  # input dimension N
    c.committee.lr = 1.0  # η
    c.committee.alpha_max = 150.0  # examples per input dimension (α = steps / N)
    c.committee.records = 30
    c.committee.num_seeds = 6
    c.committee.init_std = 0.5  # student weights N(0, init_std²): Q_ii ≈ 0.25, R ~ 1/sqrt(N)
    c.committee.d_alpha = 0.01  # RK4 step of the ODEs
    c.committee.plateau_alpha = 25.0  # where the plateau height is read

    if arg in (None, "", "default"):
        return c
    if arg == "smoke":
        c.toy.num_seeds = 2
        c.toy.num_steps, c.toy.chunk_steps = 400, 200
        c.nets.num_seeds = 2
        c.nets.hidden = 6
        c.nets.num_train, c.nets.num_test = 40, 40
        c.nets.num_steps, c.nets.chunk_steps, c.nets.log_every = 200, 50, 10
        c.nets.eps = (0.0, 0.5)
        c.nets.pgd_steps = 3
        c.nc_ufm.num_seeds = 1
        c.nc_ufm.num_steps, c.nc_ufm.chunk_steps = 200, 100
        c.nc_mlp.num_seeds = 1
        c.nc_mlp.per_class = 5
        c.nc_mlp.hidden = ()
        c.nc_mlp.dim = 9
        c.nc_mlp.num_steps, c.nc_mlp.chunk_steps = 100, 50
        c.nc_mlp.log_every = 10
        c.perceptron.cover_p = (2, 10, 20)
        c.perceptron.cover_draws = 8
        c.perceptron.ts_n = 10
        c.perceptron.ts_alphas = (1.0, 2.0)
        c.perceptron.ts_draws = 2
        c.perceptron.iters = 200
        c.perceptron.chain_iters, c.perceptron.chain_burn_in = 6, 2
        c.committee.n, c.committee.alpha_max, c.committee.records, c.committee.num_seeds = 50, 4.0, 4, 2
        c.committee.plateau_alpha = 2.0
        return c
    raise ValueError(f"unknown variant {arg!r} (expected default or smoke)")
