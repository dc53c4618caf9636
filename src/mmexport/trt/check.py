"""Lint an ONNX graph for a TensorRT target without TensorRT: what its parser or DLA would refuse.

The rules (in ``check_rules``) read onnx-tensorrt's published operator matrix for the target's
TensorRT release (``opsupport``), so a problem shows up before an export, calibration or engine build
is spent on it. A clean report is no guarantee: only TensorRT's parser and builder decide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from mmexport.core.errors import CheckError
from mmexport.core.onnx_file import read_onnx
from mmexport.runtime.backends.tensorrt.api import parse_version
from mmexport.trt import check_rules
from mmexport.trt.check_rules import Finding, Level
from mmexport.trt.opsupport import matrix_for, upper_matrix
from mmexport.trt.targets import Target

__all__ = ["CheckReport", "Finding", "check_onnx"]

if TYPE_CHECKING:
    from mmexport.core.spec import ModelSpec

LEVELS: tuple[Level, ...] = ("error", "warning", "info")


@dataclass
class CheckReport:
    """Every finding for one model and target, errors first; ``ok`` when there is no error."""

    target: str
    tensorrt_version: str
    matrix: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return (
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s) for target {self.target} "
            f"(TensorRT {self.tensorrt_version}, onnx-tensorrt matrix {self.matrix})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "tensorrt_version": self.tensorrt_version,
            "matrix": self.matrix,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [asdict(f) for f in self.findings],
        }

    def to_text(self) -> str:
        return "\n".join([*(f.to_text() for f in self.findings), self.summary()])

    def raise_for_errors(self) -> None:
        """CheckError naming the first error, when there is one."""
        if self.errors:
            first = self.errors[0]
            raise CheckError(
                f"TensorRT check failed: {self.summary()}; first: {first.to_text()}",
                report=self,
                target=self.target,
            )


def check_onnx(
    model: onnx.ModelProto | str | Path,
    target: Target,
    *,
    spec: ModelSpec | None = None,
    tensorrt_version: str | None = None,
) -> CheckReport:
    """Check ``model`` for ``target`` (TensorRT ``tensorrt_version``, default: the target's first).

    ``spec`` gives the dims' ranges (DLA needs static shapes); without it the graph's symbolic
    dims are taken as dynamic. Never raises for findings: call ``raise_for_errors`` for that.
    """
    proto = _load(model)
    version = tensorrt_version or target.tensorrt[0]
    matrix, approximation = matrix_for(version)
    report = CheckReport(target=target.name, tensorrt_version=version, matrix=matrix.tensorrt)
    upper = upper_matrix(version) if approximation else None
    context = check_rules.Context.of(proto, matrix, target, spec, parse_version(version), upper)
    findings = list(check_rules.run_all(context))
    if approximation:
        findings.append(Finding("info", "matrix-approximate", None, None, approximation))
    order = {level: i for i, level in enumerate(LEVELS)}
    report.findings = sorted(findings, key=lambda f: order[f.level])
    return report


def _load(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    return read_onnx(model, external_data=False)
