"""common.app: the CLI contract (config errors exit 2 with one line and write nothing; resume; finished runs)."""

import json
import os
import subprocess
import sys

import pytest

from common import app
from tests.common import fake_config, fake_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(workdir, *args):
    cmd = [
        sys.executable,
        "-m",
        "tests.common.fake_main",
        "--config=tests/common/fake_config.py",
        f"--workdir={workdir}",
        *args,
    ]
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


def error_lines(proc):
    """stderr lines that are not absl/jax log lines."""
    return [
        ln
        for ln in proc.stderr.splitlines()
        if ln and ln[:1] not in "IWE" or ln.startswith("error") or "error" in ln[:20]
    ]


@pytest.mark.parametrize(
    "args, key",
    [
        (["--config.no_such_key=1"], "no_such_key: no such field"),
        (["--config.lr=abc"], "lr"),
        (["--config.lr=-1"], "lr"),
        (["--config.seed=-3"], "seed"),
        (["--config.num_steps=30"], "num_steps"),
    ],
)
def test_bad_config_exits_2_with_one_line_and_writes_nothing(tmp_path, args, key):
    workdir = tmp_path / "w"
    proc = cli(workdir, *args)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("config error")]
    assert len(lines) == 1, proc.stderr
    assert key in lines[0]
    assert not workdir.exists()


def test_bad_config_file_and_variant(tmp_path):
    for spec in ["tests/common/nope.py", "tests/common/fake_config.py:novariant"]:
        cmd = [
            sys.executable,
            "-m",
            "tests.common.fake_main",
            f"--config={spec}",
            f"--workdir={tmp_path / 'w'}",
        ]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("config error")]
        assert len(lines) == 1 and ("nope.py" in lines[0] or "novariant" in lines[0]), proc.stderr
        assert not (tmp_path / "w").exists()


def test_cli_writes_config_first_results_last_and_reports_finished_run(tmp_path):
    workdir = tmp_path / "w"
    proc = cli(workdir, "--config.num_steps=40")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((workdir / "config.json").read_text())
    assert cfg["num_steps"] == 40 and cfg["lr"] == 0.05
    res = json.loads((workdir / "results.json").read_text())
    assert len(res["params"]) == 8 and res["runtime_seconds"] >= 0
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40]
    mtime = os.path.getmtime(workdir / "results.json")
    proc = cli(workdir, "--config.num_steps=40")
    assert proc.returncode == 0 and "not redone" in proc.stderr
    assert os.path.getmtime(workdir / "results.json") == mtime


def test_user_error_exits_2_and_removes_the_workdir_it_created(tmp_path):
    workdir = tmp_path / "w"
    proc = cli(workdir, "--config.input_file=/no/such/file.npy")
    assert proc.returncode == 2
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] == [
        "error: input_file /no/such/file.npy: no such file"
    ]
    assert not workdir.exists()


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "tests.common.fake_main",
        "--config=tests/common/fake_config.py:nan",
        f"--workdir={tmp_path / 'w'}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert any(ln.startswith("stopped: non-finite loss at step") for ln in proc.stderr.splitlines()), proc.stderr
    assert not (tmp_path / "w" / "results.json").exists()


def test_non_finite_stops_at_the_exact_step_and_keeps_the_last_good_checkpoint(tmp_path):
    """The inputs turn NaN at step 47 (chunks of 20): exit 1 naming step 47; checkpoints 20 and 40 only."""
    work = tmp_path / "w"
    proc = cli(work, "--config.nan_step=47")
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("stopped: non-finite loss at step 47 of train"), last
    assert "last good checkpoint is step 40" in last
    assert sorted(int(d) for d in os.listdir(work / "checkpoints") if d.isdigit()) == [20, 40]
    assert not (work / "results.json").exists()


def test_finished_run_of_another_config_is_refused_naming_key_and_values(tmp_path):
    work = tmp_path / "w"
    assert cli(work, "--config.num_steps=40", "--config.lr=0.05").returncode == 0
    before = (work / "results.json").read_text()
    proc = cli(work, "--config.num_steps=40", "--config.lr=0.5")
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("config error: lr: is 0.05 in the finished run in") and "but 0.5 in this config" in line
    assert "--workdir" in line and "overwrite" in line
    assert (work / "results.json").read_text() == before  # nothing touched
    # The same config again is reported, not redone.
    again = cli(work, "--config.num_steps=40", "--config.lr=0.05")
    assert again.returncode == 0 and "not redone" in again.stderr


