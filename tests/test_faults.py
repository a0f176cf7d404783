"""Fault injection with real processes: signals, SIGKILL, simultaneous first starts, broken stores.

Every case runs ``python -m mlpx`` in its own session (so a signal can reach its whole process
group, as a terminal's or a scheduler's does), reads the store back through ``MlflowClient``, and
checks that no run is left RUNNING, that every epoch logged before the fault is still there, and
that the store still takes a run. Every wait has a timeout.
"""

import os
import queue
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

from mlpx.tracking.stale_runs import owner_tags
from tests.conftest import (
    SMALL,
    _free_port,
    default_signals,
    hermetic_environment,
    running_mlflow_server,
    store_uri,
)

pytestmark = pytest.mark.fault

LONG = [*[o for o in SMALL if not o.startswith("trainer.epochs")], "trainer.epochs=200"]


class Mlpx:
    """``python -m mlpx ARGS`` in a new session; its merged output read by a thread."""

    def __init__(self, args, cwd: Path, cache: Path, env=None) -> None:
        full_env = {**hermetic_environment(), "XDG_CACHE_HOME": str(cache), **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlpx", *args],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=default_signals,
        )
        self.lines: list = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_line(self, pattern: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n{self.output}") from None
            if line is None:
                raise AssertionError(f"mlpx ended before a line matching {pattern!r}:\n{self.output}")
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def send(self, signum: int, group: bool) -> None:
        (os.killpg if group else os.kill)(self.process.pid, signum)

    def wait(self, timeout: float = 90) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"mlpx still running after {timeout} s:\n{self.output}") from None
        self._drain()
        return code

    def _drain(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                return
            self.lines.append(line)

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @property
    def output(self) -> str:
        return "".join(self.lines)


def _client(workdir: Path) -> MlflowClient:
    return MlflowClient(store_uri(workdir))


def _all_runs(client: MlflowClient, experiment: str = "mlpx"):
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])


def _epochs(client: MlflowClient, run) -> list:
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_ce"))


def _assert_store_still_works(workdir: Path, run_mlpx) -> None:
    completed = run_mlpx([*SMALL, "trainer.epochs=1", "tracking.plots=false"], cwd=workdir)
    assert completed.returncode == 0, completed.stderr
    assert not [r for r in _all_runs(_client(workdir)) if r.info.status == "RUNNING"]


@pytest.mark.parametrize(
    ("signum", "group"),
    [
        (signal.SIGTERM, False),
        (signal.SIGTERM, True),
        (signal.SIGHUP, False),
        (signal.SIGHUP, True),
        (signal.SIGINT, True),
    ],
    ids=["SIGTERM-main", "SIGTERM-group", "SIGHUP-main", "SIGHUP-group", "SIGINT-group"],
)
def test_signal_mid_training_ends_the_run_killed_keeping_its_epochs(
    workdir, mnist_cache, run_mlpx, signum, group
):
    mlpx = Mlpx(LONG, workdir, mnist_cache)
    mlpx.wait_line(r"epoch\s+3/200")  # epochs 1 and 2 were logged and synced before this line
    mlpx.send(signum, group)
    assert mlpx.wait() == 128 + signum, mlpx.output
    name = signal.Signals(signum).name
    assert "Traceback" not in mlpx.output
    client = _client(workdir)
    (run,) = _all_runs(client)
    assert run.info.status == "KILLED"
    assert run.data.tags["mlpx.interrupted"].startswith(f"interrupted by {name}")
    epochs = _epochs(client, run)
    assert len(epochs) >= 2 and epochs == list(range(1, len(epochs) + 1))  # none lost
    assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    (said,) = [line for line in mlpx.lines if line.startswith(f"mlpx: interrupted by {name}")]
    assert f"MLflow run {run.info.run_id} ended KILLED with {len(epochs)} epochs" in said
    assert run.data.tags["mlpx.output_dir"] in said
    _assert_store_still_works(workdir, run_mlpx)


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
@pytest.mark.parametrize("group", [True, False], ids=["group", "main"])
def test_sigterm_to_a_sweep_ends_the_jobs_and_the_parent_killed(workdir, mnist_cache, launcher, group):
    mlpx = Mlpx(["-m", f"hydra/launcher={launcher}", "seed=0,1,2", *LONG], workdir, mnist_cache)
    mlpx.wait_line(r"epoch\s+3/200")
    mlpx.send(signal.SIGTERM, group=group)
    assert mlpx.wait() == 143, mlpx.output
    client = _client(workdir)
    runs = _all_runs(client)
    (parent,) = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "KILLED"
    assert parent.data.tags["mlpx.interrupted"] == "interrupted by SIGTERM"
    assert f"the sweep's parent run {parent.info.run_id} ended KILLED" in mlpx.output
    # joblib runs two jobs at once: the one that printed epoch 3 and maybe another
    assert 1 <= len(children) <= (1 if launcher == "basic" else 2)
    assert [r.info.status for r in children] == ["KILLED"] * len(children)
    assert all(r.data.tags["mlpx.interrupted"].startswith("interrupted by SIGTERM") for r in children)
    assert max(len(_epochs(client, r)) for r in children) >= 2


