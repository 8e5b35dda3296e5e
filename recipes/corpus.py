"""Build the training corpus: freely licensed music from Debian packages (``recipes/cleared_music.json``).

    python recipes/corpus.py                       # every package of PACKAGES into data/raw/debian_music
    python recipes/corpus.py --packages zaz-data   # only some (the others already there are kept)

For each package of :data:`PACKAGES` it

1. **fetches** ``NAME_*.deb`` with ``apt-get download`` into the cache (``data/debs``) unless one is there already:
   nothing is downloaded twice, and the cached version is the one used;
2. **unpacks** only the package's music files (or the zip archives holding them), its upstream credit files and its
   ``debian/copyright`` (``dpkg-deb --fsys-tarfile``, read as a stream) into ``data/debian_packages/NAME``;
3. **collects** the tracks: files of at least :data:`MIN_RATE` Hz and :data:`MIN_SECONDS` s that the package's
   rules do not exclude (ambience, speech, sped-up or other versions of a track that is kept), each decoded in full
   once (an unreadable, non-finite or near-silent file is reported and skipped: one bad file never stops the run),
   byte-identical copies kept once. They are copied as they are (Ogg Vorbis; Ogg Opus with the ``.ogg`` ending the
   trainer looks for; FLAC; WAV); Frets on Fire stems are mixed (``prepare_debian_music.mix_stems``). Each goes to
   ``OUT/<folder>/<name>``, where the trainer's ``--music-root OUT`` finds it; its split is
   :func:`dmaster.data.splits.split_of` of its track id, the one the trainer computes;
4. records each track's licence: a per-file licence from the upstream credits where the package gives one
   (:attr:`Package.licences`), else the last matching ``Files:`` stanza of a machine-readable ``debian/copyright``,
   else the package's licence read from its ``debian/copyright`` by hand (:attr:`Package.licence`);
5. writes ``OUT/manifest.jsonl`` (one line per track: track id, path, package, version, source inside the package,
   licence and where it was read, seconds, rate, channels, format, peak and RMS level, SHA-256, split),
   ``OUT/corpus.json`` (per package: deb, licence, counts, every file left out with the reason),
   ``OUT/licences/NAME/`` (``debian/copyright`` and the upstream credit files) and the table between the markers of
   ``docs/corpus.md``.

The four packages used before keep the folders (``fretsonfire``, ``hyperrogue``, ``wesnoth``) and file names that
``prepare_debian_music.py`` gives them, so their track ids and splits do not change. A rerun does nothing for a
package whose deb and rules are unchanged; every output is written atomically. Only packages that
``recipes/cleared_music.json`` lists as cleared are collected; the external check's packages (its
``external_check``, ``prepare_debian_music.EXTERNAL_PACKAGES``) are refused by name, and the run fails if any of
their music is under OUT.

    python recipes/corpus.py --cleared-table       # only write the cleared list's table into docs/corpus.md
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_debian_music import EXTERNAL_FOLDERS, EXTERNAL_PACKAGES, mix_stems, slug  # noqa: E402

from dmaster.audio import AUDIO_EXTENSIONS, atomic_path  # noqa: E402
from dmaster.data.splits import SPLITS, split_of, track_id  # noqa: E402

MIN_RATE = 32000
"""Files below this sample rate (Hz) are left out."""
MIN_SECONDS = 25.0
"""Files shorter than this (seconds) are left out."""
MIN_RMS_DB = -50.0
"""Files whose RMS level over the whole file (dBFS) is below this are left out as near-silent."""
RULES_VERSION = 1
"""Bumped when the selection rules change, so that a rerun collects every package again."""
NOT_WRITTEN = "not written (a rerun tries again)"
"""How a file that could not be written is reported; the other reasons are final for the deb."""
CLEARED_MUSIC = Path(__file__).with_name("cleared_music.json")
"""The music cleared for training and fitting (``cleared``, ``cleared_small``) and the external check's packages
(``external_check``), with where each keeps its music, its licences and the survey's counts."""
CLEARED = json.loads(CLEARED_MUSIC.read_text())
""":data:`CLEARED_MUSIC` as read."""
CLEARED_PACKAGES = tuple(p["package"] for p in CLEARED["cleared"] + CLEARED["cleared_small"])
"""The packages cleared for training and fitting: a package not listed is not cleared."""