def test_overwrite_removes_every_declared_output_and_only_those(tmp_path):
    work = tmp_path / "w"
    assert cli(work, "--config.num_steps=40", "--config.lr=0.05").returncode == 0
    (work / "mine.txt").write_text("a file the user put here")
    assert (work / "note_0.05.txt").exists()
    proc = cli(work, "--config.num_steps=40", "--config.lr=0.5", "--config.overwrite=True")
    assert proc.returncode == 0, proc.stderr
    assert not (work / "note_0.05.txt").exists()  # the old run's declared output is gone
    assert (work / "note_0.5.txt").exists() and (work / "mine.txt").exists()
    rows = [json.loads(x) for x in (work / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40]  # the new run's rows only
    assert json.loads((work / "config.json").read_text())["lr"] == 0.5


def test_checkpoint_of_another_structure_exits_2_and_keeps_metric_rows(tmp_path):
    """config.json says param_dim=4 but the checkpoints hold param_dim=8 (as after a code change): exit 2."""
    work = tmp_path / "w"
    assert cli(work, "--config.num_steps=40").returncode == 0
    (work / "results.json").unlink()
    cfg = json.loads((work / "config.json").read_text())
    cfg["param_dim"] = 4
    (work / "config.json").write_text(json.dumps(cfg))
    rows_before = (work / "metrics.jsonl").read_text()
    proc = cli(work, "--config.num_steps=40", "--config.param_dim=4")
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "does not match this config: opt/0/mu is shape (8,)" in line and "(4,) float32 here" in line, line
    assert (work / "metrics.jsonl").read_text() == rows_before


def test_dedup_eps_change_is_refused_and_overwrite_removes_old_selections(tmp_path):
    from dedup import experiment as dedup_experiment
    from dedup import pipeline
    from dedup.configs import default as dedup_default

    work = str(tmp_path / "d")
    cfg = dedup_default.get_config("smoke")
    app.execute(dedup_experiment, cfg, work)
    old_eps = sorted(d for d in os.listdir(work) if d.startswith("eps="))
    assert old_eps
    cfg2 = dedup_default.get_config("smoke")
    cfg2.eps = (0.05, 0.1)
    with pytest.raises(app.ConfigError, match=r"eps: is .* in the finished run"):
        app.execute(dedup_experiment, cfg2, work)
    cfg2.overwrite = True
    app.execute(dedup_experiment, cfg2, work)
    new_eps = sorted(d for d in os.listdir(work) if d.startswith("eps="))
    assert len(old_eps) == 4 and new_eps == sorted(pipeline.eps_name(e) for e in (0.05, 0.1))  # old ones removed


def test_distributed_flags_go_together():
    with pytest.raises(app.ConfigError, match="go together"):
        app.initialize_distributed(coordinator_address="127.0.0.1:1234")
    with pytest.raises(app.ConfigError, match="process_id"):
        app.initialize_distributed(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=2)
    assert app.initialize_distributed() is False


def test_execute_overwrite_and_changed_config(tmp_path):
    cfg = fake_config.get_config()
    cfg.num_steps = 40
    workdir = str(tmp_path / "w")
    r1 = app.execute(fake_experiment, cfg, workdir)
    # Same config: reported, not redone.
    assert app.execute(fake_experiment, cfg, workdir) == r1
    # An unfinished run with a different config is refused, naming the key.
    os.unlink(os.path.join(workdir, "results.json"))
    cfg2 = fake_config.get_config()
    cfg2.num_steps, cfg2.lr = 40, 0.01
    with pytest.raises(app.ConfigError, match="lr"):
        app.execute(fake_experiment, cfg2, workdir)
    cfg2.overwrite = True
    r2 = app.execute(fake_experiment, cfg2, workdir)
    assert r2["params"] != r1["params"]
    assert json.loads(open(os.path.join(workdir, "config.json")).read())["lr"] == 0.01


def test_config_name_and_validate_common():
    assert app.config_name("icl/configs/default.py:smoke") == "default_smoke"
    assert app.config_name("icl/configs/paper.py") == "paper"
    cfg = fake_config.get_config()
    del cfg["seed"]
    with pytest.raises(app.ConfigError, match="seed"):
        app.validate_common(cfg)


_DEVICES_SCRIPT = """
import os, jax
from common import app
set_to = app.use_cores_as_devices()
print(set_to, jax.device_count(), len(os.sched_getaffinity(0)))
"""


def test_cores_as_devices_on_a_cpu_host():
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    env.pop("JAX_NUM_CPU_DEVICES", None)
    out = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
    set_to, devices, cores = out.stdout.split()
    assert set_to == cores and int(devices) == int(cores)


def test_cores_as_devices_keeps_the_users_count():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=3", JAX_PLATFORMS="cpu")
    env.pop("JAX_NUM_CPU_DEVICES", None)
    out = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
    set_to, devices, _ = out.stdout.split()
    assert set_to == "None" and devices == "3"


def test_writer_check_does_not_start_the_backend():
    """is_writer() (called by execute before the experiment runs) leaves JAX's backend unstarted."""
    code = (
        "import jax\n"
        "from common import app\n"
        "assert app.is_writer()\n"
        "jax.config.update('jax_num_cpu_devices', 3)  # raises once the backend is up\n"
        "assert jax.device_count() == 3\n"
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    env.pop("JAX_NUM_CPU_DEVICES", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_only_process_0_writes_metrics(tmp_path, monkeypatch):
    from common import metrics

    monkeypatch.setattr(metrics, "process_index", lambda: 1)
    path = tmp_path / "m" / "metrics.jsonl"
    with metrics.MetricWriter(str(path)) as w:
        w.write(10, loss=1.0)
        w.truncate_after(5)
    assert not path.exists() and not path.parent.exists()
    monkeypatch.setattr(metrics, "process_index", lambda: 0)
    with metrics.MetricWriter(str(path)) as w:
        w.write(10, loss=1.0)
    assert json.loads(path.read_text())["loss"] == 1.0
