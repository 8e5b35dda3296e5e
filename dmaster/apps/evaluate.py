"""``dmaster evaluate PAIRS``: how well a model restores a generated pair folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from ..audio import load_audio, read_jsonl, write_json_atomic
from ..mastering import master
from ..mastering.pretrained import resolve_model
from ..metrics import log_spectral_distance, mrstft_distance, si_sdr

METRICS = {"mrstft": mrstft_distance, "si_sdr_db": si_sdr, "lsd_db": log_spectral_distance}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", type=Path, help="folder with manifest.jsonl from 'dmaster demaster'")
    parser.add_argument("--model", default=None, help="'param' (default), 'unet' or a checkpoint path")
    parser.add_argument("--split", default=None, help="only pairs of this split (train, val, test)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many pairs")
    parser.add_argument("--out", type=Path, default=None, help="write the scores as JSON here")


def run(args: argparse.Namespace) -> int:
    manifest = args.pairs / "manifest.jsonl"
    if not manifest.is_file():
        print(f"dmaster evaluate: error: {manifest} not found; run 'dmaster demaster' first", file=sys.stderr)
        return 2
    records = [r for r in read_jsonl(manifest) if args.split is None or r.get("split") == args.split]
    records = records[: args.limit] if args.limit else records
    if not records:
        print("dmaster evaluate: error: no pairs to score", file=sys.stderr)
        return 2
    model = resolve_model(args.model)
    rows = []
    for record in tqdm(records, desc="evaluating", unit="pair"):
        clean = load_audio(args.pairs / record["original"], model.sample_rate)
        degraded = load_audio(args.pairs / record["degraded"], model.sample_rate)
        restored = torch.as_tensor(master(degraded, model.sample_rate, model=args.model, peak_ceiling_db=0.0).audio)
        row = {"id": record["id"]}
        for label, audio in (("degraded", degraded), ("restored", restored)):
            for name, metric in METRICS.items():
                row[f"{label}_{name}"] = float(metric(audio[None], clean[None]))
        rows.append(row)
    means = {key: sum(r[key] for r in rows) / len(rows) for key in rows[0] if key != "id"}
    print(f"{len(rows)} pairs      {'MR-STFT':>8} {'SI-SDR dB':>10} {'LSD dB':>8}")
    for label in ("degraded", "restored"):
        print(f"{label:<15} {means[f'{label}_mrstft']:8.3f} {means[f'{label}_si_sdr_db']:10.2f} "
              f"{means[f'{label}_lsd_db']:8.2f}")
    if args.out:
        write_json_atomic(args.out, {"mean": means, "pairs": rows})
    return 0