@dataclass(frozen=True)
class Package:
    """A Debian package and where its music is.

    Args:
        name: The Debian package.
        folder: The folder under the corpus root (the first part of each track id).
        music: Glob patterns of the music files, relative to the unpacked root (``usr/share/...``): ``*`` and ``?``
            stay within a folder, ``**/`` spans folders, ``{a,b}`` gives alternatives; ``ARCHIVE!PATTERN`` matches
            the members of a zip archive. A track is named by its path below the pattern's leading folders that
            hold no wildcard, folders joined with ``_``.
        licence: The music's licence as read by hand from ``debian/copyright``: used where that file is not
            machine-readable.
        source: ``(installed, upstream)``: an installed path starting with ``installed`` is at ``upstream`` + the
            rest in the source tree that ``debian/copyright``'s ``Files:`` patterns name.
        exclude: ``(pattern, reason)``: files whose path below the leading folders matches are left out.
        licences: ``(pattern, licence, where)``: per-file licences from upstream credits, which take precedence
            (first match), with where they were read.
        credits: Glob patterns of upstream credit files kept with the licences.
        stems: Each matched file is the ``song.ogg`` of a Frets on Fire song folder, mixed with its other stems.
    """

    name: str
    folder: str
    music: tuple[str, ...]
    licence: str
    source: tuple[str, str] = ("", "")
    exclude: tuple[tuple[str, str], ...] = ()
    licences: tuple[tuple[str, str, str], ...] = ()
    credits: tuple[str, ...] = ()
    stems: bool = False

    def excluded(self, relative: str) -> str | None:
        """Why the file at ``relative`` (below the leading folders) is left out, or ``None``."""
        return next((reason for pattern, reason in self.exclude if glob_match(relative, pattern)), None)

    def upstream_path(self, installed: str) -> str:
        """The path in the source tree of an installed file (a zip member: the archive's folder + the member)."""
        outer, _, inner = installed.partition("!")
        path = f"{outer.rsplit('/', 1)[0]}/{inner}" if inner else outer
        prefix, upstream = self.source
        return upstream + path[len(prefix):] if path.startswith(prefix) else path

    def signature(self) -> str:
        """A hash of the package's rules and the global ones: when it changes, a rerun collects the package again."""
        rules = {"package": asdict(self), "rate": MIN_RATE, "seconds": MIN_SECONDS, "rms": MIN_RMS_DB,
                 "version": RULES_VERSION}
        return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:16]


# -- the packages --------------------------------------------------------------------------------------------------

