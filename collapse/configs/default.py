"""collapse at CPU scale: digits MLP/CNN sweeps, the SDE/SGD attractivity toys, teacher-student, large lr early.

    python -m collapse.main --config=collapse/configs/default.py
    python -m collapse.main --config=collapse/configs/default.py:smoke   # seconds of compute; tests
    python -m collapse.main --config=collapse/configs/default.py:cnn     # plus the digits CNN and its control

default: MLP 64-256-256-10 (GELU) on scikit-learn digits, SGD momentum 0.9. First the noise-scale sweep (Fig. 4 as
noise): weight decay 5e-4, 500-step warmup, 5k steps, an lr axis (lr 0.025 / 0.05 / 0.1 at batch 8) and a batch
axis (batch 64 / 32 / 16 / 8 at lr 0.1), 3 seeds per point, each point beside full-batch GD on the same loss at the
same lr schedule for the same 5k steps, 3 seeds (one compiled group per batch size, one for the controls). Then
the weight-decay sweep at batch 32, 20k steps, 2 seeds: lr 0.05, label noise 0.1 / 0.2, weight decay 0, lr 0.2
for 0/5k/10k/15k steps then 0.02,
with the independent / vanishing / merged fractions and test accuracy at every 5k-step checkpoint, beside the
noise-free control, full-batch GD on the same expected loss (label noise as soft targets) for 5k steps;
local attractivity (exit problem) of the quartic well (2000 paths per zeta, dt 0.0025 and 0.01) with its
finite-time curves at T = 25-200, the single-neuron SDE, a vanishing hidden neuron (SGD, rest frozen and
all trained, Lyapunov exponents) and an identical pair (the released merging toy); the 64-mode linear
teacher-student at sigma = 0, 5, 10, 15, 20 (4 seeds). The CNN is in the ``cnn`` variant.
Expected: see collapse/README.md ("Measured here") for the numbers; the report checks local attractivity predicted
vs measured (2-10 %), that collapse grows with lr / batch along both axes and exceeds its full-batch control beyond
the seed spread (measured: the lr trend in both layers; the excess over the control and
the batch trend in fc2 only, at batch 8; see the README), that label-noise SGD collapses more than GD on the same
expected loss, and that minibatch SGD collapses at least as much as its GD control.
smoke: every part at toy size, a few seconds of compute (plus compilation); its label-noise setting (lr 0.4,
batch 8, label noise 0.3, weight decay 1e-3) collapses fc1 within 200 steps while its GD control does not (but the
noisy run's accuracy is near chance at that length: a test of the machinery, not of the benefit).
resnet: a tiny BatchNorm ResNet (BasicBlocks [2, 2, 2], widths 8-16-32, 3x3 stem, projection shortcuts) on
digits, batch 32, 20k steps, 1 seed: lr 0.05 / 0.1 / 0.2, label noise 0.2, weight decay 0, batch 8, large lr
0.2 for 0 / 5k steps then 0.02; independent fraction of every block-inner channel layer and residual stream at
every 5k-step checkpoint (toys at smoke size). resnet_smoke: the same at toy size (tests).
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The CPU-scale config; ``arg`` picks a variant: None/'default', 'smoke', 'resnet' or 'resnet_smoke'."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.overwrite = False

    c.data = ml_collections.ConfigDict()
    c.data.name = "digits"  # any tfds image set; "digits" is scikit-learn's, offline
    c.data.allow_fallback = True  # a tfds set that is not on disk falls back to digits (source is logged)

    # The digits networks. Thresholds are the paper's.
    c.net = ml_collections.ConfigDict()
    c.net.arch = "mlp"
    c.net.widths = (256, 256)
    c.net.act = "gelu"
    c.net.maxpool_after = ()
    c.net.dense_head = ()
    c.net.momentum = 0.9
    c.net.vanish_threshold = 0.1
    c.net.identical_threshold = 0.1

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 32
    c.train.num_steps = 20000
    c.train.chunk_steps = 5000  # one compiled call per chunk = checkpoint + independent-fraction measurement
    c.train.num_seeds = 2

    # One vmapped sweep around the base setting (lr, weight decay, no label noise).
    c.sweep = ml_collections.ConfigDict()
    c.sweep.base_lr = 0.05
    c.sweep.base_weight_decay = 5e-4
    c.sweep.lrs = (0.05,)  # more lrs: the noise sweep; lr 0.02 is the large-lr run without a high-lr phase
    c.sweep.label_noises = (0.1, 0.2)  # at base lr
    c.sweep.weight_decays = (0.0,)  # extra weight decays at base lr (0 = the no-collapse control)
    c.sweep.batch_sizes = ()  # extra batch sizes at base lr (each its own compiled group); see c.noise
    c.sweep.batch_num_seeds = 1

    c.large_lr = ml_collections.ConfigDict()
    c.large_lr.lr_high = 0.2
    c.large_lr.lr_low = 0.02
    # Steps at lr_high before the drop; as released, the fraction is read at the drop and the accuracy after a
    # fine-tune of finetune_steps at lr_low (both checkpoints: multiples of train.chunk_steps within num_steps).
    c.large_lr.durations = (0, 5000, 10000, 15000)
    c.large_lr.finetune_steps = 5000

    # The noise-scale sweep (Fig. 4 as noise): SGD along an lr axis at batch 8 and a batch axis at lr 0.1 (noise
    # scale lr / batch), every point beside full-batch GD on the same loss at the same lr schedule for the same
    # number of steps, seeds 0-2 for both. At a fixed lr the expected update of every batch size is the same
    # (minibatches drawn with replacement are unbiased) and so is the weight decay's integral lr * wd * steps: the
    # batch axis changes the gradient noise only. A 500-step linear warmup keeps every batch-8 run at lr 0.1
    # trained (without it one seed in six stays near chance). Label noise (noise.label_noise, on both SGD and the
    # control's expected loss) was probed and inverts the batch axis (collapse/README.md).
    c.noise = ml_collections.ConfigDict()
    c.noise.enabled = True
    c.noise.weight_decay = 5e-4
    c.noise.label_noise = 0.0  # SGD: labels redrawn at every load; GD: its expected loss (soft targets)
    c.noise.warmup_steps = 500  # linear lr warmup, SGD and GD alike
    c.noise.num_steps = 5000  # SGD and GD alike; a multiple of train.chunk_steps
    c.noise.num_seeds = 3
    c.noise.gd_num_seeds = 3  # seeds config.seed + 0, 1, 2: the same initial networks as the SGD seeds
    c.noise.lrs = (0.025, 0.05, 0.1)
    c.noise.lr_axis_batch = 8
    c.noise.batch_sizes = (8, 16, 32, 64)
    c.noise.batch_axis_lr = 0.1  # one of noise.lrs (its GD control is the lr axis' one)
    c.noise.min_test_acc = 0.9  # every run of a point must have trained (a failed run also loses neurons)

    # The noise-free control: full-batch GD on the expected loss (label noise as soft targets) with every SGD
    # setting's lr schedule and weight decay, compared with SGD at the same step (a full-batch step costs ~45
    # minibatch steps on digits).
    c.gd = ml_collections.ConfigDict()
    c.gd.enabled = True
    c.gd.num_steps = 5000  # a multiple of train.chunk_steps, at most train.num_steps
    c.gd.large_lr = False  # controls for the large-lr-early runs too (5k full-batch steps each)

    c.cnn = ml_collections.ConfigDict()
    c.cnn.enabled = False  # default.py:cnn (its full-batch GD control costs ~4x the MLP's)
    c.cnn.widths = (16, 32)
    c.cnn.lrs = (0.05, 0.2)
    c.cnn.num_steps = 10000
    c.cnn.num_seeds = 1

    c.sde = ml_collections.ConfigDict()
    c.sde.mu = 1.5
    c.sde.zetas = (1.0, 1.4, 1.6, 1.65, 1.7, 1.72, 1.74, 1.76, 1.8, 1.85, 1.9, 2.0, 2.2, 2.5)
    c.sde.num_seeds = 2000
    c.sde.dt = 0.01  # the finite-time curves (Fig. 1 protocol)
    c.sde.dts = (0.0025, 0.01)  # local attractivity measured at each step size (the map's threshold moves with dt)
    c.sde.times = (25.0, 50.0, 100.0, 200.0)  # the finite-time curves are read at these times
    c.sde.eps = 1e-15
    # Local attractivity (exit problem): start at sqrt(r_in r_out), collapsed = reach r_in before leaving r_out.
    c.sde.r_in = 1e-7
    c.sde.r_out = 1e-2
    c.sde.exit_time = 100.0  # SDE time units (the undecided fraction is reported)
    c.sde.neuron_label_noise = 1.0
    c.sde.neuron_lrs = (1.0, 1.4, 1.6, 1.8, 1.9, 2.0, 2.1, 2.2, 2.5, 3.0)
    c.sde.neuron_num_seeds = 1000
    c.sde.neuron_dt = 0.02
    c.sde.neuron_time = 200.0
    c.sde.hidden_label_noise = 1.0
    c.sde.hidden_batch_size = 4
    c.sde.hidden_lr_factors = (0.25, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5)  # x predicted eta_c
    c.sde.hidden_num_seeds = 512
    c.sde.hidden_num_steps = 4000
    c.sde.lyapunov_num_seeds = 64
    # The released merging toy (1-2-1 GELU, 8 samples, full-batch GD on noisy labels); lr as factors of eta_c.
    c.sde.merge_label_noise = 0.8
    c.sde.merge_r_in = 1e-5  # above float32 rounding of the pair's weights (|w| ~ 5 here)
    c.sde.merge_lr_factors = (0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5)

    c.teacher_student = ml_collections.ConfigDict()
    c.teacher_student.sigmas = (0.0, 5.0, 10.0, 15.0, 20.0)
    c.teacher_student.lr = 3.0
    c.teacher_student.num_steps = 60000
    c.teacher_student.drop_step = 50000
    c.teacher_student.num_seeds = 4
    c.teacher_student.collapse_threshold = 1e-3  # a mode is collapsed when its learned product is below this
    c.teacher_student.record_every = 1000  # test-MSE curves over training (Fig. 5; 0 = none)

    if arg in (None, "", "default"):
        return c
    if arg == "cnn":  # the default plus the 16-32 channel CNN at two learning rates, with its GD control
        c.cnn.enabled = True
        return c
    if arg == "smoke":
        c.net.widths = (32, 32)
        c.train.num_steps = 200
        c.train.chunk_steps = 100
        c.train.num_seeds = 1
        # A setting that really collapses within 200 steps (lr 0.4, label noise 0.3, batch 8) beside its
        # full-batch GD control, which does not.
        c.train.batch_size = 8
        c.sweep.base_lr = 0.4
        c.sweep.base_weight_decay = 1e-3
        c.sweep.lrs = (0.05, 0.4)
        c.sweep.label_noises = (0.3,)
        c.sweep.batch_sizes = (16,)
        c.large_lr.lr_high = 0.4
        c.large_lr.lr_low = 0.05
        c.large_lr.durations = (0, 100)
        c.large_lr.finetune_steps = 100
        c.gd.num_steps = 200
        c.gd.large_lr = True
        c.noise.weight_decay = 1e-3
        c.noise.num_steps = 200
        c.noise.num_seeds = 2
        c.noise.gd_num_seeds = 2
        c.noise.warmup_steps = 50
        c.noise.label_noise = 0.1
        c.noise.lrs = (0.1, 0.4)
        c.noise.batch_sizes = (8, 32)
        c.noise.batch_axis_lr = 0.4
        c.cnn.enabled = True
        c.cnn.widths = (4, 8)
        c.cnn.lrs = (0.1,)
        c.cnn.num_steps = 100
        _smoke_toys(c)
        return c
    if arg in ("resnet", "resnet_smoke"):
        # A tiny ResNet (the ResNet-18 layout at 1/8 width, three stages for 8x8 inputs) on digits; the
        # attractivity toys and teacher-student at smoke size (the default variant runs them in full).
        _smoke_toys(c)
        c.net.arch = "resnet"
        c.net.widths = (8, 16, 32)
        c.net.blocks = 2
        c.net.resnet_neurons = "exact"  # or "chain" (the released notebook's rule)
        c.net.resnet_norm_params = True
        c.train.warmup_steps = 0
        c.train.num_steps = 20000
        c.train.chunk_steps = 5000
        c.train.num_seeds = 1
        c.sweep.lrs = (0.05, 0.1, 0.2)
        c.sweep.label_noises = (0.2,)
        c.sweep.batch_sizes = (8,)
        c.large_lr.durations = (0, 5000)
        c.gd.enabled = False  # full-batch BatchNorm ResNet steps: too slow for the CPU budget
        c.noise.enabled = False  # it needs the full-batch control
        c.cnn.enabled = False
        if arg == "resnet_smoke":
            c.net.widths = (4, 8)
            c.train.num_steps = 100
            c.train.chunk_steps = 50
            c.sweep.lrs = (0.2,)
            c.large_lr.durations = (0, 50)
            c.large_lr.finetune_steps = 50
            c.gd.num_steps = 50
        return c
    raise ValueError(f"unknown variant {arg!r}; use 'smoke', 'cnn', 'resnet', 'resnet_smoke' or nothing")


def _smoke_toys(c: ml_collections.ConfigDict) -> None:
    """Toy-sized attractivity and teacher-student settings (shared by the smoke and ResNet variants)."""
    c.sde.zetas = (1.0, 2.5)
    c.sde.num_seeds = 200
    c.sde.dts = (0.01,)
    c.sde.times = (10.0, 20.0)
    c.sde.exit_time = 20.0
    c.sde.neuron_lrs = (1.0, 3.0)
    c.sde.neuron_num_seeds = 100
    c.sde.neuron_time = 20.0
    c.sde.hidden_lr_factors = (0.5, 1.5)
    c.sde.hidden_num_seeds = 32
    c.sde.hidden_num_steps = 200
    c.sde.lyapunov_num_seeds = 8
    c.sde.merge_lr_factors = (0.5, 1.5)
    c.teacher_student.sigmas = (0.0, 20.0)
    c.teacher_student.num_steps = 2000
    c.teacher_student.drop_step = 1500
    c.teacher_student.record_every = 500
    c.teacher_student.num_seeds = 2
