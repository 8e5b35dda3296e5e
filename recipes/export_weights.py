"""Copy a training checkpoint without its optimiser state (for shipping inside the package).

    python recipes/export_weights.py models/RUN/best.pt dmaster/weights/param.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

from dmaster.checkpoint import load_checkpoint, load_model, save_checkpoint


def main(source: Path, destination: Path) -> None:
    checkpoint = load_checkpoint(source)
    model, config = load_model(source)
    save_checkpoint(destination, model, checkpoint["model_kind"], config, checkpoint["step"],
                    best_metric=checkpoint.get("best_metric"))
    print(f"{destination}: {destination.stat().st_size / 1e6:.1f} MB, step {checkpoint['step']}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
