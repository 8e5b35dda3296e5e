"""``dmaster demaster INPUT -o OUTPUT``: degrade a folder of mastered music into (original, degraded) pairs.

The flags of :func:`dmaster.data.generate.generate`, which describes the outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.generate import GenerationError, generate
from ..data.pairs import OutputLayout

__all__ = ["add_arguments", "parse_shard", "run"]

DEFAULT_INPUT = Path("data/raw/fma_small")
DEFAULT_OUTPUT = Path("experiments/output_full")


def parse_shard(text: str) -> tuple[int, int]:
    """``"k/N"`` → ``(k, N)`` with ``1 ≤ k ≤ N`` (an ``argparse`` type).

    Args:
        text: the flag's value, e.g. ``"2/4"``.

    Raises:
        argparse.ArgumentTypeError: for anything else.

    >>> parse_shard("2/4")
    (2, 4)
    """
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like k/N (e.g. 1/4), got {text!r}") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"shard k/N needs 1 ≤ k ≤ N, got {text!r}")
    return index, count


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``demaster`` command's arguments to ``parser``.

    Args:
        parser: the parser of the ``demaster`` command.
    """
    parser.add_argument("input", nargs="?", type=Path, default=DEFAULT_INPUT, metavar="INPUT",
                        help=f"folder of mastered music, searched recursively (default: {DEFAULT_INPUT})")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, metavar="OUTPUT",
                        help=f"output folder (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--subfolders", nargs="+", metavar="NAME",
                        help="only these subfolders of INPUT (e.g. 000 001); ids stay relative to INPUT")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parameters (default: 0)")
    parser.add_argument("--device", default="cpu", help="device the chain runs on: cpu, cuda, cuda:1 ...")
    parser.add_argument("--batch-size", type=_positive_int, default=8, metavar="N",
                        help="tracks degraded at once (default: 8)")
    parser.add_argument("--shard", type=parse_shard, default=(1, 1), metavar="k/N",
                        help="do only tracks k, k+N, k+2N ... of the sorted list (1-based; default: 1/1)")
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="at most this many tracks (of this shard)")
    parser.add_argument("--no-spectrograms", action="store_true", help="skip the PNGs (faster)")
    parser.add_argument("--sample-rate", type=_positive_int, default=44100, metavar="HZ",
                        help="working rate in Hz (default: 44100)")
    parser.add_argument("--max-seconds", type=float, default=30.0, metavar="SECONDS",
                        help="keep only the first seconds of longer inputs; 0 keeps everything (default: 30)")
    parser.add_argument("--workers", type=_positive_int, default=2, metavar="N", help="decoding threads (default: 2)")


def run(args: argparse.Namespace) -> int:
    """Generate the pairs; 0 when done (unusable inputs are listed, not fatal), 2 for bad arguments."""
    try:
        summary = generate(args.input, args.output, subfolders=args.subfolders, seed=args.seed,
                           device=args.device, batch_size=args.batch_size, shard=args.shard, limit=args.limit,
                           spectrograms=not args.no_spectrograms, sample_rate=args.sample_rate,
                           max_seconds=args.max_seconds or None, workers=args.workers)
    except (GenerationError, FileNotFoundError) as error:
        print(f"dmaster demaster: error: {error}", file=sys.stderr)
        return 2
    failed = f"; {len(summary.failures)} unusable (listed in {OutputLayout(args.output).errors})" \
        if summary.failures else ""
    print(f"{summary.written} pairs written, {summary.already_done} already done{failed}; "
          f"{summary.audio_seconds:.0f} s of audio in {summary.elapsed_s:.1f} s", file=sys.stderr)
    return 0
