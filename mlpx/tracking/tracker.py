"""MLflow tracking: the store, and the observer that logs one run's params, curves and artifacts.

MLflow is imported lazily, so ``--help``, config errors and plugin listings stay fast; a run's
own MLflow calls happen in the helper process (``mlpx.tracking.recorder``). Everything goes through
``MlflowClient`` (no global active run), so several runs in one process - a sweep with Hydra's
basic launcher - cannot collide.
"""

import logging
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from mlpx import signals
from mlpx.core.model import MLP
from mlpx.diagnostics.rules import diagnose, render, summary
from mlpx.errors import ConfigError, DivergenceError, TrackingError
from mlpx.hookspecs import hookimpl
from mlpx.plugins.config import hyperparameters
from mlpx.tracking.helper import RemoteRecorder
from mlpx.tracking.stale_runs import owner_tags
from mlpx.tracking.store_lock import open_store

log = logging.getLogger(__name__)

#: set by the sweep callback so every job of a multirun becomes a child of one parent run
PARENT_RUN_ENV = "MLPX_PARENT_RUN_ID"
#: tracking.offline: contact the server (false), never during the run (true), or only if it
#: answers at start (auto); what ``mlpx sync RUN_DIR`` sends afterwards is kept in the run folder
OFFLINE_MODES = ("false", "true", "auto")


def offline_mode(value: Any) -> str:
    """``tracking.offline`` as one of OFFLINE_MODES (Hydra reads ``true`` as a boolean, and the
    schema's ``str`` field turns it into "True")."""
    mode = str(value if value is not None else "false").strip().lower()
    if mode not in OFFLINE_MODES:
        raise ConfigError(
            f"tracking.offline={value}: expected true (keep the run in its folder, contact no server), "
            "auto (the same only if the server does not answer at start) or false"
        )
    return mode


def offline_sweep_refusal(tracking: Any) -> Optional[str]:
    """Why a multirun cannot start offline (``tracking`` is its config group), or None.

    A sweep's parent run is created on the server before its first job and every job is a child
    of it; offline, there is no server to create it on, so mlpx refuses rather than scatter the
    jobs into parentless runs. With ``auto`` the sweep needs its server at start as without it
    (a job whose server stops answering later keeps the rest in its folder as always)."""
    mode = offline_mode(tracking.get("offline"))
    if mode == "false":
        return None
    if mode == "auto":
        if not is_remote(tracking.uri):
            return None
        try:
            probe_server(tracking.uri)
            return None
        except TrackingError as exc:
            reason = f"the tracking server at {tracking.uri} does not answer ({exc.__cause__})"
    else:
        reason = "tracking.offline=true"
    return _sweep_refusal(reason)


def _sweep_refusal(reason: str) -> str:
    return (
        f"a sweep (-m) cannot be tracked offline: {reason}, and its parent run, which groups its "
        "jobs, must be created on the server before the first job starts. Start the server, sweep "
        "into a local store (tracking.uri=sqlite:///ABSOLUTE/PATH.db), or launch the jobs as single "
        "runs with tracking.offline=true and send each with `mlpx sync RUN_DIR`."
    )


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def probe_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any work, when an HTTP tracking server does not answer ``/health``."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri} ({reason}). Start it, e.g. "
            "`mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri "
            "sqlite:///outputs/server.db --artifacts-destination outputs/server-artifacts`, "
            "track into the local store under outputs/ (tracking=mlflow, the default), or run "
            "offline: tracking.offline=true keeps the run in its folder, and `mlpx sync RUN_DIR` "
            "sends it once the server answers (tracking.offline=auto: only when it does not answer now)."
        ) from exc


