"""MLflow tracking through the real CLI, read back with MlflowClient from real SQLite stores."""

import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from mlflow import MlflowClient

from mlpx.errors import TrackingError
from mlpx.tracking import helper as helper_process
from mlpx.tracking.helper import HelperProcess, RemoteRecorder
from mlpx.tracking.tracker import MlflowTracker
from tests.conftest import SMALL, store_uri


def _runs(workdir, **filters):
    client = MlflowClient(store_uri(workdir))
    experiment = client.get_experiment_by_name("mlpx")
    assert experiment is not None
    return client, client.search_runs([experiment.experiment_id], **filters)


def test_run_logs_params_metric_histories_tags_and_artifacts(workdir, run_mlpx, tmp_path):
    completed = run_mlpx([*SMALL, "optimizer.lr=0.05"], cwd=workdir)
    assert completed.returncode == 0, completed.stderr
    client, runs = _runs(workdir)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_id in completed.stdout  # the closing summary names the run
    assert "test_acc" in completed.stdout
    assert "epoch 2/2" in completed.stderr and "val_acc" in completed.stderr

    params = run.data.params
    assert params["optimizer.lr"] == "0.05"
    assert params["optimizer.name"] == "momentum"
    assert params["model.hidden"] == "[32, 16]"
    assert params["trainer.epochs"] == "2"
    assert params["seed"] == "0"
    assert params["tracking.uri"] == store_uri(workdir)

    for key in ("train_loss", "val_loss", "val_ce", "val_acc", "epoch_seconds"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == [1, 2], key
    assert 0.5 < run.data.metrics["test_acc"] <= 1.0
    assert run.data.metrics["test_ce"] > 0

    tags = run.data.tags
    assert tags["mlpx.plugin.optimizer"] == "momentum"
    assert tags["mlpx.plugin.loss"] == "cross_entropy"
    assert tags["mlpx.plugin.activation.source"] == "built-in"
    assert tags["mlpx.plugin.activation.version"]
    assert tags["mlpx.data.train_size"] == "2000"

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "weights.npz"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "weights.npz", str(tmp_path))
    with np.load(local, allow_pickle=False) as weights:
        assert weights["W1"].shape == (784, 32) and weights["W3"].shape == (16, 10)
    config_text = open(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))).read()
    assert "lr: 0.05" in config_text and "${" not in config_text  # resolved
    # the store and artifacts live under the launch directory's outputs/, absolute
    assert (workdir / "outputs" / "mlartifacts").is_dir()


def test_same_seed_gives_identical_metrics_in_mlflow(workdir, run_mlpx):
    for _ in range(2):  # a fixed thread count: auto may pick another, which changes the last bits
        assert run_mlpx([*SMALL, "trainer.blas_threads=2"], cwd=workdir).returncode == 0
    client, runs = _runs(workdir)
    histories = [
        [m.value for m in sorted(client.get_metric_history(r.info.run_id, "val_ce"), key=lambda m: m.step)]
        for r in runs
    ]
    assert histories[0] == histories[1]


def test_crashing_run_is_failed_and_keeps_what_it_logged(tmp_path, workdir, run_mlpx):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crash.py").write_text(
        textwrap.dedent(
            """
            import mlpx

            @mlpx.hookimpl
            def on_epoch_end(epoch):
                if epoch == 2:
                    raise RuntimeError("disk on fire at epoch 2")
            """
        )
    )
    overrides = [o for o in SMALL if not o.startswith("trainer.epochs")] + ["trainer.epochs=3"]
    completed = run_mlpx(overrides, cwd=workdir, env={"MLPX_PLUGINS_DIR": str(plugins)})
    assert completed.returncode != 0
    assert "disk on fire" in completed.stderr
    client, runs = _runs(workdir)
    run = runs[0]
    assert run.info.status == "FAILED"
    assert "disk on fire at epoch 2" in run.data.tags["mlpx.error"]
    assert run.data.params["trainer.epochs"] == "3"
    # observers registered for the run are called before file plugins, so epoch 2 got logged
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2]


