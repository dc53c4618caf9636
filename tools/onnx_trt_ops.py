"""Regenerate ``src/mmexport/trt/data/onnx_trt_ops.json`` from onnx-tensorrt's ``docs/operators.md``.

    python tools/onnx_trt_ops.py path/to/onnx-tensorrt/docs/operators.md

The newest published matrix is taken as is. Older TensorRT releases (10.3: JetPack 6) are derived
from it by removing the operators and lifting the restrictions that onnx-tensorrt's
``docs/Changelog.md`` says arrived later (``ADDED_AFTER`` / ``RESTRICTED_BEFORE`` below, each with the
release that changed it), because the repository keeps only the newest ``operators.md`` on its main
branch. Update those tables when a new release is added.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "src/mmexport/trt/data/onnx_trt_ops.json"
SOURCE = "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md"
CHANGELOG = "https://github.com/onnx/onnx-tensorrt/blob/main/docs/Changelog.md"
HEADER = re.compile(
    r"TensorRT\s+([0-9.]+)\s+supports operators in the inclusive range of opset\s+(\d+)\s+to opset\s+(\d+)"
)

# operator -> the TensorRT release whose onnx-tensorrt Changelog entry added it
ADDED_AFTER = {
    "BlackmanWindow": "10.4",
    "HammingWindow": "10.4",
    "HannWindow": "10.4",
    "STFT": "10.5",
    "Attention": "10.14",
    "RotaryEmbedding": "10.15",
    "RMSNormalization": "10.15",
    "TensorScatter": "10.15",
}
# operator -> (release that relaxed it, the restriction that applied before; replaces the newer text)
RESTRICTED_BEFORE = {
    "Einsum": ("10.12", "Ellipsis, diagonal and broadcasting between inputs are not supported"),
    "Squeeze": ("10.7", "`axes` must be an initializer"),
    "Unsqueeze": ("10.7", "`axes` must be an initializer"),
    "CumSum": ("10.8", "`axis` must be an initializer"),
    "Pad": ("10.4", "`axes` must be an initializer"),
    "Pow": ("10.8", "integer exponents unsupported"),
}
# (release, opset_min, opset_max, where the range comes from) for the derived matrices
DERIVED = [
    ("10.3", 9, 20, "TensorRT 10.0's published range (opset 9-20); 10.3 assumed the same (unverified)"),
]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def parse_operators_md(text: str) -> dict[str, Any]:
    """One matrix: the TensorRT release, its opset range and one entry per operator row."""
    header = HEADER.search(text)
    if header is None:
        raise SystemExit("no 'TensorRT X supports operators in the inclusive range of opset A to B' line")
    ops: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[1] not in ("Y", "N") or cells[0] in ("Operator", ""):
            continue
        types = [t.strip() for t in cells[2].split(",") if t.strip()] if len(cells) > 2 else []
        restrictions = cells[3].replace("<br />", " ").strip() if len(cells) > 3 else ""
        ops[cells[0]] = {"supported": cells[1] == "Y", "types": types, "restrictions": restrictions}
    return {
        "tensorrt": header.group(1),
        "opset_min": int(header.group(2)),
        "opset_max": int(header.group(3)),
        "source": SOURCE,
        "derived_from": None,
        "ops": ops,
    }


def derive(newest: dict[str, Any], release: str, opset_min: int, opset_max: int, why: str) -> dict[str, Any]:
    """An older release's matrix: the newest minus later additions, with earlier restrictions."""
    ops = {}
    for name, entry in newest["ops"].items():
        added = ADDED_AFTER.get(name)
        if added is not None and _version(added) > _version(release):
            ops[name] = {"supported": False, "types": [], "restrictions": f"added in TensorRT {added}"}
            continue
        entry = dict(entry)
        lifted = RESTRICTED_BEFORE.get(name)
        if lifted is not None and _version(lifted[0]) > _version(release):
            entry["restrictions"] = lifted[1]  # the later text only relaxes it
        ops[name] = entry
    return {
        "tensorrt": release,
        "opset_min": opset_min,
        "opset_max": opset_max,
        "source": CHANGELOG,
        "derived_from": f"{newest['tensorrt']} matrix minus changes listed in the Changelog; opsets: {why}",
        "ops": ops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("operators_md", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    newest = parse_operators_md(args.operators_md.read_text())
    matrices = [newest] + [derive(newest, *d) for d in DERIVED]
    data = {
        "about": "onnx-tensorrt's operator support matrix per TensorRT release, newest first",
        "added_in": ADDED_AFTER,
        "matrices": matrices,
    }
    args.output.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.output}: " + ", ".join(f"{m['tensorrt']} ({len(m['ops'])} ops)" for m in matrices))


if __name__ == "__main__":
    main()
