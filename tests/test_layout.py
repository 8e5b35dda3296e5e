"""The repository's layout promises: every module on docs/architecture.md's map, and a repository that stands
alone (nothing in it refers to a path outside it)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_module_is_on_the_architecture_map():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text[text.index("## Where things are") :]
    missing = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "dmaster").rglob("*.py"))
               if path.name != "__init__.py" and path.name not in block]
    assert not missing, f"not on docs/architecture.md's map: {missing}"


def test_nothing_refers_to_a_path_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.split()
    if not tracked:  # not a git checkout (an unpacked sdist): every text file
        tracked = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    outside = re.compile(r"\.\./shared|/" + r"work/|MUSIC\.md")  # split: this line would match itself
    found = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".sh", ".toml", ".json", ".txt", ".yaml", ".yml", "") or not path.exists():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{name}: {match.group(0)}" for match in outside.finditer(text)]
    assert not found, found
