"""Accuracy of the built-in models' split exports with each declared modality absent.

    python benchmarks/split_missing.py
    python benchmarks/split_missing.py --json benchmarks/results/split_missing.json

Exports each built-in model split (into a temporary folder), then runs its ``SplitSession`` on the
synthetic held-out split (``--samples``, labelled) with every input given, and once per modality
whose absence the model declares, with that modality's inputs left out. Accuracy is reported on
all questions and apart on the questions whose answer needs the absent modality (colour and
shape questions need the image, pitch questions the audio) and those that do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from mmexport.bench import collect_environment
from mmexport.data.sources import open_source
from mmexport.data.synthetic import LABELS
from mmexport.export import ParityConfig
from mmexport.split import SplitSession
from mmexport.split.export import to_onnx_split

# which modality each answer needs: colour and shape answers the image, pitch answers the audio
NEEDS = {label: ("audio" if label in ("low", "mid", "high") else "image") for label in LABELS}


def evaluate(pipe: SplitSession, name: str, samples: int, absent: str | None) -> dict:
    source = open_source(
        "synthetic", pipe.spec, builtin=name, split="evaluation", samples=samples, batch_size=50
    )
    gone = set() if absent is None else set(pipe.composition.part(absent).model_inputs)
    task = pipe.spec.outputs[0]
    labels_of = list(task.labels or [])
    hits = {"all": [0, 0], "needs it": [0, 0], "does not need it": [0, 0]}
    for batch in source.batches():
        feed = {k: v for k, v in batch.feed.items() if k not in gone}
        predicted = pipe.run(feed)[task.name].argmax(-1)
        assert batch.labels is not None
        for label, guess in zip(batch.labels.tolist(), predicted.tolist(), strict=True):
            groups = ["all"]
            if absent is not None:
                groups.append("needs it" if NEEDS[labels_of[label]] == absent else "does not need it")
            for group in groups:
                hits[group][0] += int(guess == label)
                hits[group][1] += 1
    return {g: {"accuracy": c / n, "samples": n} for g, (c, n) in hits.items() if n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("fusion", "seed"):
            print(f"exporting {name} split ...", file=sys.stderr)
            folder = to_onnx_split(name, Path(tmp) / name, parity=ParityConfig(random_points=0)).folder
            with SplitSession(folder) as pipe:
                declared = {p.name: p.absent.kind for p in pipe.composition.parts if p.absent is not None}
                results[name] = {"declared": declared, "all inputs": evaluate(pipe, name, args.samples, None)}
                for part in declared:
                    print(f"  {name} without {part} ...", file=sys.stderr)
                    results[name][f"{part} absent"] = evaluate(pipe, name, args.samples, part)
                environment = collect_environment([pipe.describe()])
    print("| model | inputs | declared as | accuracy, all | on questions needing it | on the others |")
    print("|---|---|---|---:|---:|---:|")
    for name, rows in results.items():
        for case, row in rows.items():
            if case == "declared":
                continue
            part = case.removesuffix(" absent")
            kind = rows["declared"].get(part, "-")
            needs = row.get("needs it", {}).get("accuracy")
            other = row.get("does not need it", {}).get("accuracy")
            shown = kind if case != "all inputs" else "-"
            print(
                f"| {name} | {case} | {shown} | {row['all']['accuracy']:.3f} | "
                f"{'-' if needs is None else f'{needs:.3f}'} | {'-' if other is None else f'{other:.3f}'} |"
            )
    print(f"{args.samples} held-out synthetic samples per row; chance is 1/3 within a question type")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"environment": environment, "samples": args.samples, "results": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