def test_sigterm_during_start_up_leaves_nothing_running(workdir, mnist_cache):
    mlpx = Mlpx(SMALL, workdir, mnist_cache)
    time.sleep(1.5)  # composing the config, loading plugins and data, checking them
    mlpx.send(signal.SIGTERM, group=False)
    assert mlpx.wait() == 143, mlpx.output
    assert "Traceback" not in mlpx.output
    assert all(r.info.status == "KILLED" for r in _all_runs(_client(workdir)))


def test_sigterm_during_the_final_logging_leaves_nothing_running(workdir, mnist_cache, run_mlpx):
    mlpx = Mlpx(SMALL, workdir, mnist_cache)  # 2 epochs, then test set, weights, diagnosis, plots
    mlpx.wait_line(r"epoch\s+2/2")
    mlpx.send(signal.SIGTERM, group=True)
    code = mlpx.wait()
    client = _client(workdir)
    (run,) = _all_runs(client)
    # the signal lands during the final logging, or after the run was closed FINISHED
    assert (code, run.info.status) in {(143, "KILLED"), (143, "FINISHED"), (0, "FINISHED")}, mlpx.output
    assert _epochs(client, run) in ([1], [1, 2])
    _assert_store_still_works(workdir, run_mlpx)


def _wait_until_not_running(client, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        runs = _all_runs(client)
        if runs and all(r.info.status != "RUNNING" for r in runs):
            return runs
        assert time.monotonic() < deadline, [(r.info.run_id, r.info.status) for r in runs]
        time.sleep(0.5)


def test_sigkill_of_the_main_process_only_is_closed_by_its_helper(workdir, mnist_cache):
    mlpx = Mlpx(LONG, workdir, mnist_cache)
    mlpx.wait_line(r"epoch\s+3/200")
    mlpx.send(signal.SIGKILL, group=False)
    assert mlpx.wait() == -signal.SIGKILL
    try:
        (run,) = _wait_until_not_running(_client(workdir))
    finally:
        mlpx.kill()  # the helper, had it not ended
    assert run.info.status == "FAILED"
    assert f"the mlpx process {mlpx.process.pid} died" in run.data.tags["mlpx.error"]
    assert len(_epochs(_client(workdir), run)) >= 2


def test_sigkill_of_everything_is_cleaned_up_by_the_next_start(workdir, mnist_cache, run_mlpx):
    mlpx = Mlpx(LONG, workdir, mnist_cache)
    mlpx.wait_line(r"epoch\s+3/200")
    mlpx.send(signal.SIGKILL, group=True)  # main process and helper: nobody can close the run
    assert mlpx.wait() == -signal.SIGKILL
    client = _client(workdir)
    (dead,) = _all_runs(client)
    assert dead.info.status == "RUNNING"
    epochs_before = _epochs(client, dead)

    later = run_mlpx([*SMALL, "trainer.epochs=1", "tracking.plots=false"], cwd=workdir)
    assert later.returncode == 0, later.stderr
    assert f"run {dead.info.run_id}" in later.stderr and "was left RUNNING" in later.stderr
    dead, new = _all_runs(client)
    assert dead.info.status == "FAILED" and new.info.status == "FINISHED"
    assert (
        f"its process {mlpx.process.pid} on {socket.gethostname()} is gone"
        in dead.data.tags["mlpx.abandoned"]
    )
    assert dead.data.tags["mlpx.abandoned"].startswith("ended FAILED at ")
    assert dead.info.end_time <= new.info.start_time  # ended at its last heartbeat
    assert _epochs(client, dead) == epochs_before


def _running_run(client, experiment_id, name, tags):
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    return run.info.run_id


def test_stale_runs_only_dead_owners_of_this_host_and_silent_other_hosts(workdir, run_mlpx):
    client = _client(workdir)
    experiment_id = client.create_experiment("mlpx", artifact_location=str(workdir / "outputs" / "art"))
    me = owner_tags()  # this test process: alive
    hours_ago = str(int((time.time() - 5 * 3600) * 1000))
    ids = {
        "alive here": _running_run(client, experiment_id, "alive here", me),
        "pid reused": _running_run(client, experiment_id, "pid reused", {**me, "mlpx.pid_start": "1"}),
        "other host, silent": _running_run(
            client, experiment_id, "other host, silent",
            {**me, "mlpx.host": "elsewhere", "mlpx.heartbeat": hours_ago},
        ),
        "other host, beating": _running_run(
            client, experiment_id, "other host, beating", {**me, "mlpx.host": "elsewhere"}
        ),
        "not mlpx's": _running_run(client, experiment_id, "not mlpx's", {}),
    }  # fmt: skip
    completed = run_mlpx(
        [*SMALL, "trainer.epochs=1", "tracking.plots=false"],
        cwd=workdir,
        env={"MLPX_HEARTBEAT_TIMEOUT": "3600"},
    )
    assert completed.returncode == 0, completed.stderr
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {
        "alive here": "RUNNING",
        "pid reused": "FAILED",
        "other host, silent": "FAILED",
        "other host, beating": "RUNNING",
        "not mlpx's": "RUNNING",
    }
    silent = client.get_run(ids["other host, silent"]).data.tags["mlpx.abandoned"]
    assert "no heartbeat from process" in silent and "on elsewhere for 5.0 h" in silent
    for run_id in ids.values():  # leave the shared store tidy
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "KILLED")