G = "usr/share/games/"
SAME = "another version of a track that is kept"
PACKAGES: tuple[Package, ...] = (
    # the four packages of the first corpus (their folders and names as prepare_debian_music.py gives them)
    Package("fretsonfire-songs-sectoid", "fretsonfire", (G + "fretsonfire/data/songs/{sectoid}/*/song.ogg",),
            "Expat", stems=True),
    Package("fretsonfire-songs-muldjord", "fretsonfire", (G + "fretsonfire/data/songs/{muldjord}/*/song.ogg",),
            "CC-BY-SA-3.0", stems=True),
    Package("hyperrogue-music", "hyperrogue", ("usr/share/hyperrogue/music/*.ogg",), "GPL-2+",
            source=("usr/share/hyperrogue/", "")),
    Package("wesnoth-1.16-music", "wesnoth", (G + "wesnoth/1.16/data/core/music/*.ogg",), "GPL-2+"),
    # the larger soundtracks of cleared_music.json
    Package("warzone2100-music", "warzone2100", (G + "warzone2100/music/**/*.opus",), "GPL-2+",
            source=(G + "warzone2100/", "data/"),
            exclude=(("albums/original_soundtrack/track3.opus", f"{SAME} (albums/aftermath_soundtrack/"
                      "track3_enhanced.opus is derived from it)"),
                     ("menu.opus", f"{SAME} (albums/aftermath_soundtrack/menu_enhanced.opus)")),
            licences=(("albums/{aftermath,legacy}_soundtrack/track3_enhanced.opus", "GPL-2+",
                       "albums/aftermath_soundtrack/license.txt"),
                      ("albums/{aftermath,legacy}_soundtrack/*", "CC-BY-SA-3.0+ or GPL-2+",
                       "albums/*/license.txt")),
            credits=(G + "warzone2100/music/albums/*/license.txt", G + "warzone2100/music/albums/*/album.json")),
    Package("ufoai-music", "ufoai", (G + "ufoai/base/0music.pk3!music/*.ogg",), "GPL-2+",
            source=(G + "ufoai/", "")),
    Package("naev-data", "naev", ("usr/share/naev/dat/snd/music/*.ogg",), "GPL-3+", source=("usr/share/naev/", "")),
    Package("supertux-data", "supertux", (G + "supertux2/music/**/*.ogg",), "GPL-3+",
            source=(G + "supertux2/", "data/"),
            exclude=(("retro/cave_old.ogg", f"{SAME} (an earlier antarctic/cave.ogg)"),)),
    Package("widelands-data", "widelands", (G + "widelands/data/music/*.ogg",), "GPL-2+",
            source=(G + "widelands/", "")),
    Package("hedgewars-data", "hedgewars", (G + "hedgewars/Data/Music/*.ogg",), "GPL-2",
            source=(G + "hedgewars/", "share/hedgewars/"), credits=(G + "hedgewars/Data/Music/credits.txt",)),
    Package("supertuxkart-data", "supertuxkart",
            (G + "supertuxkart/data/music/*.ogg", G + "supertuxkart/data/tracks/*/*.ogg"), "GPL-3+",
            source=(G + "supertuxkart/", ""),
            exclude=(("*_fast.ogg", f"{SAME} (the fast version)"), ("farm_f.ogg", f"{SAME} (the fast farm.ogg)"),
                     ("black_forest/steamLocomotive.ogg", "a sound effect"),
                     ("introcutscene2/nolok_speech.ogg", "speech")),
            credits=(G + "supertuxkart/data/music/*.music",)),
    Package("colobot-common-sounds", "colobot", (G + "colobot/music/*.ogg",), "GPL-3+",
            source=(G + "colobot/", "data/")),
    Package("marsshooter-data", "marsshooter",
            (G + "marsshooter/audio/music/*.ogg", G + "marsshooter/audio/{menu,tutorial}.ogg"), "CC-BY-SA-3.0",
            source=(G + "marsshooter/", "data/")),
    Package("freedroidrpg-data", "freedroidrpg", ("usr/share/freedroidrpg/data/sound/music/*.ogg",), "GPL-2+",
            source=("usr/share/freedroidrpg/", "")),
    Package("unknown-horizons", "unknown_horizons", ("usr/share/unknown-horizons/content/audio/music/**/*.ogg",),
            "CC-BY-SA-3.0", source=("usr/share/unknown-horizons/", "")),
    Package("flare-game", "flare", (G + "flare/mods/fantasycore/music/*.ogg",), "CC-BY-SA-3.0+",
            source=(G + "flare/", ""), exclude=(("wind_ambient.ogg", "an ambience loop"),)),
    Package("trackballs-data", "trackballs", (G + "trackballs/music/*.ogg",), "GPL-2+",
            source=(G + "trackballs/", "share/"), credits=(G + "trackballs/music/README",)),
    Package("redeclipse-data", "redeclipse", (G + "redeclipse/data/sounds/music/*.ogg",), "CC-BY-SA-3.0",
            source=(G + "redeclipse/", ""), credits=(G + "redeclipse/data/sounds/music/readme.txt",)),
    Package("pushover-data", "pushover", ("usr/share/pushover/themes/*.ogg",), "GPL-3+",
            source=("usr/share/pushover/", "data/")),
    Package("megaglest-data", "megaglest",
            (G + "megaglest/techs/megapack/factions/*/music/*.ogg", G + "megaglest/data/core/menu/music/*.ogg"),
            "CC-BY-SA-3.0", source=(G + "megaglest/", "")),
    Package("warmux-data", "warmux", (G + "warmux/music/{ingame,menu}/*.ogg",), "GPL-2+",
            exclude=(("ingame/Olivier_Militon.-.Apnee2.ogg", f"{SAME} (Apnee.ogg, of the same length)"),)),
    Package("wizznic-data", "wizznic", (G + "wizznic/packs/000_wizznic/music/*.ogg",), "GPL-3",
            source=(G + "wizznic/", "data/")),
    Package("openclonk-data", "openclonk", (G + "openclonk/Music.ocg/*.ogg",), "CC-BY-3.0 or CC0-1.0",
            licences=(("{IslandDreams,Motorway,TheSkylands,UrbanBolero,LucidDream,Offshore,@CrushedIceCocktail}.ogg",
                       "CC-BY-3.0", "Music.ocg/authors.txt (K-Pone)"),),
            credits=(G + "openclonk/Music.ocg/authors.txt",)),
    Package("davegnukem-data", "davegnukem", (G + "davegnukem/music/eric_matyas/*.ogg",), "Expat or GPL-2 or GPL-3",
            source=(G + "davegnukem/", "data/")),
    Package("enigma-data", "enigma", (G + "enigma/music/{game,menu}/*.ogg",), "GPL-2"),
    Package("zaz-data", "zaz", (G + "zaz/mus*.ogg",), "CC-BY-SA-3.0", source=(G + "zaz/", "data/")),
    Package("freecol", "freecol", (G + "freecol/default/resources/music/default/*.ogg",), "CC-BY-4.0",
            source=(G + "freecol/", "data/"), credits=(G + "freecol/default/resources/music/default/README.md",)),
    Package("ardentryst", "ardentryst", (G + "ardentryst/Music/*.ogg",), "CC-BY-SA-3.0",
            source=(G + "ardentryst/", ""), exclude=(("theme1_raw.ogg", f"{SAME} (the raw theme1.ogg)"),)),
)
"""The corpus: packages of :data:`CLEARED_PACKAGES` (0ad-data, 1.3 GB, and the smaller ones left out)."""


# -- globs ---------------------------------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            end = pattern.index("}", i)
            out.append("(?:" + "|".join(re.escape(a) for a in pattern[i + 1 : end].split(",")) + ")")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def glob_match(path: str, pattern: str) -> bool:
    """Whether ``path`` (``/``-separated) matches the glob ``pattern`` (see :class:`Package`), case-sensitively."""
    return re.fullmatch(_glob_regex(pattern), path) is not None


def fixed_folders(pattern: str) -> str:
    """The leading folders of ``pattern`` that hold no wildcard, with a trailing ``/`` (or ``""``)."""
    fixed = []
    for part in pattern.split("/")[:-1]:
        if any(c in part for c in "*?{["):
            break
        fixed.append(part + "/")
    return "".join(fixed)


# -- licences ------------------------------------------------------------------------------------------------------


