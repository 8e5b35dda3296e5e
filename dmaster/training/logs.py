"""Where a run's numbers go: CSV files, ``config.json``, TensorBoard when installed, and progress lines.

Under ``LOGS_DIR/RUN/``: ``train.csv`` (one row per step), ``val.csv`` (one row per validation,
with the degraded audio's own metrics alongside) and ``config.json`` (the run's settings).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .config import TrainConfig

__all__ = ["CsvLog", "RunLog", "open_tensorboard"]


class CsvLog:
    """Appends rows to a CSV file; the columns are fixed by the first row.

    Args:
        path: the file; its folder is created.
        resume_step: when given and the file exists, its rows up to this step are kept (rows past it
            are dropped, so the log reads as one run); otherwise the file starts empty.
    """

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.columns: list[str] | None = None
        rows: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self.columns = list(reader.fieldnames or []) or None
                rows = [row for row in reader if int(float(row["step"])) <= resume_step]
        self.handle = path.open("w", newline="")
        self.writer: csv.DictWriter | None = None
        if self.columns:
            self._start(self.columns)
            self.writer.writerows(rows)
            self.handle.flush()

    def _start(self, columns: list[str]) -> None:
        self.columns = columns
        self.writer = csv.DictWriter(self.handle, columns, extrasaction="ignore")
        self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` (floats to 6 significant digits; keys not among the columns are left out)."""
        if self.writer is None:
            self._start(list(row))
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def open_tensorboard(log_dir: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` into ``log_dir`` when ``tensorboard`` is installed, else ``None``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


class RunLog:
    """Rank 0's record of a run: the CSV logs, ``config.json``, TensorBoard and the printed progress.

    Args:
        log_dir: the run's log folder, ``LOGS_DIR/RUN``.
        config: the run's settings (written to ``config.json``; ``steps`` and ``log_every`` set the
            progress lines).
        resume_step: the step a resumed run continues from (rows past it are dropped), or ``None``.
    """

    def __init__(self, log_dir: Path, config: TrainConfig, resume_step: int | None):
        self.steps, self.log_every = config.steps, config.log_every
        self.train_csv = CsvLog(log_dir / "train.csv", resume_step)
        self.val_csv = CsvLog(log_dir / "val.csv", resume_step)
        (log_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        self.tensorboard = open_tensorboard(log_dir)

    def _scalars(self, prefix: str, values: dict[str, Any], step: int) -> None:
        if self.tensorboard:
            for name, value in values.items():
                self.tensorboard.add_scalar(f"{prefix}/{name}", value, step)

    def training_step(self, row: dict[str, Any], terms: dict[str, float]) -> None:
        """Log one optimiser step; print a progress line at step 1 and every ``log_every`` steps.

        Args:
            row: the ``train.csv`` row: ``step``, ``loss``, the terms, ``grad_norm``, ``lr``, ``seconds``
                (of the step) and ``skipped`` (1 when a non-finite gradient skipped the update).
            terms: the loss terms, for the progress line.
        """
        step = row["step"]
        self.train_csv.write(row)
        self._scalars("train", row, step)
        if step % self.log_every == 0 or step == 1:
            detail = " ".join(f"{k} {v:.4f}" for k, v in terms.items())
            print(f"step {step}/{self.steps} loss {row['loss']:.4f} ({detail}) lr {row['lr']:.2e} "
                  f"{row['seconds']:.2f} s/step", flush=True)

    def validation(self, step: int, metrics: dict[str, float], baseline: dict[str, float], is_best: bool) -> None:
        """Log and print one validation.

        Args:
            step: the step validated at.
            metrics: :func:`~dmaster.training.validation.validate`'s result.
            baseline: :func:`~dmaster.training.validation.degraded_baseline`'s result.
            is_best: whether this validation is the best of the run so far.
        """
        self.val_csv.write({"step": step, **metrics, **baseline})
        self._scalars("val", metrics, step)
        print(f"validation at step {step}: " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
              + f" (degraded: mrstft {baseline['degraded_mrstft']:.4g}, si_sdr "
              f"{baseline['degraded_si_sdr']:.4g})" + (" — best so far" if is_best else ""), flush=True)

    def close(self) -> None:
        for log in (self.train_csv, self.val_csv):
            log.close()
        if self.tensorboard:
            self.tensorboard.close()
