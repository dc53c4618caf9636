"""The runtime on a GPU at the hardware's pace: mmexport's Session against bare onnxruntime, with and
without CUDA graphs, beside eager PyTorch and torch.compile; one process, one JSON.

    python benchmarks/gpu_runtime.py                          # CUDA where onnxruntime has it
    python benchmarks/gpu_runtime.py --out $OUT/gpu_runtime.json --precision
    python benchmarks/gpu_runtime.py --cpu                    # the reduced CPU mode (a smoke test)

Pairs, each measured in ABBA rounds (the order flips every round; per round p50 of each side,
reported as the median of the per-round ratios, with min and max), for fusion and seed at batch
1 and 32:

    Session.run (plain)                 vs bare InferenceSession.run
    Session.run_on_device (inputs on the device)  vs bare I/O binding (the same OrtValues)
    Session cuda_graph run (host to host)          vs bare CUDA graph: update_inplace, replay, copy out
    Session cuda_graph run_on_device (host in, device out)  vs bare CUDA graph without the copy out
    Session cuda_graph run_on_device (OrtValues in, copied on the device)  vs bare replay alone
    bare CUDA graph, device-resident (replay only) vs bare I/O binding: what the graph saves

and alone: eager PyTorch and torch.compile on the same device (``--no-compile`` skips the
latter), SplitSession with its parts in turn vs on the thread pool (``--split``), FP16 and INT8
variants against FP32 on the CUDA provider (``--precision``), and the lines onnxruntime's default
logger prints when a CUDA session opens, bare and through mmexport (it should print none).

Without the CUDA provider (or with ``--cpu``), CUDA rows are skipped with the reason, and the CPU
pairs run (Session vs bare at 1 intra-op thread, eager PyTorch, the split parts) so that the
script can be checked anywhere. Output: a table on stdout and JSON with the environment to
``--out`` (default: ``$OUT/gpu_runtime.json`` where ``$OUT`` is set, else
``benchmarks/results/gpu_runtime[-cpu].json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from session_overhead import export_model, one_round  # this folder is on sys.path as a script

from mmexport.bench import collect_environment
from mmexport.bench.cases import ShapeCase, resolve_point
from mmexport.runtime import Session

MODELS = ("fusion", "seed")
BATCHES = (1, 32)
CUDA_EP = "CUDAExecutionProvider"
PLUGIN_WARNING = "No registered plugin EP device found"
Call = Callable[[], object]


# -- measuring ---------------------------------------------------------------------------------


def abba(a: Call, b: Call, rounds: int, calls: int, warmup_s: float) -> dict[str, Any]:
    """Median per-round p50 ratio a / b, its spread, and each side's median p50 (ms)."""
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        a(), b()
    pairs = [one_round(a, b, calls, a_first=r % 2 == 0) for r in range(rounds)]
    ratios = [x / y for x, y in pairs]
    return {
        "a_p50_ms": round(statistics.median(p[0] for p in pairs), 4),
        "b_p50_ms": round(statistics.median(p[1] for p in pairs), 4),
        "median_ratio": round(statistics.median(ratios), 4),
        "min_ratio": round(min(ratios), 4),
        "max_ratio": round(max(ratios), 4),
    }


