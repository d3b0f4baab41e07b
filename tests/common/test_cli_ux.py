"""What a researcher meets first on the command line: --help, one-line errors, the workdir check, Ctrl-C, the
non-finite stop in log.txt, provenance, and the persistent compilation cache. Every CLI check runs a subprocess."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from common import app

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE = ["-m", "tests.common.fake_main"]


def _env(**extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def run_cli(*args, cwd=ROOT, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env or _env(), timeout=timeout
    )


def last_line(proc) -> str:
    return proc.stderr.strip().splitlines()[-1]


def test_help_lists_fields_values_and_comments_and_exits_0():
    for flag in ("--help", "-h"):
        proc = run_cli(*FAKE, flag, "--config=tests/common/fake_config.py", "--config.lr=0.25")
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert "lr = 0.25" in out  # the value after the override
        assert "num_steps = 200" in out
        # the comment on the config file's line, beside its field
        line = next(ln for ln in out.splitlines() if "nan_step = -1" in ln)
        assert "# >= 0: the inputs become NaN from this step on" in line
        assert "Config for tests/common/fake_experiment.py." in out  # the file's docstring
        assert "--workdir" in out and "Unknown command line flag" not in proc.stderr


def test_help_without_config_shows_the_default_config():
    proc = run_cli("-m", "icl.main", "-h")
    assert proc.returncode == 0, proc.stderr
    assert "config fields of icl/configs/default.py" in proc.stdout
    from icl.configs import default

    value = default.get_config().train.chunk_steps
    line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith(f"train.chunk_steps = {value}"))
    assert "  # " in line  # the config file's comment on that field


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--config=icl/configs/default.py:smoke", "--config.train.num_stepz=10"],
            "config error: train.num_stepz: no such field in icl/configs/default.py:smoke "
            "(did you mean train.num_steps or train.chunk_steps?)",
        ),
        (
            ["--config=icl/configs/default.py:smok"],
            "config error: --config=icl/configs/default.py:smok: unknown variant 'smok' "
            "(expected default, smoke, crossing, regularisation or dims)",
        ),
        (
            ["--config=icl/configs/default.py:smoke", "--config.train.num_steps=abc"],
            "config error: train.num_steps: cannot read 'abc' as an integer (the config has 200)",
        ),
    ],
)
def test_config_errors_are_one_plain_line(tmp_path, args, expected):
    proc = run_cli("-m", "icl.main", *args, f"--workdir={tmp_path / 'w'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "w").exists()


def test_relative_config_resolves_from_another_directory(tmp_path):
    """From a directory that is not the project root, `--config=tests/common/fake_config.py` still loads: the
    error is the config's own (lr), not a failed load."""
    proc = run_cli(*FAKE, "--config=tests/common/fake_config.py", "--config.lr=-1", cwd=tmp_path)
    assert proc.returncode == 2
    assert last_line(proc) == "config error: lr: must be positive, got -1.0"
    proc = run_cli(*FAKE, "--config=tests/common/missing.py", cwd=tmp_path)
    assert proc.returncode == 2
    assert last_line(proc).startswith("config error: --config=tests/common/missing.py: no such file (looked in ")


def _unwritable(tmp_path):
    """A directory this process cannot create files in (root writes anywhere chmod allows: use /sys)."""
    if os.geteuid() == 0:
        return "/sys/ganguli-jax-test"
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    return str(d / "w")


def test_workdir_checked_before_anything_runs(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    cases = [
        (str(afile), f"error: --workdir={afile}: exists and is not a directory"),
        (str(afile / "sub"), f"error: --workdir={afile / 'sub'}: {afile} is a file, not a directory"),
        (_unwritable(tmp_path), "error: --workdir="),
    ]
    for workdir, expected in cases:
        start = time.time()
        proc = run_cli(*FAKE, "--config=tests/common/fake_config.py", f"--workdir={workdir}")
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(expected), proc.stderr
        assert time.time() - start < 60
    assert afile.read_text() == "keep me"


def test_execute_refuses_a_file_as_workdir(tmp_path):
    from tests.common import fake_config, fake_experiment

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(app.WorkdirError, match="exists and is not a directory"):
        app.execute(fake_experiment, fake_config.get_config(), str(afile))


def _metric_steps(path):
    return [json.loads(x)["step"] for x in open(path).read().splitlines() if x.strip()]


def test_ctrl_c_is_one_line_exit_130_logged_and_resumable(tmp_path):
    work = tmp_path / "w"
    # 20 chunks of 0.4 s after the first row: the interrupt lands mid-run even on a loaded machine
    args = [*FAKE, "--config=tests/common/fake_config.py", f"--workdir={work}", "--config.num_steps=400"]
    # A shell that started the tests in the background ignores SIGINT and children inherit that: the child restores
    # Python's own handler before it runs the CLI (no preexec_fn: forking a threaded process can deadlock).
    restore = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = ['fake_main', *sys.argv[1:]]; runpy.run_module('tests.common.fake_main', run_name='__main__')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", restore, *args[len(FAKE) :], "--config.sleep=0.4"],
        cwd=ROOT,
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics_path = work / "metrics.jsonl"
    deadline = time.time() + 90
    while not (metrics_path.exists() and metrics_path.stat().st_size) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if not ln.startswith(("I1", "W1"))]
    assert len(lines) == 1 and lines[0].startswith("interrupted at step "), err
    assert lines[0].endswith("; run the same command to resume")
    step = int(lines[0].split()[3].rstrip(";"))
    assert step in _metric_steps(metrics_path)
    assert lines[0] in (work / "log.txt").read_text()
    assert not (work / "results.json").exists()
    # The same command resumes from the last checkpoint and finishes.
    again = run_cli(*args, "--config.sleep=0.4")
    assert again.returncode == 0, again.stderr
    assert _metric_steps(metrics_path) == list(range(20, 401, 20))
    cfg = json.loads((work / "config.json").read_text())
    assert len(cfg["resumed"]) == 1 and cfg["provenance"]["date"] <= cfg["resumed"][0]["date"]


