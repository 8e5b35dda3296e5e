"""The recipes that fit a model's inverse strengths and residual correction run end to end on a tiny corpus."""

import runpy
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from dmaster.checkpoint import save_checkpoint
from dmaster.data.splits import split_of
from dmaster.mastering import load_strength
from dmaster.residual import ResidualCorrection
from dmaster.synth import music_like

SR = 44100
RECIPES = Path(__file__).parent.parent / "recipes"


def tiny_corpus(root: Path, train: int = 9, val: int = 2) -> None:
    wanted = {"train": train, "val": val, "test": 0}
    for k in range(1000):
        name = f"track{k:03d}"
        if wanted[split_of(name)] > 0:
            wanted[split_of(name)] -= 1
            sf.write(root / f"{name}.wav", music_like(2.0, SR, 2, seed=k).T.numpy(), SR)
        if not any(wanted.values()):
            return


def test_fit_residual_recipe_runs_end_to_end(tmp_path, estimator, monkeypatch, capsys):
    (tmp_path / "music").mkdir()
    tiny_corpus(tmp_path / "music")
    checkpoint = tmp_path / "param.pt"
    save_checkpoint(checkpoint, estimator, "param", {}, step=0)
    monkeypatch.setattr(sys, "argv", ["fit_residual.py", "--model", str(checkpoint), "--music-root",
                                      str(tmp_path / "music"), "--draws", "1", "--seconds", "2"])
    with torch.enable_grad():  # the script turns gradients off for its process; give them back on exit
        runpy.run_path(str(RECIPES / "fit_residual.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "cross-validated RMS error" in printed and "held-out train MR-STFT (3 excerpts)" in printed
    sidecar = tmp_path / "param.residual.json"
    if "nothing written" in printed:
        assert not sidecar.exists()
    else:
        correction = ResidualCorrection.load(sidecar)
        assert len(correction.feature_mean) == 40 + 1 + 5 + len(estimator.chain.flat_params)
        assert "9 excerpts of 9 train tracks" in correction.description


def test_fit_strength_recipe_runs_end_to_end(tmp_path, estimator, unet, monkeypatch, capsys):
    (tmp_path / "music").mkdir()
    tiny_corpus(tmp_path / "music", train=4, val=1)
    checkpoint = tmp_path / "param.pt"
    save_checkpoint(checkpoint, estimator, "param", {}, step=0)
    monkeypatch.setattr(sys, "argv", ["fit_strength.py", "--model", str(checkpoint), "--music-root",
                                      str(tmp_path / "music"), "--draws", "1", "--val-draws", "1", "--seconds", "2"])
    with torch.enable_grad():
        runpy.run_path(str(RECIPES / "fit_strength.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "4 train excerpts, every effect at strength 1" in printed and "compressor at 0: " in printed
    sidecar = tmp_path / "param.strength.json"
    if "nothing written" in printed:
        assert not sidecar.exists()
    else:
        strength = load_strength(sidecar)
        assert set(strength) == set(estimator.chain.effect_names) and set(strength.values()) <= {0.0, 0.5, 1.0}
    save_checkpoint(tmp_path / "unet.pt", unet, "unet", {}, step=0)
    monkeypatch.setattr(sys, "argv", ["fit_strength.py", "--model", str(tmp_path / "unet.pt")])
    with pytest.raises(SystemExit), torch.enable_grad():
        runpy.run_path(str(RECIPES / "fit_strength.py"), run_name="__main__")
    assert "not a parameter model" in capsys.readouterr().err