def alone(fn: Call, calls: int, warmup_s: float) -> dict[str, Any]:
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50_ms": round(statistics.median(times), 4), "calls": calls}


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Lines written to file descriptor 2 (onnxruntime's C++ logger writes there, not to sys.stderr)."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines += tmp.read().decode(errors="replace").splitlines()


# -- onnxruntime, bare -------------------------------------------------------------------------


def bare_options(threads: int | None) -> Any:
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def bare_cuda(path: Path, graph: bool = False) -> Any:
    cuda = {"device_id": 0, **({"enable_cuda_graph": "1"} if graph else {})}
    return ort.InferenceSession(
        str(path), bare_options(None), providers=[(CUDA_EP, cuda), "CPUExecutionProvider"]
    )


def device_values(feed: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: ort.OrtValue.ortvalue_from_numpy(v, "cuda", 0) for k, v in feed.items()}


def bare_io_binding(session: Any, values: dict[str, Any]) -> Call:
    """One binding per call, device inputs, outputs allocated on the device (as run_on_device)."""
    names = [o.name for o in session.get_outputs()]

    def call() -> object:
        binding = session.io_binding()
        for k, v in values.items():
            binding.bind_ortvalue_input(k, v)
        for name in names:
            binding.bind_output(name, "cuda", 0)
        session.run_with_iobinding(binding)
        return binding.get_outputs()

    return call


def bare_graph(session: Any, feed: dict[str, np.ndarray]) -> dict[str, Call]:
    """onnxruntime's CUDA graph by hand: fixed buffers, one id; replay only, copy in, copy in and out."""
    inputs = {
        k: ort.OrtValue.ortvalue_from_shape_and_type(v.shape, v.dtype, "cuda", 0) for k, v in feed.items()
    }
    binding = session.io_binding()
    for k, v in inputs.items():
        v.update_inplace(feed[k])
        binding.bind_ortvalue_input(k, v)
    for o in session.get_outputs():
        binding.bind_output(o.name, "cuda", 0)
    plain = ort.RunOptions()
    plain.add_run_config_entry("gpu_graph_id", "-1")
    session.run_with_iobinding(binding, plain)
    for o, value in zip(session.get_outputs(), binding.get_outputs(), strict=True):
        binding.bind_ortvalue_output(o.name, value)
    graph = ort.RunOptions()
    graph.add_run_config_entry("gpu_graph_id", "1")
    session.run_with_iobinding(binding, graph)  # capture

    def replay() -> object:
        session.run_with_iobinding(binding, graph)
        return binding

    def copy_in() -> object:
        for k, v in inputs.items():
            v.update_inplace(feed[k])
        return replay()

    def host_to_host() -> object:
        copy_in()
        return binding.copy_outputs_to_cpu()

    return {"replay": replay, "copy_in": copy_in, "host_to_host": host_to_host}


# -- the pairs ---------------------------------------------------------------------------------


def cuda_rows(path: Path, feed: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    """Every CUDA pair for one model and batch; outputs checked equal first."""
    measure = partial(abba, rounds=args.rounds, calls=args.calls, warmup_s=args.warmup)
    plain, graphed = Session(path, device="cuda"), Session(path, device="cuda", options={"cuda_graph": True})
    bare, bare_g = bare_cuda(path), bare_cuda(path, graph=True)
    values = device_values(feed)
    hand = bare_graph(bare_g, feed)
    reference = bare.run(None, feed)
    got = graphed.run(feed)
    diff = max(
        float(np.max(np.abs(r - got[o.name]))) for r, o in zip(reference, bare.get_outputs(), strict=True)
    )
    rows = {
        "graph_vs_plain_max_abs_diff": diff,
        "session_run_vs_bare_run": measure(partial(plain.run, feed), partial(bare.run, None, feed)),
        "run_on_device_vs_bare_io_binding": measure(
            partial(plain.run_on_device, values), bare_io_binding(bare, values)
        ),
        "cuda_graph_run_vs_bare_graph_host_to_host": measure(
            partial(graphed.run, feed), hand["host_to_host"]
        ),
        "cuda_graph_on_device_vs_bare_graph_copy_in": measure(
            partial(graphed.run_on_device, feed), hand["copy_in"]
        ),
        "cuda_graph_on_device_ortvalues_vs_bare_graph_replay": optional(
            measure, partial(graphed.run_on_device, values), hand["replay"]
        ),
        "bare_graph_replay_vs_bare_io_binding": measure(hand["replay"], bare_io_binding(bare, values)),
        "cuda_graph_run_vs_session_run": measure(partial(graphed.run, feed), partial(plain.run, feed)),
    }
    for s in (plain, graphed):
        s.close()
    return rows


def optional(measure: Callable[..., dict[str, Any]], a: Call, b: Call) -> dict[str, Any]:
    """A pair that this onnxruntime may not support (``update_inplace`` of an OrtValue: 1.32):
    its figures, or why it was skipped."""
    from mmexport.core.errors import MmexportError

    try:
        a()
    except MmexportError as e:
        return {"skipped": str(e)}
    return measure(a, b)


def cpu_rows(path: Path, feed: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    session = Session(path, threads=1, spin=False)
    bare = ort.InferenceSession(str(path), bare_options(1), providers=["CPUExecutionProvider"])
    row = abba(
        partial(session.run, feed), partial(bare.run, None, feed), args.rounds, args.calls, args.warmup
    )
    session.close()
    return {"session_run_vs_bare_run_1_thread": row}


def torch_rows(
    model: str, feed: dict[str, np.ndarray], device: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Eager PyTorch and torch.compile on ``device``, synchronized per call on CUDA."""
    try:
        import torch

        from mmexport.models import get_builtin
    except ImportError as e:
        return {"skipped": f"torch is not installed ({e})"}
    if device == "cpu":
        torch.set_num_threads(1)  # as onnxruntime's rows; two threads on a busy machine cost 10x
    module = get_builtin(model).build().eval().to(device)
    inputs = {k: torch.from_numpy(v).to(device) for k, v in feed.items()}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def runner(fn: Callable[..., Any]) -> Call:
        def call() -> object:
            with torch.inference_mode():
                out = fn(**inputs)
            sync()
            return out

        return call

    out: dict[str, Any] = {"threads": torch.get_num_threads() if device == "cpu" else None}
    out["eager"] = alone(runner(module), args.calls, args.warmup)
    if args.no_compile:
        out["compile"] = {"skipped": "--no-compile"}
    elif not hasattr(torch, "compile"):
        out["compile"] = {"skipped": "this torch has no torch.compile"}
    else:
        try:
            compiled = torch.compile(module)
            runner(compiled)()  # compiles
            out["compile"] = alone(runner(compiled), args.calls, args.warmup)
        except (
            Exception
        ) as e:  # inductor needs a compiler toolchain (Triton on CUDA, a C++ compiler on the CPU)
            out["compile"] = {
                "skipped": f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            }
    return out


def split_rows(device: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """SplitSession of fusion with its parts in turn vs on the thread pool (ABBA)."""
    from mmexport.export import ParityConfig
    from mmexport.split import SplitSession
    from mmexport.split.export import to_onnx_split

    target = to_onnx_split("fusion", folder / "fusion-split", parity=ParityConfig(random_points=0)).folder
    threads = 1 if device == "cpu" else None
    serial = SplitSession(target, device, threads=threads, spin=False, parallel=False)
    pooled = SplitSession(target, device, threads=threads, spin=False, parallel=True)
    rows = {}
    for batch in BATCHES:
        feed = serial.spec.sample_feed(resolve_point(serial.spec, ShapeCase("opt", batch=batch)), seed=0)
        rows[f"b{batch}"] = abba(
            partial(serial.run, feed), partial(pooled.run, feed), args.rounds, args.calls // 2, args.warmup
        )
    serial.close()
    pooled.close()
    return {"serial_vs_pool": rows}


def precision_rows(folder: Path, fp32: Path, feed: dict[str, np.ndarray], args: argparse.Namespace) -> dict:
    """FP16 and INT8 variants of fusion against FP32 on the CUDA provider (ABBA)."""
    from mmexport.precision.stages import CalibrationConfig, calibrate, to_fp16

    fp16 = to_fp16(fp32, folder / "fusion.fp16.onnx", eval_samples=50).path
    int8 = calibrate(
        fp32, folder / "fusion.int8.onnx", config=CalibrationConfig(samples=128, sensitivity=False)
    ).path
    base = Session(fp32, device="cuda")
    out = {}
    for name, path in (("fp16", fp16), ("int8", int8)):
        variant = Session(path, device="cuda")
        out[f"{name}_vs_fp32"] = abba(
            partial(variant.run, feed), partial(base.run, feed), args.rounds, args.calls, args.warmup
        )
        variant.close()
    base.close()
    return out


def log_lines(path: Path) -> dict[str, Any]:
    """onnxruntime's default-logger lines at CUDA session creation: bare, at onnxruntime's own
    default severity (warnings: mmexport's export already set it to errors in this process), then
    through mmexport (which sets it to errors again)."""
    ort.set_default_logger_severity(2)
    with captured_stderr() as bare_lines:
        bare_cuda(path)
    with captured_stderr() as ours:
        Session(path, device="cuda").close()
    return {
        "bare_onnxruntime": sum(PLUGIN_WARNING in line for line in bare_lines),
        "mmexport_session": sum(PLUGIN_WARNING in line for line in ours),
        "mmexport_session_lines": ours[:5],
    }


# -- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    providers = ort.get_available_providers()
    cuda = CUDA_EP in providers and not args.cpu
    reason = (
        None
        if cuda
        else ("--cpu" if args.cpu else f"onnxruntime has no {CUDA_EP} here (it has {', '.join(providers)})")
    )
    result: dict[str, Any] = {"mode": "cuda" if cuda else "cpu", "cuda_skipped": reason, "models": {}}
    paths = {}
    for model in args.models:
        model_folder = folder / model
        model_folder.mkdir()
        paths[model] = path = export_model(model, model_folder)
        spec = Session(path).spec
        entry: dict[str, Any] = {}
        for batch in args.batches:
            feed = spec.sample_feed(resolve_point(spec, ShapeCase("opt", batch=batch)), seed=0)
            print(f"{model} batch {batch} ...", file=sys.stderr)
            row = cuda_rows(path, feed, args) if cuda else cpu_rows(path, feed, args)
            row["torch"] = torch_rows(model, feed, "cuda" if cuda else "cpu", args)
            entry[f"b{batch}"] = row
        result["models"][model] = entry
    first = paths[args.models[0]]
    result["default_logger"] = log_lines(first) if cuda else {"skipped": reason}
    result["split"] = (
        split_rows("cuda" if cuda else "cpu", folder, args) if args.split else {"skipped": "--no-split"}
    )
    if args.precision and cuda and "fusion" in paths:
        spec = Session(paths["fusion"]).spec
        feed = spec.sample_feed(resolve_point(spec, ShapeCase("opt", batch=1)), seed=0)
        result["precision"] = precision_rows(folder, paths["fusion"], feed, args)
    else:
        result["precision"] = {"skipped": reason or "not asked (--precision)"}
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"mode: {result['mode']}"
        + (f" (CUDA rows skipped: {result['cuda_skipped']})" if result["cuda_skipped"] else "")
    ]
    for model, batches in result["models"].items():
        for batch, rows in batches.items():
            for name, row in rows.items():
                if isinstance(row, dict) and "median_ratio" in row:
                    lines.append(
                        f"  {model} {batch} {name}: {row['a_p50_ms']:.4f} vs {row['b_p50_ms']:.4f} ms, "
                        f"ratio {row['median_ratio']:.3f} [{row['min_ratio']:.3f}, {row['max_ratio']:.3f}]"
                    )
                elif name == "torch":
                    for kind, t in row.items():
                        if not isinstance(t, dict):
                            continue
                        shown = f"p50 {t['p50_ms']:.4f} ms" if "p50_ms" in t else f"skipped: {t['skipped']}"
                        lines.append(f"  {model} {batch} torch {kind}: {shown}")
                elif name == "graph_vs_plain_max_abs_diff":
                    lines.append(f"  {model} {batch} CUDA graph vs plain outputs: max abs diff {row:.3g}")
    for section in ("split", "precision", "default_logger"):
        lines.append(f"  {section}: {json.dumps(result[section])}")
    return "\n".join(lines)


def default_out(cpu_mode: bool) -> Path:
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu_runtime.json"
    return Path(__file__).parent / "results" / ("gpu_runtime-cpu.json" if cpu_mode else "gpu_runtime.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--rounds", type=int, default=10, help="ABBA rounds per pair")
    parser.add_argument("--calls", type=int, default=200, help="calls of each side per round")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per pair")
    parser.add_argument(
        "--cpu", action="store_true", help="the reduced CPU mode even where CUDA is available"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--no-split", dest="split", action="store_false", help="skip the split parts")
    parser.add_argument("--precision", action="store_true", help="also FP16 / INT8 vs FP32 on CUDA")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: see above)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    cuda = result["mode"] == "cuda"
    env = collect_environment(
        [{"backend": "onnxrt", "provider": CUDA_EP if cuda else "CPUExecutionProvider"}]
    )
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    payload = {"environment": env, "settings": settings, "result": result}
    print(table(result))
    out = args.out or default_out(not cuda)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
