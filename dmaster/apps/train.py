"""``dmaster train``: train the parameter estimator or the U-Net baseline, one process or DDP.

Single process::

    dmaster train --model param --music-root data/raw/fma_small --steps 3000

Several processes (``gloo`` on CPU, ``nccl`` on GPU; logs and checkpoints on rank 0)::

    torchrun --nproc_per_node 4 -m dmaster.train --model param --manifest experiments/output_full/manifest.jsonl

Settings come from the :class:`~dmaster.training.TrainConfig` defaults (with ``--resume``: the
resumed run's settings), then ``--config file.yaml|json``, then flags; every field is a flag
(``run_name`` → ``--run-name``). Checkpoints go to ``models/<run_name>/{best,last}.pt`` (best = lowest
validation MR-STFT distance of the restored audio), CSV logs to ``experiments/logs/<run_name>/{train,val}.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import yaml

from ..models import MODELS
from ..training import TrainConfig, train
from ..training.config import FIELDS, coerce_setting, config_from_file, stored_settings

__all__ = ["add_arguments", "config_from_args", "main", "run"]

DESCRIPTION = "train the parameter estimator or the spectrogram U-Net (single process or torchrun/DDP)"
CHOICES = {"model": tuple(MODELS), "data": ("synthetic",), "schedule": ("cosine", "constant"),
           "device": ("auto", "cpu", "cuda")}
PATH_SETTINGS = ("manifest", "music_root", "models_dir", "logs_dir", "init_from")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config``, one flag per :class:`~dmaster.training.TrainConfig` field, and ``--model-arg``.

    Args:
        parser: the parser of the ``train`` command. Flags not given are absent from the parsed
            namespace, so that a config file's settings are not overridden by defaults.
    """
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file of settings; flags override it")
    defaults = TrainConfig()
    for name, spec in FIELDS.items():
        if name == "model_args":
            continue
        flag, default, doc = "--" + name.replace("_", "-"), getattr(defaults, name), spec.metadata["help"]
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, action="store_true", default=argparse.SUPPRESS, help=doc)
            continue
        metavar = ("PATH" if name in PATH_SETTINGS else "NAME" if isinstance(default, str)
                   else "N" if isinstance(default, int) else "X")
        parser.add_argument(flag, dest=name, type=type(default), default=argparse.SUPPRESS, choices=CHOICES.get(name),
                            metavar=None if name in CHOICES else metavar, help=f"{doc} (default: {default!r})")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                        help="model hyper-parameter, e.g. --model-arg width=16 (repeatable; adds to model_args)")


def _parse_model_arg(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise ValueError(f"--model-arg takes KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's settings from parsed flags.

    Args:
        args: parsed by a parser set up with :func:`add_arguments`.

    Returns:
        The defaults (with ``--resume``: the resumed run's stored settings), overridden by the
        ``--config`` file, overridden by the flags given; ``--model-arg`` entries add to ``model_args``.

    Raises:
        ValueError: for a bad config file, setting or ``--model-arg``.
    """
    settings: dict[str, Any] = config_from_file(args.config) if getattr(args, "config", None) else {}
    for name in FIELDS:
        if name != "model_args" and hasattr(args, name):
            settings[name] = coerce_setting(name, getattr(args, name))
    if settings.get("resume"):
        settings = {**stored_settings(TrainConfig(**settings)), **settings}
    model_args = dict(settings.get("model_args", {}))
    model_args.update(_parse_model_arg(text) for text in getattr(args, "model_arg", None) or [])
    settings["model_args"] = model_args
    return TrainConfig(**settings)


def run(args: argparse.Namespace) -> int:
    """Train as the flags say; 0 when done, 2 (with the message on stderr) for bad settings."""
    try:
        config = config_from_args(args)
        result = train(config)
    except (ValueError, FileNotFoundError) as error:
        print(f"dmaster train: error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done at step {result.step}; best validation MR-STFT {result.best_metric:.4g}; "
              f"checkpoints in {result.checkpoint_dir}, logs in {result.log_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dmaster.train`` and ``torchrun -m dmaster.train``: the ``train`` command on its own.

    Args:
        argv: the flags (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m dmaster.train", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
