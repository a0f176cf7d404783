"""Early stopping on a validation metric, as a lifecycle plugin (``trainer.early_stopping``)."""

from typing import Dict, Optional

import numpy as np

from mlpx.hookspecs import hookimpl


class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Lower is better for losses (``val_loss``, ``val_ce``), higher for ``val_acc``. With
    ``restore_best`` the weights of the best epoch are copied back into the model on stopping.
    """

    def __init__(
        self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, restore_best: bool = True
    ) -> None:
        if patience < 1:
            raise ValueError(f"trainer.early_stopping.patience must be >= 1, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.restore_best = restore_best
        self.sign = -1.0 if monitor.endswith("acc") else 1.0  # minimise sign * value
        self.best: Optional[float] = None
        self.best_epoch = 0
        self._best_weights: Dict[str, np.ndarray] = {}

    @hookimpl
    def on_epoch_end(self, run, epoch: int, metrics) -> Optional[str]:
        if self.monitor not in metrics:
            raise KeyError(
                f"trainer.early_stopping.monitor: no metric named '{self.monitor}' "
                f"(available: {', '.join(sorted(metrics))})"
            )
        value = self.sign * metrics[self.monitor]
        if self.best is None or value < self.best - self.min_delta:
            self.best, self.best_epoch = value, epoch
            if self.restore_best:
                self._best_weights = run.model.weights()
            return None
        if epoch - self.best_epoch < self.patience:
            return None
        reason = (
            f"stopped after epoch {epoch}: {self.monitor} did not improve by more than "
            f"{self.min_delta:g} for {self.patience} epochs; best {self.sign * self.best:.4f} "
            f"at epoch {self.best_epoch}"
        )
        if self.restore_best:
            for key, saved in self._best_weights.items():
                np.copyto(run.model.params[key], saved)
            run.restored_epoch = self.best_epoch
            run.tags["mlpx.restored_epoch"] = str(self.best_epoch)
            reason += ", whose weights were restored"
        return reason