def parse_copyright(text: str) -> list[tuple[list[str], str]] | None:
    """The ``Files:`` stanzas of a machine-readable ``debian/copyright`` as ``(patterns, licence)`` in file order
    (the licence is the first line of ``License:``), or ``None`` if the file is not machine-readable."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    if not paragraphs or not re.match(r"(?i)format(-specification)?:", paragraphs[0].lstrip()):
        return None
    stanzas = []
    for paragraph in paragraphs[1:]:
        fields: dict[str, str] = {}
        key = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields and "license" in fields:
            stanzas.append((fields["files"].split(), fields["license"].split("\n")[0].strip()))
    return stanzas


def copyright_licence(stanzas: list[tuple[list[str], str]], path: str) -> tuple[str, str] | None:
    """``(licence, pattern)`` of the last stanza with a ``Files:`` pattern matching ``path``, or ``None``.

    Args:
        stanzas: From :func:`parse_copyright`.
        path: A path in the source tree (``Package.upstream_path``); a pattern's ``*`` matches across folders, and
            the last match wins, as the format says.
    """
    found = None
    for patterns, licence in stanzas:
        for pattern in patterns:
            regex = re.escape(pattern.removeprefix("./")).replace(r"\*", ".*").replace(r"\?", ".")
            if re.fullmatch(regex, path.removeprefix("./")):
                found = (licence, pattern)
    return found


def licence_of(package: Package, stanzas: list[tuple[list[str], str]] | None, source: str,
               relative: str) -> tuple[str, str]:
    """``(licence, where it was read)`` of one file: upstream credits, else ``debian/copyright``, else by hand.

    Args:
        package: Its package.
        stanzas: The package's ``debian/copyright`` (:func:`parse_copyright`; ``None``: not machine-readable).
        source: Its path in the package (``ARCHIVE!MEMBER`` in a zip).
        relative: Its path below its pattern's leading folders (what :attr:`Package.licences` match).
    """
    for pattern, licence, where in package.licences:
        if glob_match(relative, pattern):
            return licence, f"upstream credits: {where}"
    if stanzas is not None:
        found = copyright_licence(stanzas, package.upstream_path(source))
        if found:
            return found[0], f"debian/copyright: Files: {found[1]}"
    return package.licence, "debian/copyright (not machine-readable), read by hand"


# -- fetching and unpacking ----------------------------------------------------------------------------------------


def check_not_external(names: Iterable[str]) -> None:
    """Raise ``SystemExit`` if any of ``names`` is one of the external check's packages."""
    refused = sorted(set(names) & set(EXTERNAL_PACKAGES))
    if refused:
        raise SystemExit(f"refused: {', '.join(refused)}: the external check's music (recipes/cleared_music.json: no "
                         f"model, fit or choice of settings may see it) never enters the training corpus")


def check_cleared(names: Iterable[str]) -> None:
    """Raise ``SystemExit`` if any of ``names`` is not a package of :data:`CLEARED_PACKAGES`."""
    names = list(names)
    check_not_external(names)
    refused = sorted(set(names) - set(CLEARED_PACKAGES))
    if refused:
        raise SystemExit(f"refused: {', '.join(refused)}: not cleared (recipes/cleared_music.json does not list it)")


def cached_deb(name: str, cache: Path) -> Path | None:
    """The cached ``NAME_VERSION_ARCH.deb`` of package ``name`` (the last by name if several), or ``None``."""
    debs = sorted(p for p in cache.glob(f"{name}_*.deb") if p.name.split("_")[0] == name)
    return debs[-1] if debs else None


def fetch(name: str, cache: Path) -> Path:
    """The package's deb in ``cache``, downloaded with ``apt-get download`` only if none is there.

    Args:
        name: The Debian package (one of the external check's is refused).
        cache: The folder of downloaded debs.
    """
    check_not_external([name])
    deb = cached_deb(name, cache)
    if deb is None:
        cache.mkdir(parents=True, exist_ok=True)
        print(f"{name}: downloading", flush=True)
        subprocess.run(["apt-get", "download", "-q", name], cwd=cache, check=True)  # writes NAME_*.deb when complete
        deb = cached_deb(name, cache)
        if deb is None:
            raise RuntimeError(f"apt-get download {name} left no {name}_*.deb in {cache}")
    return deb


def unpack_patterns(package: Package) -> list[str]:
    """What :func:`unpack` takes out of the package: the music files (or their archives; every stem of a song),
    the credit files and ``debian/copyright``."""
    music = [p.split("!")[0] for p in package.music]
    if package.stems:
        music = [p.rsplit("/", 1)[0] + "/*.ogg" for p in music]
    return music + list(package.credits) + [f"usr/share/doc/{package.name}/copyright"]


