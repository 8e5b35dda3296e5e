"""Does ``master(target_lufs=…)`` reach its loudness target under the peak ceiling?

For each track of a split (first ``--seconds``), and each target: the loudness that normalising and then
turning the whole track down under the ceiling reaches (what ``master()`` did before the limiter), the
loudness reached by ``set_level()`` with the lookahead limiter (sample-peak and true-peak ceilings), the
limiter's largest gain reduction, the output's true peak, and the time the level stage takes.

    python benchmarks/loudness_targets.py --music-root data/raw/debian_music --split val

With the default settings it also rewrites the ``loudness_targets`` section of ``benchmarks/README.md``
(see ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dmaster.audio import load_audio, write_json_atomic, write_text_atomic
from dmaster.data.splits import find_tracks, split_of
from dmaster.limiter import peak_db
from dmaster.loudness import integrated_loudness
from dmaster.mastering.level import set_level

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (benchmarks/report.py)

SAMPLE_RATE = 44100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--split", default="val", choices=("train", "val", "test", "all"))
    parser.add_argument("--seconds", type=float, default=180.0, help="from the start of each track")
    parser.add_argument("--targets", type=float, nargs="+", default=[-14.0, -9.0], help="LUFS")
    parser.add_argument("--ceiling", type=float, default=-1.0, help="dBFS (dBTP for the true-peak rows)")
    parser.add_argument("--out", type=Path, default=Path("experiments/loudness_targets"))
    report.add_arguments(parser)
    args = parser.parse_args()

    tracks = [t for t in find_tracks(args.music_root) if args.split in ("all", split_of(t.id))]
    if not tracks:
        raise SystemExit(f"no {args.split} tracks under {args.music_root}")
    rows = []
    for track in tracks:
        audio = load_audio(track.path, SAMPLE_RATE)[:, : int(args.seconds * SAMPLE_RATE)]
        loudness = integrated_loudness(audio, SAMPLE_RATE)
        for target in args.targets:
            turned_down = target - max(0.0, target - loudness + peak_db(audio) - args.ceiling)
            row = {"track": track.id, "loudness_lufs": loudness, "target_lufs": target, "turned_down_lufs": turned_down}
            for true_peak in (False, True):
                started = time.perf_counter()
                out, level = set_level(audio, SAMPLE_RATE, target, args.ceiling, true_peak=true_peak)
                key = "true_peak" if true_peak else "sample_peak"
                row[key] = {"loudness_lufs": level["loudness_lufs"], "limiting_db": level.get("peak_limiting_db", 0.0),
                            "output_true_peak_dbtp": peak_db(out, true_peak=True),
                            "seconds": time.perf_counter() - started}
            rows.append(row)
            limited, true_limited = row["sample_peak"], row["true_peak"]
            print(f"{track.id} → {target:g} LUFS: turned down {turned_down:.2f}, "
                  f"limited {limited['loudness_lufs']:.2f} ({limited['output_true_peak_dbtp']:+.2f} dBTP), "
                  f"true peak {true_limited['loudness_lufs']:.2f} "
                  f"({true_limited['output_true_peak_dbtp']:+.2f} dBTP)", flush=True)

    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__}
    lines = [f"{len(tracks)} {args.split} tracks (first {args.seconds:g} s), ceiling {args.ceiling:g} dB; "
             f"machine: {machine}.",
             "", "| target LUFS | turned down: miss LU (max) | limiter: miss LU (max) | its true peak dBTP (max) | "
             "true-peak limiter: miss LU (max) | its true peak dBTP (max) | limiting dB (min) | seconds (max) |",
             "|---|---|---|---|---|---|---|---|"]
    for target in args.targets:
        mine = [r for r in rows if r["target_lufs"] == target]
        miss = {name: max(abs(value - target) for value in values) for name, values in (
            ("turned_down", [r["turned_down_lufs"] for r in mine]),
            ("sample_peak", [r["sample_peak"]["loudness_lufs"] for r in mine]),
            ("true_peak", [r["true_peak"]["loudness_lufs"] for r in mine]))}
        lines.append(f"| {target:g} | {miss['turned_down']:.2f} | {miss['sample_peak']:.2f} | "
                     f"{max(r['sample_peak']['output_true_peak_dbtp'] for r in mine):+.2f} | {miss['true_peak']:.2f} | "
                     f"{max(r['true_peak']['output_true_peak_dbtp'] for r in mine):+.2f} | "
                     f"{min(r['true_peak']['limiting_db'] for r in mine):.1f} | "
                     f"{np.max([r[k]['seconds'] for r in mine for k in ('sample_peak', 'true_peak')]):.1f} |")
    markdown = "\n".join(lines)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "loudness_targets.md", markdown + "\n")
    write_json_atomic(args.out / "loudness_targets.json", {"machine": machine, "rows": rows})
    report.publish("loudness_targets", f"Measured by `python benchmarks/loudness_targets.py`, "
                   f"{report.machine_line()}.\n\n{markdown}", parser, args)


if __name__ == "__main__":
    main()
