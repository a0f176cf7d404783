"""Shared fixtures: a pre-migrated MLflow store, a hermetic MNIST cache, a CLI runner, an MLflow server."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List, Optional

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


def hermetic_environment() -> dict:
    """This environment without MLflow's variables that would send the runs elsewhere."""
    return {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")}


def store_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}"


@pytest.fixture
def run_mlpx(mnist_cache):
    """Run the real CLI (`python -m mlpx ARGS`) in a directory; return the CompletedProcess."""

    def run(
        args: List[str], cwd: Path, env: Optional[dict] = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        full_env = {**hermetic_environment(), "XDG_CACHE_HOME": str(mnist_cache), "HYDRA_FULL_ERROR": "1"}
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_mlflow_server(root: Path, backend_store_uri: str, port: Optional[int] = None) -> Iterator[str]:
    """A real `mlflow server` on a free loopback port (or ``port``) serving artifacts from root;
    yields its URI."""
    port = port or _free_port()
    uri = f"http://127.0.0.1:{port}"
    with open(root / "server.log", "w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                backend_store_uri,
                "--artifacts-destination",
                str(root / "artifacts"),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (root / "server.log").read_text()
                    raise RuntimeError(f"mlflow server did not start: {log}") from None
                time.sleep(0.5)
        yield uri
    finally:
        stop_process(process, signal.SIGTERM)


def default_signals() -> None:
    """A ``preexec_fn``: SIGINT, SIGTERM and SIGHUP at their defaults in the child, whatever this
    test run inherited (a shell's background job ignores SIGINT, ``nohup`` SIGHUP, and mlpx
    rightly keeps an inherited SIG_IGN), so the signal tests test mlpx's own handling."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def stop_process(process: subprocess.Popen, first_signal: int) -> None:
    """Send ``first_signal`` to the process group, then SIGKILL if it is still there after 30 s."""
    with contextlib.suppress(ProcessLookupError):  # a server that failed to start is gone already
        os.killpg(process.pid, first_signal)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on a free loopback port with a SQLite backend and artifact serving."""
    root = tmp_path_factory.mktemp("server")
    with running_mlflow_server(root, f"sqlite:///{root / 'server.db'}") as uri:
        yield uri
