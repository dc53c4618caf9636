"""What the main job is asked for, and the file names and defaults it uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = "model.onnx"
FP16_FILE = "model.fp16.onnx"
INT8_FILE = "model.int8.onnx"
REPORT_FILES = ("report.md", "report.json", "latency.png")
STAGES = ("export", "fp16", "int8", "engine", "accuracy", "bench")

DEFAULT_SAMPLES = 128
DEFAULT_EVAL_SAMPLES = 200
DEFAULT_DURATION_S = 2.0
DEFAULT_MAX_ACCURACY_DROP = 1.0  # points: the recommendation's accuracy gate


@dataclass
class PipelineConfig:
    """What ``mmexport pipeline`` was asked for; defaults keep the default model near a minute."""

    model: str | None = None  # None: the built-in default model
    output: Path = Path("report")
    spec: Path | None = None
    data: str | None = None  # calibration and FP16-scan data; None: synthetic (built-ins)
    eval_data: str | None = None  # None: the built-in task's held-out split, else spec feeds
    samples: int = DEFAULT_SAMPLES
    eval_samples: int = DEFAULT_EVAL_SAMPLES
    method: str = "entropy"
    target: str = "gpu"  # TensorRT target of the check and, where TensorRT is installed, the engines
    duration_s: float = DEFAULT_DURATION_S
    warmup_s: float = 0.2
    cuda_graph: bool = False  # variants measured on a GPU (the engine) replay as CUDA graphs
    # the recommendation's gates: a variant within them may be recommended (None: no such gate)
    max_accuracy_drop: float | None = DEFAULT_MAX_ACCURACY_DROP
    min_cosine: float | None = None

    def gates(self) -> dict[str, float | None]:
        return {"max_accuracy_drop": self.max_accuracy_drop, "min_cosine": self.min_cosine}