def test_non_finite_stop_goes_to_log_txt(tmp_path):
    work = tmp_path / "w"
    proc = run_cli(*FAKE, "--config=tests/common/fake_config.py", f"--workdir={work}", "--config.nan_step=27")
    assert proc.returncode == 1
    assert last_line(proc).startswith("stopped: non-finite loss at step 27")
    assert last_line(proc) in (work / "log.txt").read_text()


def test_provenance_in_config_and_results_and_a_clean_log(tmp_path):
    work = tmp_path / "w"
    args = [*FAKE, "--config=tests/common/fake_config.py", f"--workdir={work}", "--config.num_steps=20"]
    proc = run_cli(*args, env=_env(JAX_PLATFORMS=""))
    assert proc.returncode == 0, proc.stderr
    # No warning and no TPU probe on a clean CPU run: only absl INFO lines.
    assert [ln for ln in proc.stderr.splitlines() if not ln.startswith("I1")] == [], proc.stderr
    assert "Unable to initialize backend" not in proc.stderr
    cfg = json.loads((work / "config.json").read_text())
    res = json.loads((work / "results.json").read_text())
    for prov in (cfg["provenance"], res["provenance"]):
        assert prov["argv"][:3] == ["python", "-m", "tests.common.fake_main"]
        assert "--config.num_steps=20" in prov["argv"]
        assert set(prov["versions"]) >= {"jax", "jaxlib", "flax", "optax"}
        assert all(prov["versions"][k] for k in ("jax", "jaxlib", "flax", "optax"))
        assert prov["devices"]["platform"] == "cpu" and prov["devices"]["count"] >= 1
        assert len(prov["commit"] or "") == 40 and isinstance(prov["dirty"], bool)
        assert prov["date"].startswith("20")
    # Provenance never makes the same config look like another one: reported, not refused.
    again = run_cli(*args)
    assert again.returncode == 0 and "not redone" in again.stderr


def test_provenance_names_the_commit_in_a_git_worktree(monkeypatch, tmp_path):
    """In a worktree (or a submodule) .git is a file, not a folder: the commit is still recorded."""

    def git(*a, cwd=tmp_path / "repo"):
        subprocess.run(["git", *a], cwd=cwd, check=True, capture_output=True)

    (tmp_path / "repo").mkdir()
    git("init", "-q")
    (tmp_path / "repo" / "f.txt").write_text("x")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    git("worktree", "add", "-q", str(tmp_path / "wt"))
    assert os.path.isfile(tmp_path / "wt" / ".git")
    monkeypatch.setattr(app, "ROOT", str(tmp_path / "wt"))
    prov = app.provenance()
    assert len(prov["commit"] or "") == 40 and prov["dirty"] is False


def test_compilation_cache_dir_and_switches(monkeypatch, tmp_path):
    monkeypatch.delenv(app.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert app.compilation_cache_dir() == str(tmp_path / "xdg" / "ganguli-jax" / "jax")
    monkeypatch.setenv(app.CACHE_ENV, str(tmp_path / "mine"))
    assert app.compilation_cache_dir() == str(tmp_path / "mine")
    for off in ("off", "0", ""):
        monkeypatch.setenv(app.CACHE_ENV, off)
        assert app.compilation_cache_dir() is None
    assert app.enable_compilation_cache(distributed=True) is None


_CACHE_SCRIPT = """
import os, jax, jax.numpy as jnp
from common import app
print(app.enable_compilation_cache())
jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((64, 64))).block_until_ready()
"""


def test_cli_cache_is_written_and_can_be_moved(tmp_path):
    env = _env(**{app.CACHE_ENV: str(tmp_path / "c"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = run_cli("-c", _CACHE_SCRIPT, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == str(tmp_path / "c")
    assert any(name.startswith("jit_") for name in os.listdir(tmp_path / "c"))
    env[app.CACHE_ENV] = "off"
    out = run_cli("-c", _CACHE_SCRIPT, env=env)
    assert out.stdout.split()[-1] == "None"


def test_config_comments_reads_inline_and_block_comments_in_file_order(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text(
        '"""The doc."""\n'
        "import ml_collections\n\n\n"
        "def get_config(arg=None):\n"
        "    c = ml_collections.ConfigDict()\n"
        "    c.zeta = 1  # last letter, first field\n"
        "    # two lines\n"
        "    # above\n"
        "    c.alpha = 2\n"
        "    c.both = 3  # inline\n"
        "    c.sub = ml_collections.ConfigDict()\n"
        "    c.sub.x = '# not a comment'\n"
        "    if arg == 'v':\n"
        "        c.zeta = 5  # the variant's comment loses to the first\n"
        "    return c\n"
    )
    doc, comments = app.config_comments(str(path))
    assert doc == "The doc."
    assert list(comments) == ["zeta", "alpha", "both", "sub", "sub.x"]
    assert comments == {
        "zeta": "last letter, first field",
        "alpha": "two lines above",
        "both": "inline",
        "sub": "",
        "sub.x": "",
    }
