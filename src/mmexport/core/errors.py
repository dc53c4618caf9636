"""The errors a user can meet: one root, subclasses with structured fields.

Library code raises these; the CLI prints ``str(error)`` as one line and exits non-zero.
Bugs stay ordinary exceptions (and show a traceback).
"""

from __future__ import annotations

from typing import Any


class MmexportError(Exception):
    """Root of every error caused by user input, files or the environment."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class SpecError(MmexportError):
    """A ModelSpec that is malformed or contradicts itself or the model."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.where = where
        super().__init__(f"spec {where}: {message}" if where else f"spec: {message}", hint=hint)


class ModelLoadError(MmexportError):
    """A model reference (built-in name, ``module:factory``, ``file.py:factory``) that cannot be loaded."""

    def __init__(self, reference: str, message: str, *, hint: str | None = None) -> None:
        self.reference = reference
        super().__init__(f"model {reference!r}: {message}", hint=hint)


class ExportError(MmexportError):
    """torch.onnx could not export the model, or the exported graph breaks the spec."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"export failed: {message}", hint=hint)


class FrozenDimError(ExportError):
    """A dim the spec declares dynamic came out as a fixed number in the exported graph."""

    def __init__(self, input_name: str, axis: int, dim: str, value: int) -> None:
        self.input_name = input_name
        self.axis = axis
        self.dim = dim
        self.value = value
        super().__init__(
            f"dim {dim!r} (input {input_name!r}, axis {axis}) is dynamic in the spec "
            f"but the exported graph fixed it to {value}",
            hint="the model's code specializes on this size; make it size-independent, "
            "or declare the dim static (min = opt = max)",
        )


class ParityError(MmexportError):
    """The exported graph computes something else than the PyTorch model."""

    def __init__(self, message: str, *, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class ArtifactError(MmexportError):
    """An artifact or its manifest that is missing, unreadable or inconsistent."""

    def __init__(self, path: str, message: str, *, hint: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}", hint=hint)


class MissingDependencyError(MmexportError):
    """An optional dependency that this operation needs is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the Python package {package!r}, which is not installed",
            hint=f"pip install 'mmexport[{extra}]'",
        )


class InputError(MmexportError):
    """A feed that breaks the spec: a missing or unknown input, a wrong type, dtype, rank or dim.

    ``input`` names the input; ``dim`` the named dim (or the axis as ``"axis N"`` for a fixed one);
    ``expected`` and ``actual`` the values compared, for code that reacts to the failure.
    """

    def __init__(
        self,
        input: str | None,
        message: str,
        *,
        dim: str | None = None,
        axis: int | None = None,
        expected: Any = None,
        actual: Any = None,
        hint: str | None = None,
    ) -> None:
        self.input = input
        self.dim = dim
        self.axis = axis
        self.expected = expected
        self.actual = actual
        super().__init__(f"input {input!r}: {message}" if input is not None else message, hint=hint)


class BackendError(MmexportError):
    """A runtime backend or execution provider that is unknown, unavailable, or fails to run."""

    def __init__(self, backend: str, message: str, *, hint: str | None = None) -> None:
        self.backend = backend
        super().__init__(f"{backend}: {message}", hint=hint)


class DataError(MmexportError):
    """Calibration or evaluation data that cannot be read or does not fit the spec.

    ``sample`` names the sample (or batch, or file) and ``field`` the input (or ``"label"``) at
    fault; either is None when the error concerns the whole source.
    """

    def __init__(
        self, message: str, *, sample: str | None = None, field: str | None = None, hint: str | None = None
    ) -> None:
        self.sample = sample
        self.field = field
        where = []
        if sample is not None:
            where.append(f"sample {sample!r}")
        if field is not None:
            where.append("label" if field == "label" else f"input {field!r}")
        super().__init__(f"{' '.join(where) or 'data'}: {message}", hint=hint)


class PrecisionError(MmexportError):
    """A reduced-precision variant that fails its check against the FP32 model; nothing is written.

    ``report`` is the :class:`mmexport.precision.accuracy.AccuracyReport` that failed.
    """

    def __init__(self, message: str, *, report: object = None, hint: str | None = None) -> None:
        self.report = report
        super().__init__(message, hint=hint)


class CheckError(MmexportError):
    """An ONNX graph that TensorRT's parser or the target would refuse (``mmexport check``).

    ``report`` is the :class:`mmexport.trt.check.CheckReport` with every finding; ``target`` the
    target name it was checked for.
    """

    def __init__(self, message: str, *, report: object = None, target: str | None = None) -> None:
        self.report = report
        self.target = target
        super().__init__(message, hint="`mmexport check MODEL --target NAME` lists every finding")


class EngineBuildError(MmexportError):
    """TensorRT could not parse the ONNX or build the engine, or the build options contradict the
    target or the TensorRT version; no engine was written.

    ``problems`` lists what TensorRT reported (parser errors with node names and ops, its log).
    """

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None) -> None:
        self.problems = list(problems or [])
        shown = "; ".join(self.problems[:5]) + (" ..." if len(self.problems) > 5 else "")
        super().__init__(f"{message}: {shown}" if shown else message, hint=hint)


class ConfigError(MmexportError):
    """A config value out of range or contradicting another; ``fields`` names the config fields
    at fault, as the message does (the CLI shows them as its flags)."""

    def __init__(self, message: str, *, fields: tuple[str, ...] = (), hint: str | None = None) -> None:
        self.fields = fields
        super().__init__(message, hint=hint)
