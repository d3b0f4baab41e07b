"""The pipeline's resumable building blocks: a stage folder keyed on its settings (`StageDir`) and arrays filled
batch by batch that continue after a kill (`ResumableArrays`). See dedup/pipeline.py for the stages."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from common import app, metrics


def _file_digest(path: str, chunk: int = 1 << 24) -> str:
    """sha256 of a file's content (the cache key of an input: a copy or a touched file is the same
    input, an edited one is not)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class StageDir:
    """A stage's folder keyed by its settings: manifest (settings and their hash), the done marker,
    and a refusal to reuse outputs made with other settings."""

    def __init__(self, root: str, name: str, key: dict):
        self.dir = os.path.join(root, name)
        self.name = name
        self.key = dict(key)
        self.hash = _key_hash(self.key)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def open(self) -> None:
        """Creates the folder and manifest, or checks that an existing one was made with the same
        settings."""
        mpath = self.path("manifest.json")
        if os.path.exists(mpath):
            old = metrics.read_json(mpath)
            if old.get("hash") != self.hash:
                diff = sorted(
                    k for k in set(old.get("key", {})) | set(self.key) if old.get("key", {}).get(k) != self.key.get(k)
                )
                raise app.UserError(
                    f"{self.dir} was made with different settings ({', '.join(diff) or 'inputs'}); "
                    f"use another pipeline_dir or remove it"
                )
            return
        os.makedirs(self.dir, exist_ok=True)
        metrics.atomic_write_json(mpath, {"stage": self.name, "hash": self.hash, "key": self.key})

    def check(self) -> None:
        """Raises UserError when the folder exists with other settings (and does not create it)."""
        if os.path.exists(self.path("manifest.json")):
            self.open()

    def done(self) -> bool:
        p = self.path("done.json")
        return os.path.exists(p) and metrics.read_json(p).get("hash") == self.hash

    def finish(self, info: dict) -> None:
        metrics.atomic_write_json(self.path("done.json"), {"hash": self.hash, **info})

    def info(self) -> dict:
        return metrics.read_json(self.path("done.json"))


class ResumableArrays:
    """Arrays filled batch by batch and resumable after a kill: `<name>.partial.npy` memmaps, a
    `<tag>.progress.json` rewritten atomically after each flushed batch, renamed into place when complete."""

    def __init__(self, stage: StageDir, tag: str, specs: dict[str, tuple[tuple[int, ...], str]]):
        self.stage, self.tag, self.specs = stage, tag, specs
        self.progress_path = stage.path(f"{tag}.progress.json")

    def finals_exist(self) -> bool:
        return all(os.path.exists(self.stage.path(f"{n}.npy")) for n in self.specs)

    def open(self) -> tuple[dict[str, np.ndarray], int]:
        """Returns (memmaps, units already done)."""
        parts = {n: self.stage.path(f"{n}.partial.npy") for n in self.specs}
        done = 0
        if os.path.exists(self.progress_path) and all(os.path.exists(p) for p in parts.values()):
            done = int(metrics.read_json(self.progress_path)["done"])
        arrs = {}
        for n, (shape, dtype) in self.specs.items():
            if done > 0:
                arrs[n] = np.load(parts[n], mmap_mode="r+")
            else:
                arrs[n] = np.lib.format.open_memmap(parts[n], mode="w+", dtype=dtype, shape=shape)
        return arrs, done

    def mark(self, arrs: dict[str, np.ndarray], done: int) -> None:
        for a in arrs.values():
            a.flush()
        metrics.atomic_write_json(self.progress_path, {"done": int(done)})

    def complete(self, arrs: dict[str, np.ndarray]) -> None:
        for a in arrs.values():
            a.flush()
        for n in self.specs:
            os.replace(self.stage.path(f"{n}.partial.npy"), self.stage.path(f"{n}.npy"))
        if os.path.exists(self.progress_path):
            os.unlink(self.progress_path)


# former names, kept for existing callers
Stage = StageDir
PartialArrays = ResumableArrays
