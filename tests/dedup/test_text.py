"""The text path with the packaged offline MiniLM (the [dedup] extra); skipped cleanly without it."""

import numpy as np
import pytest

from common import app
from dedup import experiment, text
from dedup.configs import default

needs_extra = pytest.mark.skipif(
    not text.extra_available(), reason="the [dedup] extra (torch, sentence-transformers) is not installed"
)


def test_builtin_set_and_labels_are_consistent():
    lines = text.read_lines(text.builtin_path())
    labels = text.builtin_groups(len(lines))
    assert len(lines) == 94 and all(line.strip() for line in lines)
    _, sizes = np.unique(labels[labels >= 0], return_counts=True)
    assert sizes.min() >= 2 and (sizes - 1).sum() == 35


@needs_extra
@pytest.mark.slow
def test_text_demo_finds_the_paraphrases(tmp_path):
    r = app.execute(experiment, default.get_config("text"), str(tmp_path / "t"))
    assert r["n_items"] == 94
    # MiniLM paraphrase similarities are 0.76-0.97 here; at ε = 0.25 no unrelated pair is removed
    assert r["precision"] == 1.0 and r["recall"] >= 0.8
    assert r["examples"] and all(ex["similarity"] > 0.75 for ex in r["examples"])


@needs_extra
@pytest.mark.slow
def test_embeddings_are_unit_and_semantic():
    model = text.load_model()
    out = np.zeros((3, text.EMBED_DIM), np.float32)
    text.embed(["The cat sat on the mat.", "A cat was sitting on the mat.", "Stocks fell sharply."], out, model=model)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert out[0] @ out[1] > 0.8 > 0.3 > out[0] @ out[2]