def test_config_error_is_reported_without_traceback_and_recorded(workdir, run_mlpx):
    completed = run_mlpx([*SMALL, "model.hidden=[32,0]"], cwd=workdir, env={"HYDRA_FULL_ERROR": "0"})
    assert completed.returncode == 1
    assert "model.hidden=[32, 0]: every layer needs >= 1 unit" in completed.stderr
    assert "Traceback" not in completed.stderr
    _, runs = _runs(workdir)
    assert runs[0].info.status == "FAILED"


def test_multirun_groups_jobs_under_one_parent_run(workdir, run_mlpx):
    completed = run_mlpx(["-m", "optimizer.lr=0.01,0.1", *SMALL], cwd=workdir)
    assert completed.returncode == 0, completed.stderr
    _, runs = _runs(workdir)
    parents = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlpx.sweep.jobs"] == "2"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["optimizer.lr"] for r in children) == ["0.01", "0.1"]
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.info.run_name for r in children} >= {
        "optimizer.lr=0.01,data.train_size=2000,data.val_size=1000,data.test_size=2000,trainer.epochs=2,model.hidden=[32,16]"
    } or all("optimizer.lr=" in r.info.run_name for r in children)


def test_multirun_with_a_failing_job_runs_the_others_and_fails_at_the_end(workdir, run_mlpx):
    small = [o for o in SMALL if not o.startswith("model.hidden")]
    completed = run_mlpx(["-m", "model.hidden=[16],[0],[8]", *small], cwd=workdir)
    assert completed.returncode == 1
    assert "1 of 3 jobs failed" in completed.stderr
    assert "every layer needs >= 1 unit" in completed.stderr
    _, runs = _runs(workdir)
    parent = next(r for r in runs if r.data.tags.get("mlpx.sweep") == "parent")
    assert parent.info.status == "FAILED"
    statuses = sorted(r.info.status for r in runs if r.data.tags.get("mlflow.parentRunId"))
    assert statuses == ["FAILED", "FINISHED", "FINISHED"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("mode", [[], ["-m"]], ids=["run", "multirun"])
def test_unreachable_tracking_server_fails_fast_before_training(workdir, run_mlpx, mode):
    uri = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    completed = run_mlpx([*mode, *SMALL, f"tracking.uri={uri}"], cwd=workdir, env={"HYDRA_FULL_ERROR": "0"})
    assert completed.returncode == 1
    assert f"cannot reach the MLflow tracking server at {uri}" in completed.stderr
    assert "epoch 1/" not in completed.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("mode", [[], ["-m"]])
def test_fresh_store_is_created_under_outputs(tmp_path, run_mlpx, mode):
    completed = run_mlpx([*mode, *SMALL, "trainer.epochs=1"], cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "outputs" / "mlflow.db").is_file()
    _, runs = _runs(tmp_path)
    assert all(r.info.status == "FINISHED" for r in runs)


def test_unusable_store_uri_is_a_clear_error_at_the_first_epochs_sync(workdir, run_mlpx):
    # training does not wait for the helper's MLflow import; the first sync, at the end of the
    # first epoch, stops the run before any second epoch of work
    args = [*(o for o in SMALL if not o.startswith("trainer.epochs")), "trainer.epochs=3"]
    completed = run_mlpx([*args, "tracking.uri=bogus://nowhere"], cwd=workdir, env={"HYDRA_FULL_ERROR": "0"})
    assert completed.returncode == 1
    assert "the MLflow store at tracking.uri=bogus://nowhere cannot be used" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "epoch 2/3" not in completed.stderr


def test_a_refused_request_is_raised_once_at_sync_and_the_run_goes_no_further(tmp_path):
    recorder = RemoteRecorder()
    recorder.submit("open", "nosuchscheme://store", "mlpx", None, {}, {}, None, dict(os.environ), os.getcwd())
    recorder.submit("log_text", "never written", "x.txt")
    with pytest.raises(TrackingError, match="nosuchscheme://store"):
        recorder.sync()
    recorder.submit("close", "FAILED", {})
    recorder.sync()  # skipped by the helper: the one error was reported once
    assert "open" not in recorder.results


def test_a_helper_that_died_is_reported_not_waited_for():
    helper = HelperProcess()
    helper._process.kill()
    helper._process.wait()
    recorder = RemoteRecorder(helper)
    with pytest.raises(TrackingError, match="helper process exited"):
        recorder.submit("log_text", "text", "x.txt")
        recorder.sync()


@pytest.mark.parametrize(
    "args, starts",
    [
        (["optimizer=adam"], True),
        (["-m", "optimizer.lr=0.1,0.01"], True),
        (["--cfg", "job"], False),
        (["--help"], False),
        (["plugins"], False),
        (["-m", "hydra/launcher=joblib", "seed=1,2"], False),  # jobs run in loky workers
    ],
)
def test_the_helper_starts_early_only_for_runs_in_this_process(monkeypatch, args, starts):
    started = []
    monkeypatch.setattr(helper_process, "shared_helper", lambda: started.append(True))
    helper_process.start_early(args)
    assert bool(started) == starts


def test_a_run_whose_recording_failed_is_still_closed_failed_not_left_running(workdir):
    recorder = RemoteRecorder()
    uri = store_uri(workdir)
    recorder.submit("open", uri, "mlpx", None, {}, {}, "broken", dict(os.environ), os.getcwd())
    recorder.submit("log_artifact", str(workdir / "no-such-file.npz"))
    with pytest.raises(TrackingError, match="log_artifact"):
        recorder.sync()
    recorder.submit("close", "FINISHED", {})
    recorder.sync()
    run = MlflowClient(uri).get_run(recorder.results["open"])
    assert run.info.status == "FAILED"
    assert run.data.tags["mlpx.error"].startswith("recording the run failed:")


def test_a_helper_that_was_sent_nothing_is_stopped_not_waited_for():
    helper = HelperProcess()  # still importing MLflow, for a command that ended without a run
    started = time.perf_counter()
    helper.close()
    assert time.perf_counter() - started < 1.0
    assert not helper.alive


def test_a_request_that_cannot_be_sent_is_refused_and_leaves_the_pipe_clean(workdir):
    recorder = RemoteRecorder()
    uri = store_uri(workdir)
    with pytest.raises(TrackingError, match="cannot send set_tags"):
        recorder.submit("set_tags", {"mlpx.bad": lambda: None})  # not picklable
    recorder.submit("open", uri, "mlpx", None, {}, {}, "after", dict(os.environ), os.getcwd())
    recorder.submit("close", "FINISHED", {})
    recorder.sync()
    assert MlflowClient(uri).get_run(recorder.results["open"]).info.status == "FINISHED"


class _CountingRecorder:
    """The helper's side seen from the tracker: requests noted, every wait for answers counted."""

    def __init__(self) -> None:
        self.sent, self.waits, self.results = [], 0, {}

    def submit(self, method, *args, **kwargs) -> None:
        self.sent.append(method)

    def would_wait(self) -> bool:  # a look, never a wait
        return False

    def sync(self) -> None:
        self.waits += 1


def test_registering_the_tracker_and_starting_training_never_wait_for_the_helper(tmp_path):
    import pluggy

    from mlpx import hookspecs
    from mlpx.tracking.tracker import MlflowTracker

    recorder = _CountingRecorder()
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "mlpx", None, recorder=recorder)
    tracker.open({"tracking.offline": "false"}, {"mlpx.output_dir": str(tmp_path)}, "run")
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(tracker)  # pluggy reads every attribute: none may wait for the helper
    tracker.before_training()
    assert recorder.sent[:1] == ["open"] and recorder.waits == 0
    tracker.on_epoch_end(epoch=1, metrics={"val_ce": 1.0})
    assert recorder.waits == 1  # the first sync: at the end of the first epoch


