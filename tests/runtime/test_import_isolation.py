"""``import mmexport.runtime`` needs numpy and onnxruntime only: torch and click must not be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_runtime_imports_and_runs_without_torch_and_click(tmp_path, tiny_path):
    blockers = tmp_path / "blockers"
    blockers.mkdir()
    for name in ("torch", "click", "onnx", "onnxscript"):
        (blockers / f"{name}.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(blockers)!r})
        import numpy as np
        import mmexport.runtime
        from mmexport.runtime import Session
        s = Session({str(tiny_path)!r})
        out = s.run({{"image": np.zeros((1, 3, 4, 4), np.float32), "tokens": np.ones((1, 3), np.int64)}})
        assert out["logits"].tolist() == [[0.0, 0.0, 0.0, 3.0]], out
        import mmexport.bench
        assert not {{"torch", "click", "onnx"}} & set(sys.modules), sorted(sys.modules)
        print("ok")
        """
    )
    src = Path(__file__).resolve().parents[2] / "src"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