def unpack(package: Package, deb: Path, unpacked: Path) -> Path:
    """Extract the package's music, credit and copyright files from ``deb``; returns the folder they are in.

    Args:
        package: The package.
        deb: Its deb.
        unpacked: The folder of unpacked packages: this one goes to ``unpacked/NAME`` (staged, then renamed), once
            per deb and list of paths (a marker ``NAME.unpacked`` names them).
    """
    target, marker = unpacked / package.name, unpacked / f"{package.name}.unpacked"
    patterns = unpack_patterns(package)
    done = json.dumps({"deb": deb.name, "paths": patterns})
    if target.is_dir() and marker.is_file() and marker.read_text().strip() == done:
        return target
    staging = unpacked / f".{package.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as process:
        with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if ".." in PurePosixPath(name).parts or not any(glob_match(name, p) for p in patterns):
                    continue
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                if member.issym():  # kept as a link within the package (readable if its target was taken out too)
                    link = member.linkname
                    inside = posixpath.normpath(link.lstrip("/") if link.startswith("/")
                                                else posixpath.join(posixpath.dirname(name), link))
                    if inside != ".." and not inside.startswith("../"):
                        path.symlink_to(os.path.relpath(staging / inside, path.parent))
                elif member.isfile():
                    with tar.extractfile(member) as source, open(path, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
    if process.returncode != 0:
        raise RuntimeError(f"dpkg-deb --fsys-tarfile {deb} failed (exit {process.returncode})")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    write_text(marker, done + "\n")
    return target


# -- collecting ----------------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A file that may become a track.

    Args:
        source: Its path in the package (``ARCHIVE!MEMBER`` for a zip member).
        relative: Its path below its pattern's leading folders (names the track; the package's rules match it).
        read: Returns its bytes.
        path: Its file on disk (``None`` for a zip member).
    """

    source: str
    relative: str
    read: Callable[[], bytes]
    path: Path | None = None


def candidates(package: Package, root: Path, zips: list[zipfile.ZipFile]) -> Iterator[Candidate]:
    """The files that the package's patterns match, in order.

    Args:
        package: The package.
        root: Where it was unpacked.
        zips: The zip archives opened are appended here, for the caller to close.
    """
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())
    seen: set[str] = set()
    for pattern in package.music:
        outer, _, inner = pattern.partition("!")
        for name in (n for n in files if glob_match(n, outer)):
            if not inner:
                if name not in seen:
                    seen.add(name)
                    yield Candidate(name, name[len(fixed_folders(outer)):], (root / name).read_bytes, root / name)
                continue
            try:
                archive = zipfile.ZipFile(root / name)
            except (OSError, zipfile.BadZipFile) as error:
                yield Candidate(name, "", _raise(error))  # reported as unusable
                continue
            zips.append(archive)
            for member in sorted(m for m in archive.namelist() if glob_match(m, inner)):
                if f"{name}!{member}" not in seen:
                    seen.add(f"{name}!{member}")
                    yield Candidate(f"{name}!{member}", member[len(fixed_folders(inner)):],
                                    lambda archive=archive, member=member: archive.read(member))


def _raise(error: Exception) -> Callable[[], bytes]:
    def read() -> bytes:
        raise error

    return read


def target_name(package: Package, relative: str, container: str) -> str:
    """``FOLDER/NAME.EXT`` of a file in the corpus: Ogg (Vorbis or Opus) as ``.ogg``, FLAC, WAV and MP3 as they are,
    stems mixed to FLAC.

    Args:
        package: Its package.
        relative: Its path below its pattern's leading folders.
        container: Its container as libsndfile names it (``"OGG"``, ``"FLAC"``, ...).

    Raises:
        ValueError: For a container whose files the trainer would not find.
    """
    path = PurePosixPath(relative)
    if package.stems:
        return f"{package.folder}/{slug(path.parent.as_posix())}.flac"
    ending = ".ogg" if container == "OGG" else path.suffix.lower()
    if ending not in AUDIO_EXTENSIONS:
        raise ValueError(f"{container} files are not among the endings the trainer reads ({AUDIO_EXTENSIONS})")
    return f"{package.folder}/{slug(path.with_suffix('').as_posix())}{ending}"


def measure(file) -> dict:
    """Decode ``file`` (a path or a binary file object) in full: seconds, rate, channels, format, peak and RMS
    level (dBFS).

    Raises:
        ValueError: If it holds non-finite samples or no frames.
    """
    with sf.SoundFile(file) as audio:
        rate, channels, container, subtype = audio.samplerate, audio.channels, audio.format, audio.subtype
        frames, peak, energy = 0, 0.0, 0.0
        for block in audio.blocks(blocksize=1 << 18, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                raise ValueError("non-finite samples")
            frames += len(block)
            peak = max(peak, float(np.abs(block).max(initial=0.0)))
            energy += float(np.square(block, dtype=np.float64).sum())
    if frames == 0:
        raise ValueError("no audio frames")
    rms = math.sqrt(energy / (frames * channels))
    return {"seconds": round(frames / rate, 3), "rate": rate, "channels": channels,
            "format": f"{container}/{subtype}", "peak_db": round(20 * math.log10(max(peak, 1e-12)), 2),
            "rms_db": round(20 * math.log10(max(rms, 1e-12)), 2)}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, unless the file there holds them already."""
    if path.is_file() and sha256(path.read_bytes()) == sha256(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, unless the file there holds it already."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def collect(package: Package, root: Path, version: str, out: Path, known: dict[str, dict],
            taken: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """Write the package's tracks under ``out``; returns (their manifest records, the files left out with reasons).

    Args:
        package: The package.
        root: Where it was unpacked.
        version: Its Debian version (recorded).
        out: The corpus root.
        known: This package's manifest records from an earlier run, by path: one whose file is there with the same
            source and content hash is kept without decoding again.
        taken: Content hash → path and track id → path of every other package's track: byte-identical copies and
            clashing names are left out. This package's tracks are added.
    """
    copyright_file = root / f"usr/share/doc/{package.name}/copyright"
    stanzas = parse_copyright(copyright_file.read_text(errors="replace")) if copyright_file.is_file() else None
    records, skipped, zips = [], [], []
    try:
        for candidate in candidates(package, root, zips):
            reason = package.excluded(candidate.relative)
            if reason is None:
                try:
                    reason, record = _track(package, candidate, stanzas, version, out, known, taken)
                except Exception as error:  # one bad file never stops the run
                    reason = f"unusable: {type(error).__name__}: {error}"
            if reason is not None:
                skipped.append({"source": candidate.source, "reason": reason})
                continue
            taken[record["sha256"]] = taken[record["track"]] = record["path"]
            records.append(record)
    finally:
        for archive in zips:
            archive.close()
    return records, skipped


def _track(package: Package, candidate: Candidate, stanzas, version: str, out: Path, known: dict[str, dict],
           taken: dict[str, str]) -> tuple[str | None, dict | None]:
    """``(None, record)`` for a file that becomes a track (written under ``out``), or ``(reason, None)``."""
    data = candidate.read()
    digest = sha256(data)
    if digest in taken:
        return f"the same file as {taken[digest]}", None
    info = sf.info(io.BytesIO(data))
    if info.samplerate < MIN_RATE:
        return f"{info.samplerate} Hz is below {MIN_RATE} Hz", None
    if info.duration < MIN_SECONDS:
        return f"{info.duration:.1f} s is shorter than {MIN_SECONDS:g} s", None
    name = target_name(package, candidate.relative, info.format)
    target = out / name
    identity = track_id(target, out)
    if identity in taken:
        return f"its track id {identity} is taken by {taken[identity]}", None
    licence, where = licence_of(package, stanzas, candidate.source, candidate.relative)
    old = known.get(name)
    if old and old["source"] == candidate.source and old["sha256"] == digest and target.is_file():
        return None, dict(old, licence=licence, licence_from=where, split=split_of(identity))
    try:
        if package.stems and not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            mix_stems(candidate.path.parent, target)
    except OSError as error:
        return f"{NOT_WRITTEN}: {error}", None
    stats = measure(target if package.stems else io.BytesIO(data))
    if stats["seconds"] < MIN_SECONDS:
        return f"decodes to {stats['seconds']:.1f} s, shorter than {MIN_SECONDS:g} s", None
    if stats["rms_db"] < MIN_RMS_DB:
        return f"near-silent: RMS {stats['rms_db']:.1f} dBFS is below {MIN_RMS_DB:g} dBFS", None
    try:
        if not package.stems:
            write_bytes(target, data)
    except OSError as error:
        return f"{NOT_WRITTEN}: {error}", None
    return None, {"track": identity, "path": name, "package": package.name, "version": version,
                  "source": candidate.source, "licence": licence, "licence_from": where, **stats, "sha256": digest,
                  "split": split_of(identity)}


# -- the manifest, the summary and the docs ------------------------------------------------------------------------


def read_manifest(out: Path) -> list[dict]:
    path = out / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def write_manifest(out: Path, records: list[dict]) -> None:
    write_text(out / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n"
                                               for r in sorted(records, key=lambda r: r["path"])))


