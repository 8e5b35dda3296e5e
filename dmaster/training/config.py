"""What a training run depends on: :class:`TrainConfig`, its checks, and reading it from a file or a run.

Every field of :class:`TrainConfig` is a ``dmaster train`` flag (``run_name`` → ``--run-name``, see
:mod:`dmaster.apps.train`) and a key of a YAML or JSON config file (:func:`config_from_file`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ..checkpoint import load_checkpoint
from ..data.prior import DrawPrior, parse_pairs, parse_presence
from ..effects import SPECS
from ..models import MODELS

__all__ = ["FIELDS", "TrainConfig", "coerce_setting", "config_from_file", "parse_scales", "stored_settings"]


def _setting(default: Any, help: str) -> Any:
    """A :class:`TrainConfig` field whose ``help`` shows in ``--help``."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything a training run depends on; every field is a ``--flag`` and a config-file key.

    Constructing one checks nothing; :meth:`validate` does (and :func:`dmaster.training.train` calls it).
    Each field's ``metadata["help"]`` is its ``--help`` text, which gives its meaning and unit.

    >>> config = TrainConfig(data="synthetic", steps=10)
    >>> config.name, config.batch_size
    ('param', 8)
    """

    model: str = _setting("param", "param (ParamEstimator) or unet (SpectrogramUNet)")
    run_name: str = _setting("", "names models/RUN/ and experiments/logs/RUN/; defaults to the model kind")
    data: str = _setting("", "'synthetic': synthetic music degraded on the fly, no files needed")
    manifest: str = _setting("", "manifest of pairs written by dmaster demaster (PairedDataset)")
    music_root: str = _setting("", "folder of music degraded on the fly on the training device (OnTheFlyBatches)")
    track_seconds: float = _setting(30.0, "--music-root: seconds decoded from the start of each track, 0 = all")
    pool_tracks: int = _setting(64, "--music-root: training tracks held decoded in memory (float32 stereo: 10.6 MB "
                                    "per 30 s at 44.1 kHz); a pool as large as the split decodes each track once, "
                                    "which a CPU run needs: decoding otherwise costs more than the step")
    sample_rate: int = _setting(44100, "Hz")
    window_seconds: float = _setting(3.0, "length of each training clip")
    batch_size: int = _setting(8, "clips per step and process")
    steps: int = _setting(2000, "optimiser steps")
    max_minutes: float = _setting(0.0, "wall-clock budget, 0 = none; the learning-rate schedule follows whichever "
                                       "of steps and time runs out first")
    learning_rate: float = _setting(1e-3, "peak Adam learning rate")
    weight_decay: float = _setting(0.0, "Adam weight decay")
    schedule: str = _setting("cosine", "cosine (decay to min_learning_rate_ratio) or constant, after a linear warm-up")
    warmup_steps: int = _setting(100, "steps of linear learning-rate warm-up")
    min_learning_rate_ratio: float = _setting(0.05, "final learning rate of the cosine schedule, relative")
    grad_clip: float = _setting(1.0, "maximum global gradient norm")
    val_every: int = _setting(200, "validate and write last.pt every this many steps (and at the end)")
    val_batches: int = _setting(4, "batches of held-out tracks in the validation set")
    log_every: int = _setting(10, "print a progress line every this many steps (the CSV gets every step)")
    seed: int = _setting(0, "seed of initial weights and data")
    device: str = _setting("auto", "auto (CUDA when available), cpu or cuda")
    num_workers: int = _setting(0, "DataLoader worker processes for --manifest")
    model_args: dict[str, Any] = _setting({}, "model hyper-parameters, e.g. {width: 16}")
    mrstft_weight: float = _setting(1.0, "weight of the multi-resolution STFT loss")
    l1_weight: float = _setting(1.0, "weight of the time-domain L1 loss")
    param_weight: float = _setting(1.0, "param model: weight of the normalised-parameter L1 loss")
    presence_weight: float = _setting(0.5, "param model: weight of the presence cross-entropy")
    delay_weight: float = _setting(0.1, "param model: weight of the echo-delay bin cross-entropy")
    e2e_weight: float = _setting(0.1, "param model: weight of the end-to-end loss (MR-STFT + L1 of "
                                      "chain.inverse(degraded, estimate) against the clean audio); a large weight "
                                      "lets its gradient swamp the supervised terms and stall them")
    e2e_start: float = _setting(0.2, "param model: training progress (0…1) at which the end-to-end loss starts; "
                                     "its weight then ramps up linearly over the same span again")
    e2e_items: int = _setting(2, "param model: batch items run through the chain inverse for the end-to-end "
                                 "loss, 0 = all (each item adds a chain inverse and its backward pass to a step)")
    level_matched: bool = _setting(False, "scale restorations to the original's peak before the reconstruction / "
                                          "end-to-end loss and pick best.pt by the level-matched validation MR-STFT "
                                          "(for outputs whose level is set afterwards, e.g. by "
                                          "master(normalise_peak=True))")
    presence: str = _setting("", "how often each effect is on where not its spec's presence_probability, e.g. "
                                 "'eq=0.5,gain=0.5' (--music-root and --data synthetic)")
    clean_share: float = _setting(0.0, "share of training items (0-1) with every effect off: nothing to fix")
    audible_db: float = _setting(-math.inf, "switch off (in audio and label) an effect contributing less than this "
                                            "(dB relative to the degraded audio); -inf keeps every draw")
    compressor_inverse_steps: int = _setting(4, "fixed-point steps of the compressor inverse in training")
    synthetic_clips: int = _setting(16, "clips in the synthetic training music pool (--data synthetic)")
    models_dir: str = _setting("models", "checkpoints go to MODELS_DIR/RUN/{best,last}.pt")
    logs_dir: str = _setting("experiments/logs", "CSV logs go to LOGS_DIR/RUN/")
    resume: bool = _setting(False, "continue from MODELS_DIR/RUN/last.pt (step, weights, optimiser, RNG, time)")
    init_from: str = _setting("", "start from the weights of this checkpoint (same model kind and size) with a "
                                  "fresh optimiser and schedule: fine-tuning")
    learning_rate_scales: str = _setting("", "'PREFIX=SCALE,...': the weights whose names start with PREFIX learn at "
                                             "the learning rate times SCALE, e.g. 'dynamics_projection=10' for a "
                                             "branch added to fine-tuned weights")

    @property
    def prior(self) -> DrawPrior:
        """The degradation prior these settings describe (:class:`~dmaster.data.prior.DrawPrior`)."""
        audible = None if self.audible_db == -math.inf else self.audible_db
        return DrawPrior(parse_presence(self.presence), self.clean_share, audible)

    @property
    def name(self) -> str:
        """The run's name: ``run_name``, or the model kind when that is empty."""
        return self.run_name or self.model

    def validate(self) -> None:
        """Raise ``ValueError`` with a message naming the first bad setting."""
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        positive = ("sample_rate", "window_seconds", "batch_size", "steps", "learning_rate", "grad_clip", "val_every",
                    "val_batches", "log_every", "compressor_inverse_steps", "synthetic_clips", "pool_tracks")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, got {value}")
        non_negative = ("max_minutes", "track_seconds", "weight_decay", "warmup_steps", "num_workers",
                        "mrstft_weight", "l1_weight", "param_weight", "presence_weight", "delay_weight", "e2e_weight",
                        "e2e_items")
        for name in non_negative:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be ≥ 0, got {value}")
        prior = self.prior
        unknown = sorted(set(prior.presence) - {spec.name for spec in SPECS})
        if unknown:
            raise ValueError(f"presence: unknown effects {unknown}; effects are {', '.join(s.name for s in SPECS)}")
        if math.isnan(self.audible_db) or self.audible_db == math.inf:
            raise ValueError(f"audible_db must be a number of dB or -inf, got {self.audible_db}")
        parse_scales(self.learning_rate_scales)
        if self.resume and self.init_from:
            raise ValueError("resume and init_from exclude each other: resume continues this run, init_from starts "
                             "a new one from another run's weights")
        if not 0 <= self.e2e_start < 1:
            raise ValueError(f"e2e_start must lie in [0, 1), got {self.e2e_start}")
        if not 0 <= self.min_learning_rate_ratio <= 1:
            raise ValueError(f"min_learning_rate_ratio must lie in [0, 1], got {self.min_learning_rate_ratio}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose cosine or constant")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown device {self.device!r}; choose auto, cpu or cuda")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but no CUDA device is available")
        if "sample_rate" in self.model_args:
            raise ValueError("set the sample rate with sample_rate, not in model_args")
        if not isinstance(self.model_args, dict):
            raise ValueError(f"model_args must be a mapping, got {self.model_args!r}")
        sources = [s for s, given in (("--data synthetic", self.data), ("--manifest", self.manifest),
                                      ("--music-root", self.music_root)) if given]
        if not sources:
            raise ValueError("no training data: pass --manifest FILE, --music-root DIR or --data synthetic")
        if len(sources) > 1:
            raise ValueError(f"choose one data source, got {' and '.join(sources)}")
        if self.data and self.data != "synthetic":
            raise ValueError(f"unknown --data {self.data!r}; the only built-in source is synthetic")
        if self.manifest and not Path(self.manifest).is_file():
            raise ValueError(f"manifest not found: {self.manifest}")
        if self.music_root and not Path(self.music_root).is_dir():
            raise ValueError(f"music root is not a folder: {self.music_root}")
        if self.model == "unet" and not (self.mrstft_weight or self.l1_weight):
            raise ValueError("the unet is trained on mrstft_weight and l1_weight; at least one must be > 0")
        if self.model == "param" and not (self.param_weight or self.presence_weight or self.e2e_weight):
            raise ValueError("the param model needs param_weight, presence_weight or e2e_weight > 0")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (what checkpoints and ``config.json`` store)."""
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
"""The :class:`TrainConfig` fields by name."""


def parse_scales(text: str) -> dict[str, float]:
    """``learning_rate_scales`` as ``{prefix: scale}``.

    >>> parse_scales("dynamics_projection=10, trunk=0.5")
    {'dynamics_projection': 10.0, 'trunk': 0.5}
    """
    scales = parse_pairs(text, "learning_rate_scales", "PREFIX=SCALE")
    for prefix, scale in scales.items():
        if not (prefix and math.isfinite(scale) and scale > 0):
            raise ValueError(f"learning_rate_scales: {prefix}={scale:g} needs a name prefix and a positive scale")
    return scales


def coerce_setting(name: str, value: Any) -> Any:
    """``value`` as the type of field ``name``, so that YAML's ``1e-3`` (a string), ``"8"`` or ``"yes"`` work.

    Args:
        name: a :class:`TrainConfig` field name.
        value: the value as read from a file or a flag.

    Returns:
        The value as a ``bool``, ``int``, ``float``, ``str`` or ``dict``, whichever the field's default is.

    Raises:
        ValueError: when ``value`` cannot be read as that type (an ``int`` field takes only whole numbers).

    >>> coerce_setting("learning_rate", "1e-3"), coerce_setting("steps", 8.0), coerce_setting("resume", "yes")
    (0.001, 8, True)
    """
    kind = type(getattr(TrainConfig(), name))
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
    elif kind in (dict, str):
        if isinstance(value, kind):
            return kind(value)
    elif not isinstance(value, (bool, dict, list)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if kind is float or number.is_integer():
            return kind(number)
    raise ValueError(f"{name} must be {kind.__name__}, got {value!r}")


def config_from_file(path: str | Path) -> dict[str, Any]:
    """Settings from a YAML or JSON file.

    Args:
        path: a file holding a mapping of :class:`TrainConfig` field names to values.

    Returns:
        The settings it names, each coerced to its field's type (:func:`coerce_setting`).

    Raises:
        ValueError: when the file is missing, unparsable, not a mapping, or names an unknown setting.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"cannot parse config file {path}: {error}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {path} must hold a mapping of settings")
    unknown = sorted(set(loaded) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown settings in {path}: {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    return {name: coerce_setting(name, value) for name, value in loaded.items()}


def stored_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings saved in the run's ``last.pt``, for resuming it with the settings it started with.

    Args:
        config: names the run (``models_dir`` and :attr:`TrainConfig.name`).

    Returns:
        The stored settings (empty when there is no ``last.pt``), minus keys this version does not know
        and ``init_from`` (a resumed run continues from its own weights).
    """
    path = Path(config.models_dir) / config.name / "last.pt"
    if not path.is_file():
        return {}
    stored = load_checkpoint(path)["config"]
    return {name: value for name, value in stored.items() if name in FIELDS and name != "init_from"}