def prepare_experiment(uri: str, experiment: str, artifact_location: Optional[str]) -> str:
    """Create (and migrate) the store and the experiment if needed; return the experiment id.

    A SQLite store is created and migrated under its lock file (``mlpx.tracking.store_lock``), so any
    number of processes may start at once on a new store. ``artifact_location`` applies to
    local stores only.
    """
    from mlflow.exceptions import MlflowException

    if is_remote(uri):
        probe_server(uri)
        artifact_location = None
    else:
        _make_sqlite_parent(uri)
        if artifact_location and "://" not in artifact_location:
            artifact_location = Path(artifact_location).resolve().as_uri()
    try:
        client = open_store(uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            try:
                return client.create_experiment(experiment, artifact_location=artifact_location)
            except MlflowException:  # another job created it first
                found = client.get_experiment_by_name(experiment)
                if found is None:
                    raise
    except MlflowException as exc:
        raise TrackingError(
            f"the MLflow store at tracking.uri={uri} cannot be used: {exc.message} "
            "Use a SQLite file (sqlite:///ABSOLUTE/PATH.db, the default under outputs/), a database "
            "URI, or an http(s):// tracking server."
        ) from exc
    if found.lifecycle_stage == "deleted":
        raise TrackingError(
            f"MLflow experiment '{experiment}' at {uri} is deleted. Restore it with "
            f"`mlflow experiments restore --experiment-id {found.experiment_id}` or choose "
            "another name with tracking.experiment=NAME."
        )
    return found.experiment_id


def _make_sqlite_parent(uri: str) -> None:
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(f"cannot create the folder of the MLflow store {uri}: {exc}") from exc


def config_hash(config: Mapping[str, Any]) -> str:
    """A digest of everything that shapes training: the config without paths, tracking, resume."""
    import hashlib
    import json

    shaping = {k: v for k, v in config.items() if k not in ("paths", "tracking", "resume")}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished_run_with_hash(uri: str, experiment: str, digest: str) -> Optional[Any]:
    """The latest FINISHED run of ``experiment`` tagged ``mlpx.config_hash = digest``, if any."""
    client = open_store(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`mlpx.config_hash` = '{digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def flatten(config: Mapping[str, Any], prefix: str = "") -> Dict[str, str]:
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": "0.1"}; lists stay whole ("[300, 75]")."""
    flat: Dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


class MlflowTracker:
    """Lifecycle plugin that records one run in MLflow, through the helper process.

    ``open`` asks for the run (status RUNNING) with params and tags before any heavy work, so a
    run that fails at any point is kept, with status FAILED and an ``mlpx.error`` tag. Requests
    go out without waiting; ``sync`` (called before training, after each epoch and at the end)
    raises TrackingError for the first one MLflow refused.
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        artifact_location: Optional[str],
        plots: bool = True,
        recorder: Optional[RemoteRecorder] = None,
        log_model: bool = True,
        register_model: Optional[str] = None,
        offline: Optional[str] = None,
    ) -> None:
        self.uri = uri
        # tracking.offline; None: read from the run's params in ``open`` (its resolved config)
        self.offline = None if offline is None else offline_mode(offline)
        self.log_model = log_model
        self.register_model = register_model
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.plots = plots
        self._recorder = recorder or RemoteRecorder()
        self._history: List[Dict[str, float]] = []  # the epochs logged so far
        self._output_dir: Optional[str] = None
        self._stale_reported = False
        self._idle_tasks: List[Callable[[], None]] = []  # see when_idle
        self._synced = False  # whether a sync has returned: the helper has started
        self._prerendered: Dict[str, Tuple[List[Dict[str, float]], bytes]] = {}  # see _prerender
        self._offline_reported = False
        self._closed = False

    def wait_for_run_id(self) -> Optional[str]:
        """The MLflow run's id, once the helper created it (waits for it); None offline, where
        ``mlpx sync`` creates the run. A method, not a property: pluggy reads every attribute of
        a plugin when it registers one, and a waiting property would make training wait too."""
        self.sync()
        opened = self._recorder.results.get("open")
        return opened if isinstance(opened, str) else None

    @property
    def kept_offline(self) -> Optional[Dict[str, str]]:
        """{"offline": why, "folder": the run folder} when the run is kept offline, else None."""
        opened = self._recorder.results.get("open")
        return opened if isinstance(opened, dict) else None

    def where(self) -> str:
        """Where the run went, for the closing line: its MLflow run, or the folder that keeps it."""
        offline = self.kept_offline
        if offline is None:
            run_id = self.wait_for_run_id()
            return f"MLflow run {run_id} in experiment '{self.experiment}': {ui_hint(self.uri)}"
        return (
            f"MLflow run kept offline in {offline['folder']} ({offline['offline']}); send it to "
            f"{self.uri} with `mlpx sync {offline['folder']}`"
        )

    def open(self, params: Mapping[str, str], tags: Mapping[str, str], run_name: Optional[str]) -> None:
        """Ask for the run, under the sweep's parent run when there is one."""
        all_tags = {  # mlflow.user, mlflow.source.* and git: MLflow's own, resolved in the helper
            **owner_tags(),  # so a later start can tell when this process died with the run open
            **tags,
        }
        parent = os.environ.get(PARENT_RUN_ENV)
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        self._output_dir = tags.get("mlpx.output_dir")
        if self.offline is None:
            self.offline = offline_mode(params.get("tracking.offline"))
        if self.offline != "false" and _in_multirun():  # offline_sweep_refusal, for each job
            if self.offline == "true":
                raise ConfigError(_sweep_refusal("tracking.offline=true"))
            # auto: a sweep's job needs the server its parent run is on; one that cannot reach it
            # fails (and the sweep counts it), rather than going offline out of the sweep's sight.
            # A server that dies mid-job still has the job's records kept for `mlpx sync`.
            self.offline = "false"
        self._recorder.submit(
            "open", self.uri, self.experiment, self.artifact_location, dict(params), all_tags, run_name,
            dict(os.environ), os.getcwd(), os.path.abspath(sys.argv[0]), str(Path(__file__).resolve().parent),
            offline=self.offline, start_time=_now_ms(),
        )  # fmt: skip
        self._recorder.submit("end_stale_runs")

    def before_training(self) -> None:
        """What must hold before the first epoch, checked without waiting for the helper (which
        may still be importing MLflow): a remote server that does not answer stops the run now,
        unless offline mode may take over. Whatever else the helper finds wrong (a store that
        cannot be used, a refused request) stops the run at the first epoch's sync."""
        if self.offline == "false" and is_remote(self.uri):
            probe_server(self.uri)

    def when_idle(self, task: Callable[[], None]) -> None:
        """Run ``task`` the first time a ``sync`` would wait for the helper (at the first epoch's
        end, typically, while the helper is still importing MLflow), instead of before training:
        work the run needs later (the plots' imports) then costs no time of its own."""
        self._idle_tasks.append(task)

    def _run_idle_tasks(self) -> None:
        """The tasks ``when_idle`` was given, one by one while the helper is still busy; the rest
        are dropped (later waits are milliseconds). Taken off the list first, so that a signal in
        one leaves none to run at ``close``; a task that fails only costs its own work."""
        tasks, self._idle_tasks = self._idle_tasks, []
        for task in tasks:
            if not self._recorder.would_wait():
                return
            try:
                task()
            except Exception as exc:  # spare-time work: the run does not depend on it
                log.warning("work done while waiting for the MLflow helper failed (the run goes on): %s", exc)

    def sync(self) -> None:
        """Wait for every request sent; raise TrackingError if MLflow refused one."""
        self._run_idle_tasks()
        self._recorder.sync()
        self._synced = True
        if not self._stale_reported and "end_stale_runs" in self._recorder.results:
            self._stale_reported = True
            for line in self._recorder.results["end_stale_runs"]:
                log.warning("%s", line)
        offline = self.kept_offline
        if offline is not None and not self._offline_reported:
            self._offline_reported = True
            say = log.info if self.offline == "true" else log.warning  # auto: the server is down
            say(
                "offline (%s): no server is contacted; the run is kept in %s",
                offline["offline"],
                offline["folder"],
            )

    def log_text(self, text: str, artifact_file: str) -> None:
        self._recorder.submit("log_text", text, artifact_file)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._recorder.submit("log_metrics", {k: float(v) for k, v in metrics.items()}, step, _now_ms())

    # ------------------------------------------------ what plugins call through ``run.log_*``

    def log_metric(self, key: str, value: float, step: Optional[int] = None) -> None:
        self._recorder.submit("log_metric", str(key), float(value), step, _now_ms())

    def log_param(self, key: str, value: Any) -> None:
        self._recorder.submit("log_param", str(key), str(value))

    def set_tag(self, key: str, value: Any) -> None:
        self._recorder.submit("set_tags", {str(key): str(value)})

    def log_artifact(self, local_path: str, artifact_path: Optional[str] = None) -> None:
        """Upload a file now: the helper has sent it when this returns (it may be a temporary file)."""
        path = Path(local_path).resolve()
        if not path.exists():
            raise TrackingError(f"run.log_artifact: {local_path} does not exist")
        self._recorder.submit("log_artifact", str(path), artifact_path)
        self.sync()

    @hookimpl(tryfirst=True)  # before other plugins' on_run_start, which may log through the run
    def on_run_start(self, run) -> None:
        run.attach_tracker(self)
        self._recorder.submit(
            "set_tags", {f"mlpx.data.{split}_size": str(n) for split, n in run.dataset.sizes().items()}
        )
        self._recorder.submit("log_inputs", run.dataset.described_splits())

    @hookimpl
    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._history.append(dict(metrics))
        if self.plots and not self._synced:  # the helper still starting: this may be the last epoch
            for name in self._history_figures(self._history):
                self.when_idle(lambda name=name: self._prerender(name))
        # One synchronous batch per epoch: ~5 ms on SQLite, ~1 % of an epoch, and a lost
        # store fails the run at once. (MLflow's asynchronous queue costs up to 1 s to close.)
        self.log_metrics(metrics, step=epoch)
        self.sync()

    @hookimpl(trylast=True)  # after every other plugin's on_run_end: they may still log or tag
    def on_run_end(self, run, result, error) -> None:
        if self._closed:  # called again for an error raised by an on_run_end (a signal here)
            return
        try:
            self._recorder.submit("set_tags", {k: str(v) for k, v in run.tags.items()})
            if result is not None:
                self.log_metrics(result.test, step=len(result.history))
                weights = Path(run.output_dir) / "weights.npz"
                np.savez(weights, **result.weights)  # plain arrays: loads with allow_pickle=False
                self._recorder.submit("log_artifact", str(weights))
                if self.log_model and isinstance(run.model, MLP):  # the helper logs it while plots render
                    self._submit_model(run, weights)
                self._log_diagnosis(result.diagnosis, result.history, result.stop_reason)
                if self.plots:
                    self._log_plots(run, result)
            elif self._history:  # a failed run is diagnosed from the epochs it finished
                findings = diagnose(self._history, run.components["loss"].name)
                self._log_diagnosis(findings, self._history, None)
        except BaseException as late:  # a signal during the final logging ends the run KILLED
            error = error or late
            raise
        finally:
            self.close(error)

    def _submit_model(self, run, weights: Path) -> None:
        """Ask the helper to log the MLP as an MLflow model (``RunRecorder.log_model``), with the
        source file of its activation copied under a name of its own into the run's folder."""
        import hashlib
        import shutil

        component = run.components["activation"]
        source = Path(sys.modules[type(run.instances["activation"]).__module__].__file__)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:10]
        module = f"mlpx_activation_{component.name}_{digest}".replace("-", "_")
        code = Path(run.output_dir) / "model_code" / f"{module}.py"
        code.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, code)
        model = run.model
        network = {
            "layers": model.n_layers,
            "sizes": list(model.sizes),
            "dtype": np.dtype(model.dtype).name,
            "n_features": model.sizes[0],
            "n_classes": model.sizes[-1],
            "activation": {
                "name": component.name,
                "module": module,
                "hyperparameters": hyperparameters(run.cfg.activation),
                "plugin_source": component.source,
            },
        }
        example = run.dataset.x_test[:2].astype(model.dtype).tolist()
        self._recorder.submit("log_model", str(weights), network, str(code), example, self.register_model)

    def _log_diagnosis(self, findings, history, stop_reason: Optional[str]) -> None:
        # the run's description on its MLflow page, as well as the artifact
        tags = {"mlpx.diagnosis": summary(findings), "mlflow.note.content": render(findings, history)}
        if stop_reason:
            tags["mlpx.stopped_early"] = stop_reason
        self._recorder.submit("set_tags", tags)
        self._recorder.submit("log_text", render(findings, history), "diagnosis.md")

    @staticmethod
    def _history_figures(history: List[Dict[str, float]]) -> Dict[str, Callable[[], bytes]]:
        """The figures drawn from the epochs' metrics alone, by file name."""
        from mlpx.diagnostics import plots

        figures = {"curves.png": lambda: plots.curves_plot(history)}
        if any("grad_norm/layer1" in m for m in history):
            figures["health.png"] = lambda: plots.health_plot(history)
        return figures

    def _prerender(self, name: str) -> None:
        """Draw a figure of the epochs so far while the main process would only wait: if no
        epoch follows, ``_log_plots`` sends it as it is (a one-epoch run's plots cost less)."""
        history = [dict(m) for m in self._history]
        self._prerendered[name] = (history, self._history_figures(history)[name]())

    def _log_plots(self, run, result) -> None:
        """Render each figure, write it under the run's folder and send it off while the next
        one renders (a figure of the epochs drawn while waiting for the helper, if no epoch
        came after it)."""
        from mlpx.diagnostics import plots

        data = run.dataset
        figures = {
            **self._history_figures(result.history),
            "confusion_matrix.png": lambda: plots.confusion_plot(
                data.y_test, result.test_probs.argmax(axis=1), data.n_classes
            ),
            "confident_mistakes.png": lambda: plots.confident_mistakes_plot(
                data.x_test, data.y_test, result.test_probs
            ),
        }
        folder = Path(run.output_dir) / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        for name, render_png in figures.items():
            history, png = self._prerendered.get(name, (None, b""))
            (folder / name).write_bytes(png if history == result.history else render_png())
            self._recorder.submit("log_artifact", str(folder / name), "plots")

    def close(self, error: Optional[BaseException]) -> None:
        """End the run: FINISHED, or FAILED (KILLED on Ctrl-C) with the error as a tag.

        With ``error`` set, a tracking failure is only logged: the error that ended the run is
        the one to raise.
        """
        status, tags = "FINISHED", {}
        interrupted = signals.reason(error) if error is not None else None
        if interrupted:
            status = "KILLED"
            tags["mlpx.interrupted"] = f"{interrupted} at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
            tags["mlpx.error"] = f"{type(error).__name__}: {interrupted}"
        elif error is not None:
            status = "FAILED"
            tags["mlpx.error"] = f"{type(error).__name__}: {error}"
            if isinstance(error, DivergenceError):
                tags["mlpx.diverged"] = f"epoch {error.epoch}, step {error.step}: {error}"
        if self._closed:
            return
        self._idle_tasks = []  # a run that ends before its first sync has no spare time to fill
        try:
            self._recorder.submit("close", status, tags)
            self._closed = True
            self.sync()
        except TrackingError as tracking_error:
            if error is None:
                raise
            if str(tracking_error) != str(error):  # the same failure is reported once, by the caller
                log.warning("the run could not be recorded completely: %s", tracking_error)
        unsent = self._recorder.results.get("close") or {}
        if "offline" in unsent:  # tracking.offline: mlpx.tracking.spool
            (log.info if self.offline == "true" else log.warning)(
                "the run ended %s offline: the run, its params, %d epochs of metrics, its artifacts "
                "and its final status are kept in %s (%d records). Create it on %s once the server "
                "answers: `mlpx sync %s`",
                status, unsent["epochs"], unsent["folder"], unsent["unsent"], self.uri, unsent["folder"],
            )  # fmt: skip
        elif "spool" in unsent:  # the server stopped answering: mlpx.tracking.spool
            log.warning(
                "the MLflow tracking server at %s stopped answering; training went on, and the %d "
                "records it did not get (metrics, tags, artifacts, the final status) are kept in %s. "
                "Send them once it is back: `mlpx sync %s`",
                self.uri, unsent["unsent"], unsent["spool"], unsent["folder"],
            )  # fmt: skip
        if error is not None:
            self._say_where(status, interrupted is not None)

    def _say_where(self, status: str, interrupted: bool) -> None:
        """Name the run an error ended, and where it is: for the interrupt's one line, or the log."""
        run_id = self._recorder.results.get("open")
        if isinstance(run_id, dict):  # offline
            epochs = (self._recorder.results.get("close") or {}).get("epochs", len(self._history))
            where = (
                f"the run ended {status} offline with {epochs} epoch{'s' * (epochs != 1)} of metrics, "
                f"kept for `mlpx sync {run_id['folder']}`"
            )
        elif run_id is None:
            where = f"no MLflow run was created in {self.uri}"
        else:
            # what the helper logged: a signal may have cut the last epoch's logging short
            epochs = (self._recorder.results.get("close") or {}).get("epochs", len(self._history))
            where = (
                f"MLflow run {run_id} ended {status} with {epochs} epoch{'s' * (epochs != 1)} of "
                f"metrics and its artifacts, in experiment '{self.experiment}' ({ui_hint(self.uri)})"
            )
        if self._output_dir:
            where += f"; run folder {self._output_dir}"
        if interrupted:
            signals.note(where)
        else:
            log.error("%s", where)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def ui_hint(uri: str) -> str:
    """How to browse this store: the server's address, or the command that opens the UI."""
    if is_remote(uri):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"
