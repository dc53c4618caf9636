"""Run an FP32 model over a data source and keep streaming statistics of its activations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import onnx

from mmexport.core.onnx_mapped import MappedModel, graph_proto, read_mapped
from mmexport.core.progress import Progress
from mmexport.precision.accuracy import graph_runner
from mmexport.precision.graph import activation_tensors, output_infos
from mmexport.precision.stats import TensorStats

Feed = Mapping[str, np.ndarray]


def collect_stats(
    model: onnx.ModelProto | MappedModel | str | Path,
    feeds: Iterable[Feed],
    *,
    tensors: list[str] | None = None,
    progress: Progress | None = None,
    histograms: bool = True,
) -> tuple[dict[str, TensorStats], int]:
    """Statistics of ``tensors`` (default: every float activation) over ``feeds``; with
    ``histograms=False`` only min/max (enough for minmax ranges, and about twice as fast).

    Returns the statistics and the number of samples (batch rows) seen. Only one batch's outputs
    are alive at a time, so memory does not grow with the number of batches. The graph runs as
    written (no onnxruntime optimizations: they would fold FP32 -> FP16 -> FP32 cast pairs, hiding
    an FP16 overflow, and fuse away observed tensors), with every observed tensor as an output.
    """
    if isinstance(model, str | Path):
        model = read_mapped(model)
    proto = graph_proto(model)
    names = activation_tensors(proto) if tensors is None else list(tensors)
    graph_inputs = [i.name for i in proto.graph.input]
    fetch = [n for n in names if n not in graph_inputs]
    stats = {name: TensorStats(name, histogram=histograms) for name in names}
    seen = 0
    # only graph inputs observed: still run the model (it checks every batch), fetching one output
    outputs = fetch or [proto.graph.output[0].name]
    with graph_runner(model, outputs=output_infos(proto, fetch), fetch=outputs) as runner:
        for feed in feeds:
            inputs = {name: feed[name] for name in graph_inputs}
            values = runner.run(inputs)
            for name in fetch:
                stats[name].update(values[name])
            for name in graph_inputs:
                if name in stats:
                    stats[name].update(inputs[name])
            del values
            seen += int(next(iter(inputs.values())).shape[0]) if inputs else 1
            if progress is not None:
                progress(seen)
    return stats, seen
