"""tools/reliability_report.py: what it reads from pytest and how it renders RELIABILITY.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "reliability_report.py"

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.reliability.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.reliability.test_a" name="test_bad" time="0.1">
  <failure message="AssertionError: a corrupt artifact passes for valid">trace</failure></testcase>
<testcase classname="tests.reliability.test_b" name="test_gap" time="0.1">
  <skipped type="pytest.xfail" message="reason: archive.py: a temp file stays"/></testcase>
<testcase classname="tests.reliability.test_b" name="test_skip" time="0.1">
  <skipped type="pytest.skip" message="no /proc"/></testcase>
</testsuite></testsuites>
"""


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reliability_report", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_junit_counts_failures_gaps_and_skips(tool: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text(JUNIT)
    results = tool.read_junit(tmp_path / "junit.xml")
    assert results["counts"] == {"passed": 1, "failed": 1, "xfailed": 1, "skipped": 1}
    assert results["failures"] == ["test_a.py::test_bad: AssertionError: a corrupt artifact passes for valid"]
    assert results["gaps"] == ["test_b.py::test_gap: archive.py: a temp file stays"]


def test_render_states_the_figures_and_the_command(tool: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text(JUNIT)
    stats = {
        "outcomes": [
            {"area": "feeds/tiny", "outcome": "InputError", "count": 30},
            {"area": "SIGKILL/fp16", "outcome": "in-staging: previous artifacts kept", "count": 2},
            {"area": "damaged onnx on the command line/empty", "outcome": "fp16: exit 1", "count": 1},
        ],
        "figures": {"soak/tiny": {"calls": 10000, "rss_before_mib": 90.0, "growth_kib": 16, "bound_mib": 16}},
    }
    text = tool.render(tool.read_junit(tmp_path / "junit.xml"), stats, tool.machine(), 12.0, True)
    assert "`python tools/reliability_report.py`" in text and "(full part)" in text
    assert "- cases tried: 30; faults injected: 3" in text
    assert "RSS grew 16 KiB over 10,000 calls" in text
    assert "| SIGKILL/fp16 | in-staging: previous artifacts kept | 2 |" in text
    assert "### Damaged ONNX files on the command line" in text  # the longest matching section
    assert "**Failures:**" in text and "archive.py: a temp file stays" in text
