"""Tracks (input files and their ids) and train/validation/test splits.

A split is decided per **track**, never per window, from a SHA-256 hash of the
track id: deterministic on every machine and Python version (unlike ``hash()``),
stable when tracks are added or removed, and no track is ever in two splits.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from .audio import AUDIO_EXTENSIONS

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


def track_id(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """The path of ``path`` relative to ``root`` without its extension, folders joined
    with ``_`` so that it can name output files: ``root/000/000002.mp3`` → ``"000_000002"``."""
    relative = Path(path).relative_to(root).with_suffix("")
    return "_".join(relative.parts)


@dataclass(frozen=True)
class Track:
    """An input file and its id (relative path without extension, ``/`` → ``_``)."""

    path: Path
    id: str


def find_tracks(root: str | Path, subfolders: Sequence[str] | None = None) -> list[Track]:
    """Audio files under ``root`` (or only under ``root/<subfolder>``), sorted by relative path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"input folder {root} does not exist or is not a folder")
    folders = [root / s for s in subfolders] if subfolders else [root]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise FileNotFoundError(f"subfolders not found: {', '.join(missing)}")
    paths = {p for f in folders for p in f.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()}
    return [Track(p, track_id(p, root)) for p in sorted(paths, key=lambda p: p.relative_to(root).as_posix())]


def unit_hash(text: str) -> float:
    """A number in ``[0, 1)`` from the SHA-256 of ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def split_of(track: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> Split:
    """``"train"``, ``"val"`` or ``"test"`` for a track id, with the given expected fractions."""
    if not (0 <= val_fraction <= 1 and 0 <= test_fraction <= 1 and val_fraction + test_fraction <= 1):
        raise ValueError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must lie in "
                         f"[0, 1] and sum to at most 1")
    position = unit_hash(track)
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


def check_split(split: str) -> Split:
    """Return ``split`` if it is one of ``"train"``, ``"val"``, ``"test"``; else raise ``ValueError``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split  # type: ignore[return-value]