def summarise(records: list[dict], packages: dict[str, dict], out: Path) -> dict:
    """``corpus.json``: the rules; per package its deb, version, licence, tracks, seconds, splits, licences, files
    left out; and the totals (tracks, seconds, tracks and seconds per split, bytes on disk).

    Args:
        records: The manifest.
        packages: Per package, what :func:`collect_package` recorded.
        out: The corpus root.
    """
    packages = {name: dict(info, tracks=0, seconds=0.0, splits={}, licences={}) for name, info in packages.items()}
    total = {"tracks": 0, "seconds": 0.0, "splits": {}, "split_seconds": {}, "bytes": 0}
    for r in records:
        p = packages[r["package"]]
        p["tracks"] += 1
        p["seconds"] += r["seconds"]
        p["splits"][r["split"]] = p["splits"].get(r["split"], 0) + 1
        p["licences"][r["licence"]] = p["licences"].get(r["licence"], 0) + 1
        total["tracks"] += 1
        total["seconds"] += r["seconds"]
        total["splits"][r["split"]] = total["splits"].get(r["split"], 0) + 1
        total["split_seconds"][r["split"]] = round(total["split_seconds"].get(r["split"], 0.0) + r["seconds"], 3)
        total["bytes"] += (out / r["path"]).stat().st_size
    for p in packages.values():
        p["seconds"] = round(p["seconds"], 1)
    total["seconds"] = round(total["seconds"], 1)
    return {"rules": {"min_rate": MIN_RATE, "min_seconds": MIN_SECONDS, "min_rms_db": MIN_RMS_DB,
                      "rules_version": RULES_VERSION, "external_packages_refused": list(EXTERNAL_PACKAGES)},
            "packages": packages, "total": total}


