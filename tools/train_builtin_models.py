"""Train (or evaluate) the built-in `seed` and `fusion` models on the synthetic task.

Reproduces the shipped weights bit for bit on CPU (fixed seeds, deterministic algorithms, one
intra-op thread by default, since other thread counts change the floating-point reduction order):

    python tools/train_builtin_models.py --model all
    python tools/train_builtin_models.py --eval-only

Training draws random image sizes, padding lengths and spectrogram lengths per batch so that the
global pooling and the masks generalize; evaluation runs on the held-out stream at the spec's opt
sizes and prints one line per model, e.g. `seed: held-out accuracy 0.973 (2000 samples)`.
"""

from __future__ import annotations

import os

# numpy's BLAS threads fight with torch's on a small CPU; read before numpy is imported
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmexport.data.synthetic import HELDOUT_SEED, TRAIN_SEED, SyntheticTask
from mmexport.models import fusion, seed

MODULES = {"seed": seed, "fusion": fusion}
WEIGHTS_DIR = Path(seed.__file__).parent / "weights"
DEFAULT_STEPS = {"seed": 3000, "fusion": 2500}
# A few sizes per dim (not every integer) keeps the number of distinct conv shapes, and so the
# CPU kernel set-up cost per new shape, small.
IMAGE_SIZES = (48, 64, 80, 96, 112, 128)
SEQ_LENGTHS = (16, 20, 24)
FRAME_COUNTS = (64, 80, 101, 128)


def _configure(rng_seed: int, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(rng_seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _new_model(name: str) -> nn.Module:
    return seed.SeedModel() if name == "seed" else fusion.FusionModel()


def _opt_sizes(name: str) -> dict[str, int]:
    dims = MODULES[name].SPEC["dims"]
    return {key: value["opt"] for key, value in dims.items()}


def _scores(name: str, model: nn.Module, feed: dict[str, np.ndarray]) -> torch.Tensor:
    image = torch.from_numpy(feed["image"])
    tokens = torch.from_numpy(feed["tokens"])
    if name == "seed":
        return model.logits(image, tokens)
    return model(image, tokens, torch.from_numpy(feed["audio"]))


def evaluate(
    name: str, model: nn.Module, samples: int = 2000, batch_size: int = 100, image_size: int | None = None
) -> float:
    """Held-out accuracy at the spec's opt sizes (or square images of ``image_size``)."""
    sizes = _opt_sizes(name)
    if image_size is not None:
        sizes["height"] = sizes["width"] = image_size
    task = SyntheticTask(with_audio=name == "fusion", seed=HELDOUT_SEED)
    model.eval()
    correct = 0
    with torch.no_grad():
        for feed, labels in task.samples(
            samples,
            batch_size,
            height=sizes["height"],
            width=sizes["width"],
            seq=sizes["seq"],
            frames=sizes.get("frames"),
        ):
            predicted = _scores(name, model, feed).argmax(dim=-1).numpy()
            correct += int((predicted == labels).sum())
    return correct / samples


def train(name: str, steps: int, batch_size: int, lr: float, rng_seed: int, threads: int) -> nn.Module:
    """Train one model from scratch with a fixed seed; returns it in eval mode."""
    _configure(rng_seed, threads)
    model = _new_model(name)
    # shape is the slowest answer to learn, so training asks about it more often
    weights = (1.0, 2.0, 1.0) if name == "fusion" else (1.0, 2.0)
    task = SyntheticTask(name == "fusion", seed=TRAIN_SEED + rng_seed, question_weights=weights)
    sizes = np.random.default_rng(rng_seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    running = 0.0
    for step in range(steps):
        height, width = (int(v) for v in sizes.choice(IMAGE_SIZES, 2))
        seq = None if sizes.random() < 0.5 else int(sizes.choice(SEQ_LENGTHS))
        frames = int(sizes.choice(FRAME_COUNTS))
        feed, labels = task.batch(batch_size, height=height, width=width, seq=seq, frames=frames)
        loss = loss_fn(_scores(name, model, feed), torch.from_numpy(labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step else value
        if (step + 1) % 100 == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - start
            print(f"{name}: step {step + 1}/{steps} loss {running:.4f} ({elapsed:.0f} s)")
            sys.stdout.flush()
    print(f"{name}: trained {steps} steps in {time.perf_counter() - start:.0f} s")
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["seed", "fusion", "all"], default="all")
    parser.add_argument("--steps", type=int, default=None, help="training steps per model")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where to write <model>.pt")
    parser.add_argument("--eval-only", action="store_true", help="evaluate the shipped weights")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads; the shipped weights were trained with 1, and other counts may "
        "change the floating-point reduction order and so the exact weights",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        action="append",
        help="also evaluate at square images of this size (repeatable); default: the spec's opt",
    )
    args = parser.parse_args(argv)

    names = ["seed", "fusion"] if args.model == "all" else [args.model]
    results = {}
    for name in names:
        if args.eval_only:
            torch.set_num_threads(args.threads)
            model = MODULES[name].build(pretrained=True)
        else:
            steps = args.steps if args.steps is not None else DEFAULT_STEPS[name]
            model = train(name, steps, args.batch_size, args.lr, args.seed, args.threads)
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"{name}.pt"
            torch.save(model.state_dict(), path)
            print(f"{name}: wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
        for size in args.image_size or [None]:
            results[name, size] = evaluate(name, model, args.eval_samples, image_size=size)
    for (name, size), accuracy in results.items():
        where = "" if size is None else f", image {size}x{size}"
        print(f"{name}: held-out accuracy {accuracy:.3f} ({args.eval_samples} samples{where})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
