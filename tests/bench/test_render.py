from __future__ import annotations

import csv
import io

import pytest

from mmexport.errors import MissingDependencyError


def test_text_table(report):
    text = report.to_text()
    header = text.splitlines()[0].split()
    assert header[:7] == ["case", "target", "p50", "p90", "p95", "p99", "max"]
    assert "opt batch 4" in text and "b.onnx" in text and "interleaved" in text


def test_markdown_with_extra_columns(report):
    md = report.to_markdown(extra_columns={"accuracy": {"a.onnx": 0.9931, "b.onnx": 0.9875}})
    lines = md.splitlines()
    assert lines[0].startswith("| case | target | shapes | accuracy | p50 ms |")
    assert lines[1].count("---") == lines[0].count("|") - 1
    assert "| 0.9931 |" in md and "| 0.9875 |" in md
    assert "(load)" in md and "(shape change)" in md


def test_csv(report):
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert len(rows) == len(report.results)
    assert {"case", "target", "p50", "p99", "calls_per_s", "samples_per_s", "speedup_p50"} <= set(rows[0])
    assert float(rows[0]["speedup_p50"]) == 1.0


def test_plot_writes_a_png(report, tmp_path):
    pytest.importorskip("matplotlib")
    path = report.plot(tmp_path / "sub" / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_names_the_extra(report, tmp_path, no_matplotlib):
    with pytest.raises(MissingDependencyError) as info:
        report.plot(tmp_path / "bench.png")
    assert "pip install 'mmexport[plot]'" in str(info.value)
