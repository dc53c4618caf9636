"""Split export: one ONNX file per modality encoder plus a fusion part, run as one model.

``to_onnx(..., split=True)`` writes the parts and ``composition.json``; ``SplitSession(folder)``
runs them as the whole model; :mod:`mmexport.split.precision` makes FP16/INT8 folders part by part.
"""

from mmexport.split.session import SplitSession

__all__ = ["SplitSession"]
