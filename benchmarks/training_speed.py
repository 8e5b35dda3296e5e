"""CPU (or GPU) training speed of both models at their default sizes.

    python benchmarks/training_speed.py                                # batch 8, 3 s clips at 44.1 kHz
    python benchmarks/training_speed.py --batch-size 4 --seconds 2 --out experiments/training_speed.json

For each configuration the time of a full optimiser step (forward, losses, backward, clipping,
Adam) is measured on a fixed batch after warm-up steps, exactly as ``dmaster train`` computes it;
data preparation is timed apart (degrading a batch on the fly with the chain, as ``--music-root``
and ``--data synthetic`` do; ``--manifest`` reads pairs from disk instead). Steps/s with on-the-fly
data = 1 / (step + data). Prints a table, writes JSON and rewrites the ``training_speed`` section of
``benchmarks/README.md`` (see ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from dmaster.data.datasets import SyntheticBatches
from dmaster.effects import Chain
from dmaster.models import build_model, count_parameters
from dmaster.training import TrainConfig
from dmaster.training.objective import training_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (benchmarks/report.py)


def median_seconds(action, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_configuration(label: str, config: TrainConfig, batch: dict, device: torch.device, repeats: int,
                       warmup: int) -> dict:
    torch.manual_seed(0)
    model = build_model(config.model, sample_rate=config.sample_rate, **config.model_args).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    chain = Chain(config.sample_rate, compressor_inverse_steps=config.compressor_inverse_steps)

    def step() -> None:
        loss, _ = training_loss(model, batch, config, chain, config.e2e_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    seconds = median_seconds(step, repeats, warmup)
    return {"configuration": label, "model": config.model, "parameters": count_parameters(model),
            "step_s": seconds, "steps_per_s": 1 / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length")
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("experiments/training_speed.json"))
    report.add_arguments(parser)
    args = parser.parse_args()
    device = torch.device(args.device)

    base = dict(data="synthetic", sample_rate=args.sample_rate, window_seconds=args.seconds,
                batch_size=args.batch_size, device=args.device)
    data = SyntheticBatches(args.seconds, args.batch_size, "train", args.sample_rate, device, clips=4)
    batch = data.batch(0)
    data_seconds = median_seconds(lambda: data.batch(1), args.repeats, 1)
    configurations = [
        ("param, supervised only (first e2e_start of training)", TrainConfig(model="param", e2e_weight=0.0, **base)),
        ("param, with end-to-end loss (defaults)", TrainConfig(model="param", **base)),
        ("unet (defaults)", TrainConfig(model="unet", **base)),
    ]
    rows = [time_configuration(label, config, batch, device, args.repeats, args.warmup)
            for label, config in configurations]
    for row in rows:
        row["steps_per_s_with_on_the_fly_data"] = 1 / (row["step_s"] + data_seconds)

    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
               "device": str(device)}
    result = {"machine": machine, "batch_size": args.batch_size, "clip_seconds": args.seconds,
              "sample_rate": args.sample_rate, "data_batch_s": data_seconds, "rows": rows}
    table = ["| configuration | parameters | s/step | steps/s | steps/s incl. on-the-fly data |",
             "|---|---:|---:|---:|---:|",
             *(f"| {row['configuration']} | {row['parameters']:,} | {row['step_s']:.2f} | {row['steps_per_s']:.2f} | "
               f"{row['steps_per_s_with_on_the_fly_data']:.2f} |" for row in rows)]
    header = (f"batch {args.batch_size} × {args.seconds:g} s at {args.sample_rate} Hz on {device} "
              f"({os.cpu_count()} CPUs, {torch.get_num_threads()} threads); degrading one batch on the fly: "
              f"{data_seconds:.2f} s")
    print(header)
    print("\n".join(table))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    report.publish("training_speed", "\n".join([
        f"A full optimiser step (forward, losses, backward, clipping, Adam), median of {args.repeats} after "
        f"{args.warmup} warm-up steps, batch {args.batch_size} × {args.seconds:g} s at {args.sample_rate} Hz on "
        f"{device}; degrading one batch on the fly: {data_seconds:.2f} s; `python benchmarks/training_speed.py`, "
        f"{report.machine_line(args.device)}.", "", *table]), parser, args)


if __name__ == "__main__":
    main()
