"""The exception tree: every error mlpx raises on purpose says what, where, and what to do next."""


class MlpxError(Exception):
    """Base class for errors a user can act on; the CLI prints these without a traceback."""


class ConfigError(MlpxError):
    """A configuration value is valid for Hydra but unusable for mlpx (e.g. an empty layer list)."""


class PluginError(MlpxError):
    """A plugin is missing, broken, or rejected its hyperparameters."""


class DataError(MlpxError):
    """A data file is missing, corrupt, truncated or not what it claims to be."""


class DivergenceError(MlpxError):
    """Training produced a non-finite or exploding loss, at ``epoch`` and ``step`` (1-based)."""

    def __init__(self, message: str, epoch: int = 0, step: int = 0) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


class TrackingError(MlpxError):
    """The MLflow tracking store cannot be reached or used."""
