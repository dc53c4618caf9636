"""The main job: one model to FP32/FP16/INT8 ONNX, accuracy and latency side by side, one report.

from mmexport.pipeline import PipelineConfig, run_pipeline, write_report
result = run_pipeline(PipelineConfig(output=Path("report")))
write_report(result)  # report.md, report.json, latency.png
"""

from mmexport.pipeline.config import DEFAULT_DURATION_S, DEFAULT_EVAL_SAMPLES, DEFAULT_SAMPLES, PipelineConfig
from mmexport.pipeline.report import table, to_dict, to_markdown, write_report
from mmexport.pipeline.run import (
    PipelineResult,
    build_engines,
    run_pipeline,
)

__all__ = [
    "DEFAULT_DURATION_S",
    "DEFAULT_EVAL_SAMPLES",
    "DEFAULT_SAMPLES",
    "PipelineConfig",
    "PipelineResult",
    "build_engines",
    "run_pipeline",
    "table",
    "to_dict",
    "to_markdown",
    "write_report",
]
