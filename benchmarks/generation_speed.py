"""Speed of data generation: the full ``dmaster demaster`` writer and on-the-fly batches.

    python benchmarks/generation_speed.py                      # 8 synthetic 30 s MP3s, CPU (+ CUDA if present)
    python benchmarks/generation_speed.py --input data/raw/fma_small --tracks 64 --out speed.json

The writer is timed end to end (decode, resample, degrade, write WAVs, text, JSON,
manifest; with and without spectrogram PNGs) into a temporary folder. On-the-fly
batches are timed after the first batch (which fills the track pool; its latency
is reported separately). Prints a table and writes JSON (``--out``); with the default settings it also
rewrites the ``generation_speed`` section of ``benchmarks/README.md`` (see ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from dmaster.data import OnTheFlyBatches
from dmaster.data.generate import generate
from dmaster.data.splits import find_tracks, split_of
from dmaster.synth import music_like

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (benchmarks/report.py)

RATE = 44100


def synthetic_tracks(folder: Path, count: int, seconds: float) -> Path:
    """``count`` stereo MP3s of ``seconds`` in ``folder/000``, all in the train split, built from
    rolled and rescaled copies of three short synthetic clips (``music_like`` is slow for long clips)."""
    bank = [music_like(4.0, RATE, 2, seed=s).T.numpy() for s in range(3)]
    names = [f"{n:06d}" for n in range(100_000) if split_of(f"000_{n:06d}") == "train"][:count]
    (folder / "000").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        pieces = [np.roll(bank[rng.integers(3)], rng.integers(RATE), axis=0) * rng.uniform(0.5, 1.0)
                  for _ in range(int(np.ceil(seconds / 4.0)))]
        sf.write(folder / "000" / f"{name}.mp3", np.concatenate(pieces)[: int(seconds * RATE)], RATE, format="MP3")
    return folder


def time_writer(source: Path, device: str, batch_size: int, spectrograms: bool, limit: int | None) -> dict:
    output = Path(tempfile.mkdtemp(prefix="dmaster-bench-"))
    try:
        summary = generate(source, output / "out", device=device, batch_size=batch_size, spectrograms=spectrograms,
                           limit=limit, progress=False)
    finally:
        shutil.rmtree(output)
    return {"path": "writer" + ("" if spectrograms else " --no-spectrograms"), "device": device,
            "batch_size": batch_size, "items": summary.written, "seconds": summary.elapsed_s,
            "items_per_s": summary.written / summary.elapsed_s,
            "audio_s_per_s": summary.audio_seconds / summary.elapsed_s}


def time_on_the_fly(source: Path, device: str, batch_size: int, window_seconds: float, steps: int) -> dict:
    started = time.perf_counter()
    batches = iter(OnTheFlyBatches(source, window_seconds=window_seconds, batch_size=batch_size, device=device,
                                   steps=steps + 1))
    next(batches)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in batches:
        pass
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    windows = steps * batch_size
    return {"path": f"on-the-fly ({window_seconds:g} s windows)", "device": device, "batch_size": batch_size,
            "items": windows, "seconds": elapsed, "items_per_s": windows / elapsed,
            "audio_s_per_s": windows * window_seconds / elapsed, "first_batch_s": first}


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, help="a folder of music (default: synthetic MP3s in a temp folder)")
    parser.add_argument("--tracks", type=int, default=8, help="synthetic tracks, or the limit for --input")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the synthetic tracks")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--window-seconds", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=10, help="on-the-fly batches timed")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    report.add_arguments(parser)
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="dmaster-bench-input-"))
    try:
        source = args.input or synthetic_tracks(scratch, args.tracks, args.seconds)
        limit = args.tracks if args.input else None
        train_tracks = sum(split_of(t.id) == "train" for t in find_tracks(source))
        rows = []
        for device in args.devices:
            rows.append(time_writer(source, device, args.batch_size, True, limit))
            rows.append(time_writer(source, device, args.batch_size, False, limit))
            rows.append(time_on_the_fly(source, device, args.batch_size, args.window_seconds, args.steps))
    finally:
        shutil.rmtree(scratch)

    print(f"{'path':34} {'device':6} {'batch':>5} {'items':>6} {'items/s':>8} {'audio s/s':>10}")
    for row in rows:
        print(f"{row['path']:34} {row['device']:6} {row['batch_size']:>5} {row['items']:>6} "
              f"{row['items_per_s']:>8.2f} {row['audio_s_per_s']:>10.1f}"
              + (f"   (first batch {row['first_batch_s']:.1f} s)" if "first_batch_s" in row else ""))
    result = {"machine": machine(), "input": str(args.input or f"{args.tracks} synthetic {args.seconds:g} s MP3s"),
              "train_tracks": train_tracks, "rows": rows}
    print(json.dumps(result["machine"]), file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = ["| path | device | batch | items | items/s | audio s/s | first batch s |",
             "|---|---|---:|---:|---:|---:|---:|",
             *(f"| {row['path']} | {row['device']} | {row['batch_size']} | {row['items']} | {row['items_per_s']:.2f} | "
               f"{row['audio_s_per_s']:.1f} | {row['first_batch_s']:.1f} |" if "first_batch_s" in row else
               f"| {row['path']} | {row['device']} | {row['batch_size']} | {row['items']} | {row['items_per_s']:.2f} | "
               f"{row['audio_s_per_s']:.1f} | — |" for row in rows)]
    report.publish("generation_speed", f"Input: {result['input']}; `python benchmarks/generation_speed.py`, "
                   f"{report.machine_line(args.devices[-1])}.\n\n" + "\n".join(table), parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
