"""Offline tracking with real processes: ``python -m mlpx tracking.offline=true`` while no server
runs, then a real ``mlflow server`` and ``mlpx sync RUN_DIR``, read back through ``MlflowClient``.

Each case checks that the run exists once, FINISHED, with every epoch of every metric, its params,
tags, datasets, artifacts and model, however often or however interrupted the sync was.
"""

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlpx.tracking.spool import MAPPING_FILE, PROGRESS_FILE, SPOOL_FILE, read_spool, sent_records
from tests.conftest import SMALL, _free_port, hermetic_environment, running_mlflow_server, stop_process
from tests.test_faults import Mlpx, _all_runs, _epochs

pytestmark = pytest.mark.fault

EPOCHS = 3
ARGS = [*[o for o in SMALL if not o.startswith("trainer.epochs")], f"trainer.epochs={EPOCHS}"]
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_ce", "val_acc", "lr", "grad_norm/layer1")


class Listener:
    """A TCP port that accepts and counts connections: proof that nobody tried to reach it."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.socket.close()


def _offline_run(tmp_path: Path, cache: Path, uri: str, extra=(), env=None) -> Mlpx:
    """An offline run of ``EPOCHS`` epochs whose server is ``MLFLOW_TRACKING_URI``; its closing
    line names the folder."""
    mlpx = Mlpx([*ARGS, *extra], tmp_path, cache, env={"MLFLOW_TRACKING_URI": uri, **(env or {})})
    assert mlpx.wait(timeout=120) == 0, mlpx.output
    return mlpx


def _kept_folder(mlpx: Mlpx) -> Path:
    (said,) = [line for line in mlpx.lines if "ended FINISHED offline" in line]
    folder = Path(re.search(r"`mlpx sync (\S+)`", said).group(1))
    assert f"kept in {folder}" in said
    return folder


def _sync(folder: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlpx", "sync", str(folder)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=hermetic_environment(),
    )


def _assert_complete_once(client: MlflowClient, folder_tag: str):
    """One FINISHED run with every epoch of every metric once, and all the rest of the run."""
    (run,) = _all_runs(client)
    assert run.info.status == "FINISHED"
    run_id = run.info.run_id
    for key in EPOCH_METRICS:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert steps == list(range(1, EPOCHS + 1)), (key, steps)  # each epoch, none twice
    for key in ("test_acc", "gradcheck_rel_err"):
        assert len(client.get_metric_history(run_id, key)) == 1, key
    assert run.data.params["trainer.epochs"] == str(EPOCHS) and run.data.params["tracking.offline"] == "True"
    assert run.data.tags["mlpx.output_dir"] == folder_tag
    assert run.data.tags["mlpx.plugin.optimizer"] == "momentum"
    assert "mlflow.note.content" in run.data.tags and "mlpx.offline_id" in run.data.tags
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {
        "mnist_train",
        "mnist_validation",
        "mnist_test",
    }
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "weights.npz", "diagnosis.md", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/curves.png", "plots/health.png", "plots/confusion_matrix.png"} <= plots
    (model,) = client.search_logged_models([run.info.experiment_id])  # logged once, by the sync
    assert model.source_run_id == run_id and model.status == "READY"
    return run


def test_an_offline_run_contacts_no_server_and_mlpx_sync_creates_it_once(tmp_path, mnist_cache):
    listener = Listener()  # MLFLOW_TRACKING_URI points here: the run must never connect
    uri = f"http://127.0.0.1:{listener.port}"
    try:
        started = time.monotonic()
        mlpx = _offline_run(tmp_path, mnist_cache, uri, ["tracking.offline=true"])
        seconds = time.monotonic() - started
    finally:
        listener.close()
    assert listener.connections == 0, "an offline run contacted the tracking server"
    assert seconds < 60 and re.search(rf"epoch\s+{EPOCHS}/{EPOCHS}", mlpx.output)
    folder = _kept_folder(mlpx)
    assert f"MLflow run kept offline in {folder} (tracking.offline=true)" in mlpx.output  # no "run None"
    assert "MLflow run None" not in mlpx.output
    header = read_spool(folder)[0]
    assert header["uri"] == uri and header["run_id"] is None  # MLFLOW_TRACKING_URI was honoured
    ended = read_spool(folder)[-1]
    assert ended["method"] == "close" and ended["args"][0] == "FINISHED"

    root = tmp_path / "server"
    root.mkdir()
    with running_mlflow_server(root, f"sqlite:///{root / 'server.db'}", listener.port):
        client = MlflowClient(uri)
        first = _sync(folder)
        assert first.returncode == 0, first.stderr
        assert "offline run" in first.stdout
        run = _assert_complete_once(client, str(folder))
        # the run's own timing, not the sync's: it started before its first metric, ended after its last
        last_metric = max(m.timestamp for m in client.get_metric_history(run.info.run_id, "test_acc"))
        assert (
            run.info.start_time
            <= client.get_metric_history(run.info.run_id, "gradcheck_rel_err")[0].timestamp
        )
        assert last_metric <= run.info.end_time == ended["kwargs"]["end_time"]
        assert (folder / MAPPING_FILE).is_file()

        second = _sync(folder)  # sends nothing twice
        assert second.returncode == 0, second.stderr
        assert "nothing to send" in second.stdout and run.info.run_id in second.stdout
        _assert_complete_once(client, str(folder))


def test_a_sync_killed_half_way_or_started_over_duplicates_nothing(tmp_path, mnist_cache):
    port = _free_port()  # nobody listens: refused at once
    uri = f"http://127.0.0.1:{port}"
    mlpx = _offline_run(tmp_path, mnist_cache, uri, ["tracking.offline=true"])
    kept = _kept_folder(mlpx)
    folder = tmp_path / "copied-elsewhere"  # a compute node's run folder, copied to a machine with network
    shutil.copytree(kept, folder)
    shutil.rmtree(kept)
    records = len(read_spool(folder)) - 1

    root = tmp_path / "server"
    root.mkdir()
    with running_mlflow_server(root, f"sqlite:///{root / 'server.db'}", port):
        client = MlflowClient(uri)
        sync = subprocess.Popen(
            [sys.executable, "-m", "mlpx", "sync", str(folder)],
            env=hermetic_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while sent_records(folder) < 3 and sync.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)  # the run created, its params and config sent; the model takes seconds
        finally:
            stop_process(sync, signal.SIGKILL)
        assert 3 <= sent_records(folder) < records, (sent_records(folder), records, sync.stdout.read())
        (half,) = _all_runs(client)
        assert half.info.status == "RUNNING"

        resumed = _sync(folder)
        assert resumed.returncode == 0, resumed.stderr
        run = _assert_complete_once(client, str(kept))

        # a sync killed after the server created the run but before the folder noted it: started
        # over from the first record, it finds the run by its mlpx.offline_id tag
        (folder / MAPPING_FILE).unlink()
        (folder / PROGRESS_FILE).unlink()
        again = _sync(folder)
        assert again.returncode == 0, again.stderr
        assert _assert_complete_once(client, str(kept)).info.run_id == run.info.run_id


def test_a_server_that_dies_mid_sync_fails_the_sync_clearly_and_the_next_one_finishes(tmp_path, mnist_cache):
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    folder = _kept_folder(_offline_run(tmp_path, mnist_cache, uri, ["tracking.offline=true"]))
    root = tmp_path / "server"
    root.mkdir()
    backend = f"sqlite:///{root / 'server.db'}"
    with running_mlflow_server(root, backend, port):
        sync = subprocess.Popen(
            [sys.executable, "-m", "mlpx", "sync", str(folder)],
            env=hermetic_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 120
        while sent_records(folder) < 3 and sync.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
    stopped = time.monotonic()  # the server is gone mid-sync
    try:
        output, _ = sync.communicate(timeout=90)
    finally:
        sync.kill()
    assert sync.returncode == 1, output
    assert time.monotonic() - stopped < 60, "a dead server must not hold the sync up"
    assert f"to {uri}" in output and f"Run `mlpx sync {folder}` again" in output
    with running_mlflow_server(root, backend, port):
        resumed = _sync(folder)
        assert resumed.returncode == 0, resumed.stderr
        _assert_complete_once(MlflowClient(uri), str(folder))


def test_without_offline_mode_an_unreachable_server_stops_the_run_naming_it(workdir, run_mlpx):
    uri = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    completed = run_mlpx([*ARGS, f"tracking.uri={uri}"], cwd=workdir, env={"HYDRA_FULL_ERROR": "0"})
    assert completed.returncode == 1
    assert time.monotonic() - started < 30
    assert f"cannot reach the MLflow tracking server at {uri}" in completed.stderr
    assert "tracking.offline=true" in completed.stderr  # the way out, named
    assert "epoch 1/" not in completed.stderr
    assert not list(workdir.rglob(SPOOL_FILE))  # nothing went offline unasked


def test_offline_auto_goes_offline_only_when_the_server_does_not_answer_at_start(
    tmp_path, mnist_cache, mlflow_server
):
    down = f"http://127.0.0.1:{_free_port()}"
    auto = {"MLPX_TRACKING_OFFLINE": "auto"}  # the variable, for a batch job's environment
    fallen_back = _offline_run(tmp_path, mnist_cache, down, env=auto)
    (warned,) = [line for line in fallen_back.lines if "offline (tracking.offline=auto" in line]
    assert "WARNING" in warned and f"the server at {down} did not answer at start" in warned
    assert (_kept_folder(fallen_back) / SPOOL_FILE).is_file()

    online = Mlpx([*ARGS, f"tracking.uri={mlflow_server}"], tmp_path, mnist_cache, env=auto)
    assert online.wait(timeout=120) == 0, online.output
    assert "offline" not in online.output
    (run,) = [
        r for r in _all_runs(MlflowClient(mlflow_server)) if r.data.params["tracking.offline"] == "auto"
    ]
    assert run.info.status == "FINISHED" and _epochs(MlflowClient(mlflow_server), run) == [1, 2, 3]
    assert not list(Path(run.data.tags["mlpx.output_dir"]).glob(SPOOL_FILE))


@pytest.mark.parametrize("mode", ["true", "auto"])
def test_a_sweep_refuses_offline_mode_before_any_job_and_contacts_no_server(workdir, run_mlpx, mode):
    listener = Listener() if mode == "true" else None  # auto asks the server once: nobody answers
    uri = f"http://127.0.0.1:{listener.port if listener else _free_port()}"
    args = ["-m", "seed=0,1", *ARGS, f"tracking.uri={uri}", f"tracking.offline={mode}"]
    try:
        completed = run_mlpx(args, cwd=workdir, env={"HYDRA_FULL_ERROR": "0"})
    finally:
        if listener:
            listener.close()
    assert completed.returncode == 1, completed.stderr
    assert "mlpx: a sweep (-m) cannot be tracked offline" in completed.stderr
    assert "epoch 1/" not in completed.stderr and not (workdir / "outputs" / "multirun").exists()
    assert listener is None or listener.connections == 0


@pytest.mark.fault
@pytest.mark.parametrize("group", [False, True], ids=["main", "group"])
def test_an_offline_run_killed_with_sigkill_syncs_ended_not_running(tmp_path, mnist_cache, group):
    # main only: its helper ends the run in the spool; the whole group: the spool has no end,
    # and mlpx sync, seeing the owner dead, ends the run FAILED instead of leaving it RUNNING
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    long = [*[o for o in ARGS if not o.startswith("trainer.epochs")], "trainer.epochs=200"]
    mlpx = Mlpx([*long, "tracking.offline=true"], tmp_path, mnist_cache, env={"MLFLOW_TRACKING_URI": uri})
    mlpx.wait_line(r"epoch\s+3/200")
    mlpx.send(signal.SIGKILL, group)
    mlpx.wait()
    time.sleep(1)  # the helper, when alive, notices the closed pipe and writes the run's end
    (folder,) = [p.parent for p in (tmp_path / "outputs" / "runs").rglob(SPOOL_FILE)]
    root = tmp_path / "server"
    root.mkdir()
    with running_mlflow_server(root, f"sqlite:///{root / 'server.db'}", port):
        synced = _sync(folder)
        assert synced.returncode == 0, synced.stderr
        (run,) = _all_runs(MlflowClient(uri))
        assert run.info.status == "FAILED"
        assert "died before it ended the run" in run.data.tags["mlpx.error"]
        epochs = _epochs(MlflowClient(uri), run)
        assert len(epochs) >= 2 and epochs == list(range(1, len(epochs) + 1))  # nothing lost


def test_sync_of_a_folder_kept_for_a_sqlite_store_that_is_not_here_asks_for_the_store(tmp_path):
    folder = tmp_path / "copied-run"
    folder.mkdir()
    missing = tmp_path / "elsewhere" / "mlflow.db"
    header = {"uri": f"sqlite:///{missing}", "run_id": "0123abcd", "cause": "copied from a node"}
    record = {"method": "log_metrics", "args": [{"val_ce": 1.0}, 1, 0], "kwargs": {}}
    (folder / SPOOL_FILE).write_text(json.dumps(header) + "\n" + json.dumps(record) + "\n")
    synced = _sync(folder)
    assert synced.returncode == 1
    assert f"kept for the SQLite store {missing}, which does not exist here" in synced.stderr
    assert f"`mlpx sync {folder} --uri URI`" in synced.stderr
    assert not missing.exists()  # no empty store made at the old machine's path
