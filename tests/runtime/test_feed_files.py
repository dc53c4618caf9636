from __future__ import annotations

import numpy as np
import pytest

from mmexport.core.errors import DataError
from mmexport.core.spec import OutputSpec
from mmexport.data.feed_files import read_feeds, summarize_outputs, top_k


def test_top_k_uses_softmax_for_logits_and_keeps_probabilities():
    logits = np.array([[2.0, 0.0, 1.0]])
    best = top_k(logits, ["a", "b", "c"], 2)[0]
    assert [b["label"] for b in best] == ["a", "c"]
    assert best[0]["probability"] == pytest.approx(np.exp(2) / np.exp([2, 0, 1]).sum())
    probs = np.array([[0.2, 0.7, 0.1]])
    assert top_k(probs, ["a", "b", "c"], 1)[0][0] == {"label": "b", "score": 0.7, "probability": 0.7}


def test_summary_has_top_k_only_where_labels_fit():
    outputs = {"logits": np.zeros((1, 3), np.float32), "embedding": np.zeros((1, 5), np.float32)}
    specs = [OutputSpec("logits", labels=("a", "b", "c")), OutputSpec("embedding", labels=("x",))]
    summary = summarize_outputs(outputs, specs)
    assert "top_k" in summary["logits"] and "top_k" not in summary["embedding"]


def test_npz_without_the_input(session, tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros(1), b=np.zeros(1))
    with pytest.raises(DataError, match="holds a, b, not 'image'"):
        read_feeds([("image", tmp_path / "two.npz")], session.spec)


def test_raw_files_go_through_preprocess(session, tmp_path):
    """Image / text / wav files are the preprocess module's job; without a preprocess, its error."""
    pytest.importorskip("mmexport.data.preprocess")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="preprocess"):
        read_feeds([("image", tmp_path / "x.png")], session.spec)