def docs_table(summary: dict) -> str:
    """The Markdown table of the corpus (per package and in total) for ``docs/corpus.md``."""
    packages, total = summary["packages"], summary["total"]
    lines = ["| package | version | tracks | minutes | train / val / test | licence (tracks) | left out |",
             "|---|---|---|---|---|---|---|"]
    for name in sorted(packages):
        p = packages[name]
        licences = "; ".join(f"{licence} ({count})" for licence, count in
                             sorted(p["licences"].items(), key=lambda kv: (-kv[1], kv[0])))
        splits = " / ".join(str(p["splits"].get(s, 0)) for s in SPLITS)
        lines.append(f"| {name} | {p['version']} | {p['tracks']} | {p['seconds'] / 60:.0f} | {splits} | {licences} "
                     f"| {len(p['skipped'])} |")
    splits = " / ".join(str(total["splits"].get(s, 0)) for s in SPLITS)
    lines.append(f"| **{len(packages)} packages** | | **{total['tracks']}** | **{total['seconds'] / 60:.0f}** | "
                 f"{splits} | | {sum(len(p['skipped']) for p in packages.values())} |")
    hours = ", ".join(f"{s} {total['split_seconds'].get(s, 0) / 3600:.2f} h" for s in SPLITS)
    lines += ["", f"In all {total['seconds'] / 3600:.2f} hours ({hours}); {total['bytes'] / 1e9:.2f} GB on disk. "
              "Every file left out is in `corpus.json` with the reason."]
    return "\n".join(lines) + "\n"


def cleared_table(cleared: dict) -> str:
    """The Markdown of the cleared list (:data:`CLEARED`) for ``docs/corpus.md``: a table of the cleared packages,
    the smaller ones, and the external check's."""

    def cell(value) -> str:
        return "—" if value is None else str(value)

    def where(p: dict) -> str:
        return ", ".join(f"`{m}`" for m in p.get("music", ()))

    lines = ["| package | deb MB | tracks | minutes | kHz | where the music is | licence(s) |",
             "|---|---|---|---|---|---|---|"]
    for p in cleared["cleared"]:
        note = f" ({p['note']})" if p.get("note") else ""
        lines.append(f"| {p['package']} | {cell(p['deb_mb'])} | {cell(p['tracks'])} | {cell(p['minutes'])} | "
                     f"{p['khz']} | {where(p)}{note} | {p['licences']} |")
    small = ", ".join(p["package"] + (f" ({where(p)})" if p.get("music") else "") for p in cleared["cleared_small"])
    external = ", ".join(f"{p['package']} ({p['licences']}, {where(p)})" for p in cleared["external_check"])
    lines += ["", f"Also cleared, under 15 minutes each: {small}.", "",
              f"**Never for training or fitting** (the external check): {external}."]
    return "\n".join(lines) + "\n"


def update_docs(docs: Path, table: str, section: str = "corpus") -> None:
    """Replace the text between a section's markers (``<!-- BEGIN section -->``, ``<!-- END section -->``) of a
    Markdown file (added at its end if missing).

    Args:
        docs: The file (created if missing).
        table: The new text between the markers.
        section: The markers' name.
    """
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    text = docs.read_text() if docs.is_file() else ""
    marked = f"{begin}\n{table}{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + marked + text[text.index(end) + len(end):]
    else:
        text += ("\n" if text and not text.endswith("\n") else "") + marked + "\n"
    write_text(docs, text)


def check_no_external_music(out: Path, records: list[dict]) -> list[str]:
    """Raise ``SystemExit`` if music of the external check is under ``out``: in the manifest, or in a folder of
    theirs; returns the audio files under ``out`` that the manifest does not list (the trainer reads them too).

    Args:
        out: The corpus root.
        records: Its manifest.
    """
    check_not_external(r["package"] for r in records)
    audio = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS}
    external = sorted(a for a in audio if set(PurePosixPath(a).parts[:-1]) & set(EXTERNAL_FOLDERS))
    if external:
        raise SystemExit(f"refused: {out} holds music of the external check ({', '.join(external[:3])}, ...); it "
                         f"never goes under a training music root: remove it")
    return sorted(audio - {r["path"] for r in records})


