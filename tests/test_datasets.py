"""PairedDataset (generated pairs), OnTheFlyBatches (raw music degraded on the fly) and SyntheticBatches."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from dmaster.audio import read_window
from dmaster.data import OnTheFlyBatches, PairedDataset
from dmaster.data.datasets import SyntheticBatches, _window_start
from dmaster.data.generate import generate
from dmaster.data.splits import find_tracks, split_of
from dmaster.effects import Chain
from dmaster.synth import music_like

RATE = 44100
CHAIN = Chain(RATE)
EFFECTS, PARAMS = len(CHAIN.specs), len(CHAIN.flat_params)


def names_in(split: str, count: int) -> list[str]:
    """``count`` file names ``000/<n>.wav`` whose track ids fall in ``split``."""
    return [f"000/{n:06d}.wav" for n in range(10_000) if split_of(f"000_{n:06d}") == split][:count]


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """Seven train tracks of 1 to 2 s (one of them 0.5 s), two val, one test, one broken train file."""
    root = tmp_path_factory.mktemp("raw") / "music"
    (root / "000").mkdir(parents=True)
    base = music_like(2.0, RATE, 2, seed=5).T.numpy()
    names = names_in("train", 8) + names_in("val", 2) + names_in("test", 1)
    for k, name in enumerate(names[1:]):
        sf.write(root / name, np.roll(base, 5000 * k, axis=0)[: int(RATE * (0.5 if k == 0 else 1 + k % 2))], RATE)
    (root / names[0]).write_bytes(b"RIFF but not really a wave file")
    return root


@pytest.fixture(scope="module")
def pairs(raw, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("pairs") / "output"
    generate(raw, output, spectrograms=False, progress=False)
    return output


def test_paired_items_have_the_documented_shapes(pairs):
    dataset = PairedDataset(pairs / "manifest.jsonl", window_seconds=0.75, split="train")
    assert len(dataset) == 7
    item = dataset[0]
    window = round(0.75 * RATE)
    assert item["degraded"].shape == item["clean"].shape == (2, window)
    assert item["degraded"].dtype == item["clean"].dtype == torch.float32
    assert item["presence"].shape == (EFFECTS,) and item["params"].shape == (PARAMS,)
    assert item["params"].dtype == torch.float32 and 0 <= item["params"].min() and item["params"].max() <= 1
    assert isinstance(item["track_id"], str)
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["degraded"].shape == (3, 2, window) and len(batch["track_id"]) == 3


def test_both_signals_share_the_window_and_short_tracks_are_padded(pairs):
    dataset = PairedDataset(pairs, window_seconds=0.75, split="train", seed=3)
    for index, record in enumerate(dataset.records):
        item = dataset[index]
        start = _window_start(record["frames"], dataset.window, np.random.default_rng([3, 0, index]))
        for key, kind in (("clean", "original"), ("degraded", "degraded")):
            assert torch.equal(item[key], read_window(pairs / record[kind], start, dataset.window))
    long_window = PairedDataset(pairs, window_seconds=2.5, split="train")
    short = next(i for i, r in enumerate(long_window.records) if r["frames"] < RATE)
    item = long_window[short]
    frames = long_window.records[short]["frames"]
    assert item["clean"][:, frames:].abs().max() == 0 and item["clean"][:, :frames].abs().max() > 0


def test_windows_are_fixed_by_seed_index_and_epoch(pairs):
    dataset = PairedDataset(pairs, window_seconds=0.25, split="train", seed=1)
    first = [dataset[i]["clean"] for i in range(len(dataset))]
    assert all(torch.equal(a, dataset[i]["clean"]) for i, a in enumerate(first))
    dataset.set_epoch(1)
    assert any(not torch.equal(a, dataset[i]["clean"]) for i, a in enumerate(first))


def test_splits_are_by_track_and_never_overlap(pairs):
    ids = {split: {r["id"] for r in PairedDataset(pairs, split=split).records} for split in ("train", "val", "test")}
    assert len(ids["train"]) == 7 and len(ids["val"]) == 2 and len(ids["test"]) == 1
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert all(split_of(i) == split for split, members in ids.items() for i in members)
    assert len(PairedDataset(pairs, split=None)) == 10


def test_paired_dataset_errors_are_clear(pairs, tmp_path):
    with pytest.raises(FileNotFoundError, match="dmaster demaster"):
        PairedDataset(tmp_path / "nothing.jsonl")
    with pytest.raises(ValueError, match="22050 Hz"):
        PairedDataset(pairs, sample_rate=22050)
    with pytest.raises(ValueError, match="split"):
        PairedDataset(pairs, split="training")


def test_on_the_fly_batches_have_the_documented_shapes(raw):
    with pytest.warns(UserWarning, match="cannot decode"):
        batches = list(OnTheFlyBatches(raw, window_seconds=0.5, batch_size=4, steps=3, pool_tracks=8))
    assert len(batches) == 3
    window = round(0.5 * RATE)
    for batch in batches:
        assert batch["degraded"].shape == batch["clean"].shape == (4, 2, window)
        assert batch["degraded"].dtype == torch.float32 and batch["degraded"].device.type == "cpu"
        assert batch["presence"].shape == (4, EFFECTS) and batch["params"].shape == (4, PARAMS)
        assert 0 <= batch["params"].min() and batch["params"].max() <= 1
        assert len(batch["track_id"]) == 4 and all(split_of(t) == "train" for t in batch["track_id"])
        changed = (batch["degraded"] - batch["clean"]).abs().flatten(1).amax(1) > 0
        assert torch.equal(changed, batch["presence"].amax(1) > 0)


def test_on_the_fly_is_deterministic_and_refreshes_its_pool(raw):
    def run(**kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the broken file, if this stream reaches it
            return list(OnTheFlyBatches(raw, window_seconds=0.25, batch_size=3, steps=4, seed=2, pool_tracks=2,
                                        windows_per_track=3, **kwargs))
    first, again = run(), run()
    assert all(torch.equal(a["degraded"], b["degraded"]) for a, b in zip(first, again))
    assert len({t for batch in first for t in batch["track_id"]}) > 2, "the pool must take in new tracks"


def test_ranks_take_disjoint_tracks_with_their_own_seeds(raw):
    ranks = [OnTheFlyBatches(raw, split="train", rank=r, world_size=2, steps=1) for r in (0, 1)]
    tracks = [{t.id for t in ds.tracks} for ds in ranks]
    assert not tracks[0] & tracks[1]
    assert tracks[0] | tracks[1] == {t.id for t in find_tracks(raw) if split_of(t.id) == "train"}
    with pytest.raises(ValueError, match="rank"):
        OnTheFlyBatches(raw, rank=2, world_size=2)
    with pytest.raises(TypeError, match="endless"):
        len(OnTheFlyBatches(raw))


def test_on_the_fly_skips_silent_tracks_and_redraws_quiet_windows(tmp_path):
    root = tmp_path / "music"
    (root / "000").mkdir(parents=True)
    loud, silent, gappy = names_in("train", 3)
    music = music_like(2.0, RATE, 2, seed=4).T.numpy()
    sf.write(root / loud, music, RATE)
    sf.write(root / silent, np.zeros_like(music), RATE)
    sf.write(root / gappy, np.concatenate([np.zeros((4 * RATE, 2)), music[: RATE // 2]]), RATE)  # 8 % audible
    with pytest.warns(UserWarning, match="silent"):
        batches = list(OnTheFlyBatches(root, window_seconds=0.5, batch_size=2, steps=20, seed=1))
    track_ids = {t for batch in batches for t in batch["track_id"]}
    assert track_ids == {"000_" + Path(loud).stem, "000_" + Path(gappy).stem}
    gappy_windows = torch.stack([clean for batch in batches for clean, track in zip(batch["clean"], batch["track_id"])
                                 if track == "000_" + Path(gappy).stem])
    quiet_share = float((10 * torch.log10(gappy_windows.square().mean((1, 2)) + 1e-20) < -45).float().mean())
    assert quiet_share < 0.7  # one random draw from the gappy track is quiet about 85 % of the time


def test_synthetic_batches_are_a_function_of_seed_rank_split_and_step():
    def source(**overrides):
        return SyntheticBatches(**{"window_seconds": 0.5, "batch_size": 2, "split": "train", "sample_rate": 22050,
                                   "clips": 2, **overrides})

    first, again = source().batch(3), iter(source(start_step=3))
    assert first["degraded"].shape == first["clean"].shape == (2, 2, 11025)
    assert first["presence"].shape == (2, EFFECTS) and first["params"].shape == (2, PARAMS)
    assert all(t.startswith("synthetic-train-") for t in first["track_id"])
    assert torch.equal(next(again)["degraded"], first["degraded"])  # a resumed run sees the same data
    for other in (source(rank=1), source(seed=1), source(split="val")):
        assert not torch.equal(other.batch(3)["clean"], first["clean"])
