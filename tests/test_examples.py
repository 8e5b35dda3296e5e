"""Every example runs, with the shipped models, and prints what it promises."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(script: str, *args: str) -> str:
    # the checkout's dmaster, whichever copy is installed
    path = os.pathsep.join([str(EXAMPLES.parent), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": path})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_run_here_and_listed_in_the_readme():
    readme = (EXAMPLES.parent / "README.md").read_text()
    here = Path(__file__).read_text()
    for example in sorted(EXAMPLES.glob("*.py")):
        assert f'run("{example.name}"' in here, f"{example.name} is not run by tests/test_examples.py"
        assert f"| `python examples/{example.name}" in readme, f"{example.name} is not in the README's table"


def test_demaster_folder():
    assert "3 pairs in" in run("demaster_folder.py")


def test_master_file_prints_the_estimate():
    *report, level = run("master_file.py").strip().splitlines()
    report = json.loads("\n".join(report))
    assert report["model"] == "param" and "echo" in report["effects"]
    assert report["output"]["true_peak"] and abs(report["output"]["loudness_lufs"] + 16.0) <= 0.1
    assert level.startswith(f"loudness {report['output']['loudness_lufs']} LUFS, limiter")


def test_another_mix_gets_the_same_correction():
    song, again, kept = (line.split(": ")[1] for line in run("another_mix.py").splitlines())
    assert song == again and "compressor" in again and "compressor" not in kept


def test_reference_master_takes_the_references_level_and_tone():
    lines = dict(line.split(": ", 1) for line in run("reference_master.py").strip().splitlines())
    assert abs(float(lines["loudness reached (LUFS)"]) - float(lines["reference loudness (LUFS)"])) <= 0.2
    assert float(lines["refinement loss after (dB²)"]) < float(lines["refinement loss before (dB²)"])
    assert float(lines["true peak (dBTP)"]) <= -1.0 + 1e-3


def test_compare_with_unet():
    printed = run("compare_with_unet.py")
    for row in ("degraded (identity)", "oracle inverse", "param model", "unet model"):
        assert row in printed


@pytest.mark.parametrize("kind", ["param", "unet"])
def test_shipped_models_load(kind):
    from dmaster.mastering.pretrained import resolve_model, shipped_weights

    assert shipped_weights(kind).stat().st_size < 20e6
    assert resolve_model(kind).sample_rate == 44100


def test_demo_with_the_shipped_model(tmp_path, capsys):
    from dmaster.cli import main

    assert main(["demo", "-o", str(tmp_path), "--seconds", "4"]) == 0
    assert "MR-STFT" in capsys.readouterr().out