@pytest.mark.parametrize("processes", [4, 8])
def test_simultaneous_first_starts_on_a_new_store_all_finish_in_their_own_folders(
    tmp_path, mnist_cache, processes
):
    args = [*SMALL, "trainer.epochs=1", "tracking.plots=false", "checks.enabled=false"]
    started = [Mlpx(args, tmp_path, mnist_cache) for _ in range(processes)]  # no outputs/: no store
    codes = [p.wait(timeout=300) for p in started]
    assert codes == [0] * processes, "\n\n".join(p.output for p in started)
    assert not any("database is locked" in p.output for p in started)
    client = _client(tmp_path)
    runs = _all_runs(client)
    # all FINISHED: none taken for a dead process's run by another one's clean-up either
    assert [r.info.status for r in runs] == ["FINISHED"] * processes
    folders = {r.data.tags["mlpx.output_dir"] for r in runs}
    assert len(folders) == processes
    for folder in folders:  # each run's own log holds one run
        assert Path(folder, "mlpx.log").read_text().count("epoch 1/1") == 1
    assert (tmp_path / "outputs" / "mlflow.db.lock").exists()


def _half_made_store(path: Path) -> str:
    """A store whose first migration stopped half-way: an older schema and a leftover temp table,
    as two processes migrating one new store at once leave it."""
    import sqlalchemy
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import InitialBase, _get_alembic_config

    uri = f"sqlite:///{path}"
    engine = sqlalchemy.create_engine(uri)
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(uri)
    revisions = list(ScriptDirectory.from_config(config).walk_revisions())  # newest first
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revisions[-2].revision)  # the first migration done, the next cut short
    with engine.begin() as connection:
        for table in ("_alembic_tmp_metrics", "_alembic_tmp_latest_metrics"):
            connection.execute(sqlalchemy.text(f"CREATE TABLE {table} (key VARCHAR(250))"))
    engine.dispose()
    return uri