def build(packages: Iterable[Package], out: Path, cache: Path, unpacked: Path, docs: Path | None = None) -> dict:
    """Fetch, unpack and collect ``packages`` into ``out``; write the manifest, the summary and the docs table.

    Args:
        packages: What to collect; packages collected before and not named here are kept as they are.
        out: The corpus root (the trainer's ``--music-root``).
        cache: The folder of downloaded debs.
        unpacked: Where packages are unpacked.
        docs: The Markdown file whose marked section gets the table (``None``: none).

    Returns:
        The summary, also written to ``out/corpus.json``, with ``"failed"``: the packages that could not be fetched
        or unpacked (the others are collected all the same).
    """
    packages = tuple(packages)
    check_not_external(p.name for p in packages)
    out.mkdir(parents=True, exist_ok=True)
    records = read_manifest(out)
    check_no_external_music(out, records)
    summary_path = out / "corpus.json"
    state = json.loads(summary_path.read_text())["packages"] if summary_path.is_file() else {}
    failed = {}
    for package in packages:
        try:
            deb = fetch(package.name, cache)
            mine = [r for r in records if r["package"] == package.name]
            previous = state.get(package.name, {})
            if (previous.get("deb") == deb.name and previous.get("signature") == package.signature()
                    and all((out / r["path"]).is_file() for r in mine)
                    and not any(s["reason"].startswith(NOT_WRITTEN) for s in previous.get("skipped", []))):
                print(f"{package.name}: up to date ({len(mine)} tracks)", flush=True)
                continue
            root = unpack(package, deb, unpacked)
        except (OSError, RuntimeError, subprocess.CalledProcessError, tarfile.TarError) as error:
            failed[package.name] = f"{type(error).__name__}: {error}"
            print(f"{package.name}: FAILED, left as it was: {failed[package.name]}", flush=True)
            continue
        records, state[package.name] = collect_package(package, root, deb, out, records)
        write_manifest(out, records)
        write_text(summary_path, json.dumps(summarise(records, state, out), indent=1, sort_keys=True) + "\n")
    stray = check_no_external_music(out, records)
    if stray:
        print(f"warning: {len(stray)} audio files under {out} are not in the manifest, and the trainer reads them "
              f"too: {', '.join(stray[:5])}{' ...' if len(stray) > 5 else ''}", flush=True)
    summary = summarise(records, state, out)
    write_manifest(out, records)
    write_text(summary_path, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    if docs is not None:
        update_docs(docs, docs_table(summary))
    total = summary["total"]
    print(f"{total['tracks']} tracks, {total['seconds'] / 3600:.2f} h from {len(summary['packages'])} packages in "
          f"{out} ({total['bytes'] / 1e9:.2f} GB); splits: "
          + ", ".join(f"{s} {total['splits'].get(s, 0)}" for s in SPLITS), flush=True)
    return dict(summary, failed=failed)


def collect_package(package: Package, root: Path, deb: Path, out: Path, records: list[dict]) -> tuple[list, dict]:
    """Collect one unpacked package into ``out`` (:func:`collect`), remove its tracks that are left out now and keep
    its ``debian/copyright`` and credit files in ``out/licences/NAME``.

    Args:
        package: The package.
        root: Where it was unpacked.
        deb: Its deb.
        out: The corpus root.
        records: The manifest so far.

    Returns:
        The new manifest and the package's entry of ``corpus.json``.
    """
    mine = [r for r in records if r["package"] == package.name]
    others = [r for r in records if r["package"] != package.name]
    taken = {r["sha256"]: r["path"] for r in others} | {r["track"]: r["path"] for r in others}
    version = deb.name.split("_")[1].replace("%3a", ":")
    new, skipped = collect(package, root, version, out, {r["path"]: r for r in mine}, taken)
    for stale in {r["path"] for r in mine} - {r["path"] for r in new}:
        (out / stale).unlink(missing_ok=True)  # collected before, left out now
    notices = [*package.credits, f"usr/share/doc/{package.name}/copyright"]
    for found in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = found.relative_to(root).as_posix()
        if any(glob_match(relative, pattern) for pattern in notices):
            name = "copyright" if relative.startswith("usr/share/doc/") else relative.replace("/", "__")
            write_text(out / "licences" / package.name / name, found.read_text(errors="replace"))
    print(f"{package.name}: {len(new)} tracks, {sum(r['seconds'] for r in new) / 60:.1f} min; "
          f"{len(skipped)} files left out", flush=True)
    for s in skipped:
        print(f"    left out {s['source']}: {s['reason']}", flush=True)
    entry = {"deb": deb.name, "version": version, "folder": package.folder, "licence": package.licence,
             "signature": package.signature(), "skipped": skipped}
    return others + new, entry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/raw/debian_music"), help="the corpus root")
    parser.add_argument("--cache", type=Path, default=Path("data/debs"), help="downloaded debs")
    parser.add_argument("--unpacked", type=Path, default=Path("data/debian_packages"), help="unpacked packages")
    parser.add_argument("--docs", type=Path, default=Path("docs/corpus.md"),
                        help="Markdown file whose marked section gets the table")
    parser.add_argument("--no-docs", action="store_true", help="leave the docs alone")
    parser.add_argument("--packages", nargs="+", metavar="NAME", help="only these packages of the list")
    parser.add_argument("--cleared-table", action="store_true",
                        help="only write the table of recipes/cleared_music.json into --docs (nothing is fetched)")
    args = parser.parse_args(argv)
    selected = PACKAGES
    if args.packages:
        check_not_external(args.packages)
        uncleared = sorted(set(args.packages) - set(CLEARED_PACKAGES))
        if uncleared:
            parser.error(f"not cleared: {', '.join(uncleared)} (a package that recipes/cleared_music.json does not "
                         f"list is not cleared)")
        unknown = sorted(set(args.packages) - {p.name for p in PACKAGES})
        if unknown:
            parser.error(f"not in the list: {', '.join(unknown)} (cleared, but PACKAGES does not say where its music "
                         f"is)")
        selected = tuple(p for p in PACKAGES if p.name in args.packages)
    check_cleared(p.name for p in selected)
    if not args.no_docs:
        update_docs(args.docs, cleared_table(CLEARED), "cleared")
    if args.cleared_table:
        return
    summary = build(selected, args.out, args.cache, args.unpacked, None if args.no_docs else args.docs)
    if summary["failed"]:
        sys.exit(f"failed (rerun to try again): {', '.join(sorted(summary['failed']))}")


if __name__ == "__main__":
    main()
