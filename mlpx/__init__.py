"""mlpx: a NumPy multi-layer perceptron trainer with pluggy plugins, Hydra configs and MLflow tracking."""

__version__ = "0.1.0"

from mlpx.hookspecs import hookimpl  # noqa: E402  (plugins write `@mlpx.hookimpl`)

__all__ = ["__version__", "hookimpl"]
