from __future__ import annotations

import csv
import io

import pytest

from mmexport.core.errors import MissingDependencyError


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


def test_trtexec_lines_only_for_tensorrt_targets_unless_asked(report):
    """CPU onnxruntime has no GPU Compute Time to compare with: its lines stay in JSON only."""
    assert all(r.trtexec for r in report.results)  # ONNX files: trtexec lines are computed
    assert "Cross-check with trtexec" not in report.to_text()
    assert "trtexec --onnx=" in report.to_text(trtexec=True)
    assert all("trtexec" in r for r in report.to_dict()["results"])
    target = report.targets[1]
    saved = dict(target.backend)
    try:
        target.backend["provider"] = "TensorrtExecutionProvider"
        lines = [line for line in report.to_text().splitlines() if "trtexec --" in line]
        assert lines and all(f"/ {target.label}]" in line for line in lines)
    finally:
        target.backend.clear()
        target.backend.update(saved)


def test_plot_on_matplotlib_before_3_9_uses_labels(report, tmp_path, monkeypatch):
    """matplotlib 3.7 and 3.8 (allowed by the plot extra) refuse boxplot(tick_labels=...)."""
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    real = Axes.boxplot
    seen = []

    def boxplot_3_8(self, data, *args, labels=None, **kwargs):
        if "tick_labels" in kwargs:
            raise TypeError("boxplot() got an unexpected keyword argument 'tick_labels'")
        seen.append(labels)
        return real(self, data, *args, tick_labels=labels, **kwargs)

    monkeypatch.setattr(matplotlib, "__version__", "3.8.4")
    monkeypatch.setattr(Axes, "boxplot", boxplot_3_8)
    path = report.plot(tmp_path / "old.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert seen and seen[0] == [t.label for t in report.targets]


def test_matplotlib_versions_are_compared_as_numbers():
    from mmexport.bench.plot import _version

    assert _version("3.10.0") > _version("3.9") > _version("3.8.4") and _version("3.9.0rc1") == (3, 9)