@pytest.mark.parametrize("fix", ["replace", "repair"])
def test_half_made_store_names_the_file_and_the_command_that_fixes_it(tmp_path, run_mlpx, fix):
    (tmp_path / "outputs").mkdir()
    database = tmp_path / "outputs" / "mlflow.db"
    uri = _half_made_store(database)
    args = [*SMALL, "trainer.epochs=1", "tracking.plots=false"]
    broken = run_mlpx(args, cwd=tmp_path, env={"HYDRA_FULL_ERROR": "0"})
    assert broken.returncode == 1
    message = broken.stderr
    assert f"the MLflow store {database} was left half-made" in message, message
    assert "table _alembic_tmp_metrics" in message
    assert "Traceback" not in message
    commands = re.findall(r"`([^`]+)`", message)
    if fix == "replace":
        assert f"mv {database} {database}.broken" in commands
        shutil.move(database, f"{database}.broken")
    else:
        repair = [c for c in commands if c.startswith("python -c") or c.startswith("mlflow db upgrade")]
        assert repair[-1] == f"mlflow db upgrade {uri}"
        for command in repair:
            argv = (
                [sys.executable, "-m", "mlflow", *command.split()[1:]]
                if command.startswith("mlflow")
                else None
            )
            if argv is None:  # python -c "..."
                argv = [sys.executable, "-c", command[len('python -c "') : -1]]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
    fixed = run_mlpx(args, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr


def test_mlflow_environment_variables_choose_the_store_unless_the_command_line_does(
    workdir, run_mlpx, migrated_store, tmp_path
):
    team = tmp_path / "team.db"
    shutil.copy(migrated_store, team)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{team}", "MLFLOW_EXPERIMENT_NAME": "team-exp"}
    args = [*SMALL, "trainer.epochs=1", "tracking.plots=false"]
    completed = run_mlpx(args, cwd=workdir, env=env)
    assert completed.returncode == 0, completed.stderr
    (run,) = _all_runs(MlflowClient(f"sqlite:///{team}"), "team-exp")
    assert f"MLflow run {run.info.run_id} in experiment 'team-exp'" in completed.stdout
    assert f"sqlite:///{team}" in completed.stdout  # the closing line says where it went
    assert _all_runs(_client(workdir)) == []

    chosen = run_mlpx(
        [*args, f"tracking.uri={store_uri(workdir)}", "tracking.experiment=mlpx"], cwd=workdir, env=env
    )
    assert chosen.returncode == 0, chosen.stderr
    assert len(_all_runs(_client(workdir))) == 1


def test_a_failed_run_prints_its_run_id(workdir, run_mlpx):
    completed = run_mlpx([*SMALL, "model.hidden=[32,0]"], cwd=workdir, env={"HYDRA_FULL_ERROR": "0"})
    assert completed.returncode == 1
    (run,) = _all_runs(_client(workdir))
    assert f"MLflow run {run.info.run_id} ended FAILED" in completed.stderr
    assert store_uri(workdir) in completed.stderr


SLOW_EPOCHS = """
import time

import mlpx


@mlpx.hookimpl
def on_epoch_end(epoch):
    time.sleep(1.0)  # time to kill the server while the run trains
"""


def test_a_tracking_server_killed_mid_run_loses_nothing_and_mlpx_sync_sends_it(tmp_path, mnist_cache):
    root, plugins = tmp_path / "server", tmp_path / "plugins"
    root.mkdir()
    plugins.mkdir()
    (plugins / "slow_epochs.py").write_text(SLOW_EPOCHS)
    backend, port = f"sqlite:///{root / 'server.db'}", _free_port()
    args = [*[o for o in SMALL if not o.startswith("trainer.epochs")], "trainer.epochs=8"]
    with running_mlflow_server(root, backend, port) as uri:
        mlpx = Mlpx(
            [*args, f"tracking.uri={uri}"], tmp_path, mnist_cache, env={"MLPX_PLUGINS_DIR": str(plugins)}
        )
        mlpx.wait_line(r"epoch\s+2/8")
    killed = time.monotonic()  # the server is gone: stopped and waited for
    assert mlpx.wait(timeout=120) == 0, mlpx.output
    assert time.monotonic() - killed < 60, "a dead server must not hold the run up"
    (said,) = [line for line in mlpx.lines if "stopped answering" in line]
    folder = re.search(r"`mlpx sync (\S+)`", said).group(1)
    assert (Path(folder) / "mlflow-unsent.jsonl").is_file()
    assert re.search(r"epoch\s+8/8", mlpx.output)  # training went on

    with running_mlflow_server(root, backend, port) as uri:
        client = MlflowClient(uri)
        (run,) = _all_runs(client)
        assert run.info.status == "RUNNING" and len(_epochs(client, run)) < 8
        sync = [sys.executable, "-m", "mlpx", "sync", folder]
        for _ in range(2):  # the second sends nothing twice
            done = subprocess.run(
                sync, capture_output=True, text=True, timeout=120, env=hermetic_environment()
            )
            assert done.returncode == 0, done.stderr
            run = client.get_run(run.info.run_id)
            assert run.info.status == "FINISHED"
            assert _epochs(client, run) == list(range(1, 9))
        assert "nothing to send" in done.stdout
        assert "test_acc" in run.data.metrics
        assert {"weights.npz", "plots"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
        (model,) = client.search_logged_models([run.info.experiment_id])  # logged by the replay
        assert model.source_run_id == run.info.run_id
