"""Measured tables written by the benchmark scripts themselves, never copied by hand.

Each script ends with :func:`publish`, which rewrites its marked section of ``benchmarks/README.md``
(``<!-- BEGIN name -->`` … ``<!-- END name -->``; appended when the file has none yet), stamped with
the date and the machine (:func:`machine_line`). A section describes a script's reference settings,
so it is rewritten only when the script ran with them (its defaults, ``--out`` aside), or when
``--section NAME`` names the section to write; ``--no-readme`` writes nothing.

>>> import tempfile
>>> readme = Path(tempfile.mkdtemp()) / "README.md"
>>> _ = readme.write_text("# Benchmarks\\n")
>>> write_section("demo", "| a | b |\\n|---|---|\\n| 1 | 2 |", readme)
>>> write_section("demo", "| a | b |\\n|---|---|\\n| 3 | 4 |", readme)
>>> print(readme.read_text())
# Benchmarks
<BLANKLINE>
<!-- BEGIN demo -->
| a | b |
|---|---|
| 3 | 4 |
<!-- END demo -->
<BLANKLINE>
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
from pathlib import Path

import torch

BENCHMARKS_README = Path(__file__).with_name("README.md")
"""Where the benchmark sections live."""
PROJECT_README = Path(__file__).parent.parent / "README.md"
"""The project's README; its headline results table is a section written by ``benchmarks/quality.py``."""

__all__ = ["BENCHMARKS_README", "PROJECT_README", "add_arguments", "machine_line", "publish", "write_section"]


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_README) -> None:
    """Replace the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` in ``path`` with
    ``markdown`` (or append the marked section), atomically: a temporary file renamed over ``path``.

    Args:
        name: the section's name, as in its markers.
        markdown: the section's new content.
        path: the Markdown file to rewrite; it must exist.
    """
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = path.read_text(encoding="utf-8")
    section = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text and text.index(begin) < text.index(end):
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def machine_line(device: str | None = None) -> str:
    """Today's date and the machine: CPU, cores, torch and its threads, load average, the GPU if used.

    Args:
        device: the device measured on; a CUDA device adds its name.
    """
    cpu = platform.processor() or platform.machine()
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    line = (f"{datetime.date.today().isoformat()}, {cpu} with {os.cpu_count()} cores, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads{load}")
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        line += f", {torch.cuda.get_device_name(torch.device(device))}"
    return line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--section NAME`` and ``--no-readme`` (see the module docstring) to a benchmark's parser."""
    group = parser.add_argument_group("benchmarks/README.md")
    group.add_argument("--section", metavar="NAME",
                       help="write the tables to this section of benchmarks/README.md even with other settings "
                            "(default: the script's own section, written only with its default settings)")
    group.add_argument("--no-readme", action="store_true", help="do not write benchmarks/README.md")


def publish(name: str, markdown: str, parser: argparse.ArgumentParser, args: argparse.Namespace,
            path: Path = BENCHMARKS_README, ignore: tuple[str, ...] = ("out",)) -> str | None:
    """Write ``markdown`` to section ``name`` of ``path`` if ``args`` allow it (see the module docstring);
    print what was done.

    Args:
        name: the script's own section.
        markdown: the tables, with a header line saying what was measured where and when.
        parser: the script's parser, for its defaults.
        args: the parsed arguments, with those of :func:`add_arguments`.
        path: the Markdown file.
        ignore: arguments that do not change what is measured (output paths).

    Returns:
        The section written, or ``None``.
    """
    if args.no_readme:
        return None
    section = args.section or name
    if args.section is None:
        changed = sorted(key for key, value in vars(args).items()
                         if key not in (*ignore, "section", "no_readme") and value != parser.get_default(key))
        if changed:
            print(f"{path} left as it is: not the default settings ({', '.join(changed)}); "
                  f"--section {name} writes them anyway")
            return None
    write_section(section, markdown, path)
    print(f"wrote section {section!r} of {path}")
    return section
