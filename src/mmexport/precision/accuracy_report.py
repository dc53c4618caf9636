"""The accuracy report: agreement per output of each variant with the reference, task accuracy,
its warnings, and its JSON and Markdown forms."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class OutputAgreement:
    """How one output of a variant agrees with the reference's."""

    output: str
    max_abs: float
    max_rel: float  # max |diff| / max |reference|
    cosine_mean: float  # per sample, averaged
    cosine_min: float
    top1: float | None  # share of samples with the same argmax (classifier outputs)


@dataclass
class VariantAccuracy:
    name: str
    precision: str
    accuracy: float | None  # task accuracy when the data has labels
    outputs: list[OutputAgreement] = field(default_factory=list)  # empty for the reference

    def worst_cosine(self) -> float:
        return min((o.cosine_min for o in self.outputs), default=1.0)

    def agreement(self) -> float | None:
        values = [o.top1 for o in self.outputs if o.top1 is not None]
        return min(values) if values else None


@dataclass
class AccuracyReport:
    source: str
    samples: int
    labelled: bool
    variants: list[VariantAccuracy]
    reference_nonfinite: int = 0  # samples where the reference itself gave NaN or inf
    reference_classes: int | None = None  # distinct top-1 classes the reference predicted

    def warnings(self) -> list[str]:
        """What makes these figures say little about the model."""
        out = []
        if self.reference_classes == 1 and self.samples > 1:
            out.append(
                f"the reference predicts the same class for all {self.samples} samples: agreement and "
                "accuracy figures say little (untrained weights, or data unlike what the model expects?)"
            )
        return out

    @property
    def reference(self) -> VariantAccuracy:
        return self.variants[0]

    def drop(self, variant: VariantAccuracy) -> float | None:
        """Points lost against the reference: task accuracy if labelled, else top-1 disagreement."""
        if self.labelled and variant.accuracy is not None and self.reference.accuracy is not None:
            return 100.0 * (self.reference.accuracy - variant.accuracy)
        agreement = variant.agreement()
        return None if agreement is None else 100.0 * (1.0 - agreement)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "samples": self.samples,
            "labelled": self.labelled,
            "reference": self.reference.name,
            "reference_nonfinite_samples": self.reference_nonfinite,
            "reference_classes": self.reference_classes,
            "warnings": self.warnings(),
            "variants": [{**asdict(v), "drop_points": self.drop(v)} for v in self.variants],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=True)

    def to_markdown(self) -> str:
        lines = [
            f"Accuracy on {self.source}: {self.samples} samples evaluated; reference: {self.reference.name}",
            "",
            "| model | precision | task accuracy | drop (points) | top-1 agreement | min cosine "
            "| max abs diff | max rel diff |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v in self.variants:
            outputs = v.outputs
            lines.append(
                f"| {v.name} | {v.precision} | {_pct(v.accuracy)} | {_num(self.drop(v), '.2f')} "
                f"| {_pct(v.agreement())} | {_num(v.worst_cosine() if outputs else None, '.5f')} "
                f"| {_num(max((o.max_abs for o in outputs), default=None), '.3g')} "
                f"| {_num(max((o.max_rel for o in outputs), default=None), '.3g')} |"
            )
        lines += [f"\nwarning: {w}" for w in self.warnings()]
        return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)
