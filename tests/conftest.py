"""Test setup shared by every package: JAX sees 4 fake CPU devices, so sweeps really shard; compiled programs are kept
in JAX's persistent compilation cache (the same one the CLI uses, see common.app.enable_compilation_cache), so a
second `make test` loads the programs the first one compiled; no TensorBoard event files."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("GANGULI_JAX_TENSORBOARD", "off")

import jax  # noqa: E402

from common import app  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
# In-process tests use the cache here; the CLI subprocesses the tests start turn it on themselves (common.app.run).
app.enable_compilation_cache()
