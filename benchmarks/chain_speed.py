"""Throughput of the chain (forward and inverse) against pedalboard's equivalent chain.

Seconds of audio processed per second of wall time, 10 s stereo clips at 44.1 kHz,
batch 1 and 16, every effect switched on, on the CPU (and CUDA when present).
pedalboard (an optional extra: ``pip install -e .[bench]``) runs PeakFilter → Gain →
Delay → Convolution (our reverb's impulse response) → Compressor, one clip at a
time, as it has no batch dimension.

    python benchmarks/chain_speed.py --out experiments/chain_speed.json

Prints the table, writes JSON and rewrites the ``chain_speed`` section of ``benchmarks/README.md``
(``chain_speed_cuda`` on a machine with CUDA; see ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from dmaster import Chain
from dmaster.effects import reverb
from dmaster.synth import music_like

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (benchmarks/report.py)


def seconds_per_call(function, repeats: int, sync=lambda: None) -> float:
    function()  # warm-up (numba compilation, FFT plans)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    sync()
    return (time.perf_counter() - start) / repeats


def all_on(chain: Chain, batch_size: int, seed: int = 0):
    params = chain.sample_params(batch_size, torch.Generator().manual_seed(seed))
    for effect in params.values():
        effect["present"] = torch.ones(batch_size)
    return params


def bench_dmaster(device: str, batch_size: int, seconds: float, repeats: int) -> dict[str, float]:
    chain = Chain(44100)
    clip = music_like(seconds, 44100, 2, seed=0)
    x = clip.expand(batch_size, -1, -1).contiguous().to(device)
    params = all_on(chain, batch_size)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        y = chain(x, params)
        forward = seconds_per_call(lambda: chain(x, params), repeats, sync)
        inverse = seconds_per_call(lambda: chain.inverse(y, params), repeats, sync)
    audio = batch_size * seconds
    return {"forward": audio / forward, "inverse": audio / inverse}


def bench_pedalboard(batch_size: int, seconds: float, repeats: int) -> dict[str, float] | None:
    try:
        import pedalboard
    except ImportError:
        return None
    chain = Chain(44100)
    clip = music_like(seconds, 44100, 2, seed=0).numpy()
    params = all_on(chain, batch_size)
    boards = []
    for i in range(batch_size):
        eq, comp, echo, rev = (params[name] for name in ("eq", "compressor", "echo", "reverb"))
        impulse = reverb.impulse_response(44100, 2, rev["t60_s"][i : i + 1])[0].numpy()
        boards.append(pedalboard.Pedalboard([
            pedalboard.PeakFilter(float(eq["bell_2_hz"][i]), float(eq["bell_2_gain_db"][i]), float(eq["bell_2_q"][i])),
            pedalboard.Gain(float(params["gain"]["gain_db"][i])),
            pedalboard.Delay(float(echo["delay_ms"][i]) / 1000, 0.0, 10 ** (float(echo["level_db"][i]) / 20) / 2),
            pedalboard.Convolution(impulse.T.copy(), float(rev["wet"][i]), 44100),
            pedalboard.Compressor(float(comp["threshold_db"][i]), float(comp["ratio"][i]),
                                  float(comp["attack_ms"][i]), float(comp["release_ms"][i])),
        ]))

    def run() -> None:
        for board in boards:
            board(clip, 44100)

    return {"forward": batch_size * seconds / seconds_per_call(run, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--out", type=Path, default=Path("experiments/chain_speed.json"))
    report.add_arguments(parser)
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for batch_size in args.batch_sizes:
        for device in devices:
            rows.append({"system": "dmaster", "device": device, "batch": batch_size,
                         **bench_dmaster(device, batch_size, args.seconds, args.repeats)})
        peer = bench_pedalboard(batch_size, args.seconds, args.repeats)
        if peer is not None:
            rows.append({"system": "pedalboard", "device": "cpu", "batch": batch_size, **peer})

    machine = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__,
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(f"audio seconds per second, {args.seconds:g} s stereo 44.1 kHz, all effects on; {machine}")
    print(f"{'system':<11}{'device':<8}{'batch':>6}{'forward':>10}{'inverse':>10}")
    for row in rows:
        inverse = f"{row['inverse']:10.1f}" if "inverse" in row else f"{'—':>10}"
        print(f"{row['system']:<11}{row['device']:<8}{row['batch']:>6}{row['forward']:10.1f}{inverse}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "seconds": args.seconds, "rows": rows}, indent=2))
    report.publish("chain_speed_cuda" if "cuda" in devices else "chain_speed", markdown(rows, args, devices[-1]),
                   parser, args)


def markdown(rows: list[dict], args: argparse.Namespace, device: str) -> str:
    """The table for ``benchmarks/README.md``, with its header line."""
    lines = [f"Seconds of audio per second of wall time, {args.seconds:g} s stereo 44.1 kHz clips, every effect on, "
             f"mean of {args.repeats} calls after a warm-up; pedalboard: PeakFilter, Gain, Delay, Convolution, "
             f"Compressor, one clip at a time; `python benchmarks/chain_speed.py`, "
             f"{report.machine_line(device)}.", "",
             "| system | device | batch | forward | inverse |", "|---|---|---:|---:|---:|"]
    for row in rows:
        inverse = f"{row['inverse']:.1f}" if "inverse" in row else "—"
        lines.append(f"| {row['system']} | {row['device']} | {row['batch']} | {row['forward']:.1f} | {inverse} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