def test_idle_work_runs_while_the_first_sync_waits_for_the_helper_and_only_then(workdir):
    helper = HelperProcess()  # a fresh one: still importing MLflow for a second or two
    try:
        tracker = MlflowTracker(store_uri(workdir), "mlpx", None, recorder=RemoteRecorder(helper))
        done = []
        tracker.when_idle(lambda: done.append(helper.would_wait()))
        assert not helper.would_wait()  # nothing asked yet: nothing to wait for
        tracker.open({"p": "1"}, {}, "idle")
        assert done == [] and helper.would_wait()  # not before a sync
        tracker.sync()
        assert done == [True]  # it ran while the helper was busy, before the sync's answers
        assert not helper.would_wait()
        tracker.when_idle(lambda: done.append("never"))
        tracker.log_metrics({"m": 1.0}, step=1)
        deadline = time.monotonic() + 30
        while helper.would_wait() and time.monotonic() < deadline:  # until its answer is in the pipe
            time.sleep(0.01)
        tracker.sync()  # answered already: nothing to fill
        assert done == [True]
        tracker.close(None)
        assert MlflowClient(store_uri(workdir)).get_run(tracker.wait_for_run_id()).info.status == "FINISHED"
    finally:
        helper.close()


def test_the_epochs_figures_are_drawn_while_the_first_sync_waits_and_not_after(workdir):
    helper = HelperProcess()  # a fresh one: still importing MLflow for a second or two
    try:
        tracker = MlflowTracker(store_uri(workdir), "mlpx", None, plots=True, recorder=RemoteRecorder(helper))
        tracker.open({"p": "1"}, {}, "prerender")
        first = {"train_loss": 0.5, "val_loss": 0.4, "val_ce": 0.4, "train_acc": 0.8, "val_acc": 0.9}
        first.update({"grad_norm/layer1": 0.1, "update_ratio/W1": 1e-3, "val_ece": 0.02})
        tracker.on_epoch_end(epoch=1, metrics=first)  # its sync waits for the helper's start-up
        history, png = tracker._prerendered["curves.png"]
        assert history == [first] and png.startswith(b"\x89PNG")  # drawn while waiting
        second = {**first, "val_ce": 0.3}
        tracker.on_epoch_end(epoch=2, metrics=second)  # the helper is up: nothing drawn now
        assert tracker._prerendered["curves.png"][0] == [first]  # stale for a two-epoch run: redrawn
        tracker.close(None)
    finally:
        helper.close()


