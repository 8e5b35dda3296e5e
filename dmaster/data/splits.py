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

import numpy as np

from ..audio import AUDIO_EXTENSIONS

__all__ = ["SPLITS", "Split", "Track", "check_split", "find_tracks", "split_of", "spread", "track_id", "unit_hash"]

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


def track_id(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """The path of ``path`` relative to ``root`` without its extension, folders joined with ``_``
    so that it can name output files.

    Args:
        path: an audio file under ``root``.
        root: the folder of music.

    >>> track_id("music/000/000002.mp3", "music")
    '000_000002'
    """
    relative = Path(path).relative_to(root).with_suffix("")
    return "_".join(relative.parts)


@dataclass(frozen=True)
class Track:
    """An input file and its id.

    Args:
        path: the audio file.
        id: its :func:`track_id` (relative path without extension, ``/`` → ``_``).
    """

    path: Path
    id: str


def find_tracks(root: str | Path, subfolders: Sequence[str] | None = None) -> list[Track]:
    """Audio files under ``root``, sorted by relative path.

    Args:
        root: the folder of music, searched recursively.
        subfolders: only these subfolders of ``root`` (ids stay relative to ``root``).

    Raises:
        FileNotFoundError: when ``root`` or a subfolder does not exist.
    """
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
    """A number in ``[0, 1)`` from the SHA-256 of ``text``: the same on every machine.

    Args:
        text: any text.
    """
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def split_of(track: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> Split:
    """``"train"``, ``"val"`` or ``"test"`` for a track id.

    Args:
        track: the track id.
        val_fraction: expected fraction of tracks in ``"val"``.
        test_fraction: expected fraction of tracks in ``"test"``.

    >>> split_of("000_000002")
    'train'
    """
    if not (0 <= val_fraction <= 1 and 0 <= test_fraction <= 1 and val_fraction + test_fraction <= 1):
        raise ValueError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must lie in "
                         f"[0, 1] and sum to at most 1")
    position = unit_hash(track)
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


def spread(tracks: list[Track], count: int | None) -> list[Track]:
    """At most ``count`` of ``tracks`` (all of them when ``None``), spread evenly over the list: over every
    package of a :func:`find_tracks` list, which is sorted by path.

    >>> spread(list("abcdefg"), 3)
    ['a', 'd', 'g']
    """
    if count is None or len(tracks) <= count:
        return tracks
    return [tracks[int(i)] for i in np.linspace(0, len(tracks) - 1, count).round()]


def check_split(split: str) -> Split:
    """Return ``split`` if it is one of ``"train"``, ``"val"``, ``"test"``; else raise ``ValueError``.

    Args:
        split: the name to check.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split  # type: ignore[return-value]
