"""A training run's scalars (each metrics.csv row) in TensorBoard's format, where it is installed."""

from __future__ import annotations

from pathlib import Path


class TensorBoard:
    """Scalars to ``RUN/tensorboard`` when TensorBoard is installed; nothing otherwise."""

    def __init__(self, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        except (ImportError, ModuleNotFoundError):
            self.writer = None

    def add(self, row: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in row.items():
                if key != "step":
                    self.writer.add_scalar(key, value, int(row["step"]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

