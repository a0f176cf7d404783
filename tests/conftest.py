"""Shared fixtures: a pre-migrated MLflow store, a hermetic MNIST cache, and a CLI runner."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest

#: overrides that keep a real MNIST run to about a second of training
SMALL = [
    "data.train_size=2000",
    "data.val_size=1000",
    "data.test_size=2000",
    "trainer.epochs=2",
    "model.hidden=[32,16]",
]


@pytest.fixture(scope="session")
def mnist_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    """An empty SQLite store migrated once: copying it is far faster than migrating per test."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def workdir(tmp_path, migrated_store) -> Path:
    """A launch directory whose outputs/ already holds a migrated, empty MLflow store."""
    (tmp_path / "outputs").mkdir()
    shutil.copy(migrated_store, tmp_path / "outputs" / "mlflow.db")
    return tmp_path


def store_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}"


@pytest.fixture
def run_mlpx(mnist_cache):
    """Run the real CLI (`python -m mlpx ARGS`) in a directory; return the CompletedProcess."""

    def run(
        args: List[str], cwd: Path, env: Optional[dict] = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "XDG_CACHE_HOME": str(mnist_cache), "HYDRA_FULL_ERROR": "1"}
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "mlpx", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
