"""``dmaster train``: configuration, checkpoints, logs, resume and DDP (tiny models, synthetic data)."""

import csv
import json
import socket

import pytest
import torch
import torch.multiprocessing as mp

from dmaster import cli
from dmaster.apps.train import add_arguments, config_from_args
from dmaster.checkpoint import load_model
from dmaster.training import TrainConfig, train

SR = 22050
TINY = dict(data="synthetic", sample_rate=SR, window_seconds=2.0, batch_size=2, val_batches=1, synthetic_clips=2,
            log_every=100, warmup_steps=0, schedule="constant", learning_rate=3e-3)
TINY_PARAM_MODEL = {"width": 4, "hidden": 32, "n_mels": 32, "n_bands": 64, "n_lag_bins": 32}


def config(tmp_path, **overrides) -> TrainConfig:
    settings = {**TINY, "model": "param", "model_args": dict(TINY_PARAM_MODEL), "e2e_weight": 0.0,
                "models_dir": str(tmp_path / "models"), "logs_dir": str(tmp_path / "logs"), **overrides}
    return TrainConfig(**settings)


def parse(argv: list[str]) -> TrainConfig:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def steps_logged(path) -> list[int]:
    with open(path, newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def test_config_file_then_flags(tmp_path):
    (tmp_path / "run.yaml").write_text("model: unet\nlearning_rate: 1e-3\nsteps: 50\nmodel_args: {width: 8}\n")
    (tmp_path / "run.json").write_text(json.dumps({"batch_size": 4, "resume": True}))
    parsed = parse(["--config", str(tmp_path / "run.yaml"), "--steps", "7", "--model-arg", "depth=2"])
    assert (parsed.model, parsed.learning_rate, parsed.steps) == ("unet", 1e-3, 7)
    assert parsed.model_args == {"width": 8, "depth": 2}
    parsed = parse(["--config", str(tmp_path / "run.json")])
    assert parsed.batch_size == 4 and parsed.resume and parsed.model == "param"


@pytest.mark.parametrize("overrides, message", [
    ({"model": "transformer"}, "unknown model"),
    ({"learning_rate": -1e-3}, "learning_rate must be positive"),
    ({"steps": 0}, "steps must be positive"),
    ({"e2e_weight": -1.0}, "e2e_weight must be ≥ 0"),
    ({"track_seconds": -1.0}, "track_seconds must be ≥ 0"),
    ({"data": ""}, "no training data"),
    ({"data": "", "manifest": "/nonexistent/manifest.jsonl"}, "manifest not found"),
    ({"music_root": "/nonexistent"}, "choose one data source"),
    ({"schedule": "linear"}, "unknown schedule"),
    ({"window_seconds": 1.0}, "needs at least"),
    ({"model_args": {"colour": "blue"}}, "bad hyper-parameters"),
    ({"resume": True}, "nothing to resume"),
])
def test_bad_configs_give_clear_errors(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        train(config(tmp_path, **overrides))


@pytest.mark.parametrize("track_seconds, max_seconds", [(45.0, 45.0), (0.0, None)])
def test_track_seconds_sets_how_much_of_each_track_the_loader_decodes(monkeypatch, track_seconds, max_seconds):
    import dmaster.training.batches
    from dmaster.training.batches import _music_batches

    seen = {}

    class Recorder:
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)

        def set_epoch(self, epoch):
            pass

        def __iter__(self):
            return iter(())

    monkeypatch.setattr(dmaster.training.batches, "OnTheFlyBatches", Recorder)
    config = TrainConfig(music_root="music", track_seconds=track_seconds, pool_tracks=500)
    _music_batches(config, "train", torch.device("cpu"), 0, 1, 0, config.pool_tracks)
    assert seen["max_seconds"] == max_seconds and seen["pool_tracks"] == 500


def test_command_line_reports_bad_settings(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("stepz: 3\n")
    assert cli.main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown settings" in capsys.readouterr().err
    assert cli.main(["train", "--model", "param"]) == 2
    assert "no training data" in capsys.readouterr().err


def test_train_writes_checkpoints_and_logs_and_resume_matches_an_uninterrupted_run(tmp_path):
    straight = train(config(tmp_path / "a", steps=3, val_every=2))
    assert straight.step == 3
    interrupted = config(tmp_path / "b", steps=2, val_every=2)
    train(interrupted)
    with pytest.raises(ValueError, match="--resume"):
        train(interrupted)  # refuses to overwrite a run by accident
    resumed = train(config(tmp_path / "b", steps=3, val_every=2, resume=True))
    assert resumed.step == 3
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0, msg=name)

    resumed_from_flags = parse(["--resume", "--models-dir", str(tmp_path / "b" / "models"), "--steps", "9"])
    assert resumed_from_flags == config(tmp_path / "b", steps=9, val_every=2, resume=True)  # the run's settings

    run_dir = tmp_path / "b" / "models" / "param"
    checkpoint = torch.load(run_dir / "last.pt", weights_only=True)
    assert checkpoint["step"] == 3 and checkpoint["config"]["steps"] == 3 and "optimizer" in checkpoint
    model, saved_config = load_model(run_dir / "best.pt")
    assert saved_config["model"] == "param" and model.hyperparameters["width"] == 4
    log_dir = tmp_path / "b" / "logs" / "param"
    assert steps_logged(log_dir / "train.csv") == [1, 2, 3]
    assert steps_logged(log_dir / "val.csv") == [2, 3]


def test_init_from_fine_tunes_another_runs_weights_with_a_fresh_schedule(tmp_path):
    source = train(config(tmp_path, run_name="source", steps=2, val_every=2))
    weights = str(source.checkpoint_dir / "last.pt")
    tuned = train(config(tmp_path, run_name="tuned", steps=1, val_every=1, learning_rate=1e-12, init_from=weights))
    assert tuned.step == 1  # counts from 0 again
    for name, value in source.model.state_dict().items():
        torch.testing.assert_close(tuned.model.state_dict()[name], value, msg=name)
    with pytest.raises(ValueError, match="holds a param model"):
        train(config(tmp_path, run_name="wider", steps=1, init_from=weights,
                     model_args={**TINY_PARAM_MODEL, "width": 8}))
    grown = train(config(tmp_path, run_name="grown", steps=2, val_every=1, learning_rate=1e-12, init_from=weights,
                         model_args={**TINY_PARAM_MODEL, "dynamics": True},
                         learning_rate_scales="dynamics_projection=1e9"))
    for name, value in source.model.state_dict().items():  # the old weights, barely moved at 1e-12
        torch.testing.assert_close(grown.model.state_dict()[name], value, msg=name)
    added = grown.model.dynamics_projection[-1].weight  # a new branch from zero, learning at 1e-3
    assert 0 < float(added.detach().abs().max()) < 1e-2
    with pytest.raises(ValueError, match="no weights of the model start with"):
        train(config(tmp_path, run_name="typo", steps=1, learning_rate_scales="dynamic_projection=10"))
    with pytest.raises(ValueError, match="PREFIX=SCALE"):
        train(config(tmp_path, run_name="typo", steps=1, learning_rate_scales="dynamics_projection"))
    with pytest.raises(ValueError, match="exclude each other"):
        train(config(tmp_path, run_name="tuned", steps=2, resume=True, init_from=weights))
    resumed = parse(["--resume", "--run-name", "tuned", "--models-dir", str(tmp_path / "models")])
    assert resumed.init_from == ""  # a resumed run goes on from its own weights


def test_unet_and_the_end_to_end_loss_train(tmp_path):
    unet = train(config(tmp_path, model="unet", run_name="u", steps=2, val_every=2,
                        model_args={"width": 4, "depth": 2, "n_fft": 256, "hop": 128, "frequency_patch": 2}))
    assert unet.metrics["mrstft"] > 0
    param = train(config(tmp_path, run_name="p", steps=2, val_every=2, e2e_weight=0.5, e2e_start=0.0,
                         e2e_items=1, compressor_inverse_steps=1))
    with open(param.log_dir / "train.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(float(row["e2e"]) > 0 for row in rows)
    assert {"param_error", "presence_accuracy", "eq_gain_error_db", "si_sdr"} <= set(param.metrics)
    matched = train(config(tmp_path, run_name="m", steps=1, val_every=1, e2e_weight=0.5, e2e_start=0.0,
                           e2e_items=1, compressor_inverse_steps=1, level_matched=True))
    assert matched.best_metric == matched.metrics["mrstft_level_matched"]


def _ddp_worker(rank: int, world_size: int, port: int, settings: dict, out_dir: str) -> None:
    import os

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    result = train(TrainConfig(**settings))
    torch.save(result.model.state_dict(), f"{out_dir}/rank{rank}.pt")


def test_two_process_ddp_ends_with_identical_weights_on_both_ranks(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = config(tmp_path, steps=2, val_every=2, device="cpu").to_dict()
    mp.spawn(_ddp_worker, args=(2, port, settings, str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    initial = torch.load(tmp_path / "models" / "param" / "last.pt", weights_only=True)["model"]
    for name, value in rank0.items():
        torch.testing.assert_close(rank1[name], value, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(initial[name], value, rtol=0, atol=0, msg=name)
    assert steps_logged(tmp_path / "logs" / "param" / "train.csv") == [1, 2]  # rank 0 logs alone