def test_idle_work_that_fails_costs_only_itself_and_none_is_left_for_close(workdir, caplog):
    helper = HelperProcess()  # a fresh one: still importing MLflow for a second or two
    try:
        tracker = MlflowTracker(store_uri(workdir), "mlpx", None, recorder=RemoteRecorder(helper))
        tracker.when_idle(lambda: 1 / 0)
        tracker.open({"p": "1"}, {}, "failing idle work")
        tracker.sync()  # the task's error is logged; the run goes on
        assert "work done while waiting for the MLflow helper failed" in caplog.text
        late = MlflowTracker(store_uri(workdir), "mlpx", None, recorder=RemoteRecorder(helper))
        ran = []
        late.when_idle(lambda: ran.append(True))
        late.open({"p": "2"}, {}, "fails before its first sync")
        late.close(RuntimeError("diverged in epoch 1"))  # no spare time to fill while closing
        assert ran == []
        tracker.close(None)
    finally:
        helper.close()


def test_with_ipython_marked_absent_mlflow_resolves_run_tags_without_importing_it():
    code = textwrap.dedent(
        """
        import sys
        from mlpx.tracking.recorder import _context_tags, mark_ipython_absent
        mark_ipython_absent()  # as the helper's main does first
        tags = _context_tags({"mine": "1"}, None, None)
        print(tags["mine"], "mlflow.user" in tags, sys.modules["IPython"] is None)
        """
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["1", "True", "True"]  # tags resolved, IPython never imported
