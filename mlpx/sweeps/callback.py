"""Hydra callback grouping a multirun in MLflow: one parent run, every job a child run of it.

The parent is created before any job starts (which also creates and migrates a new store once,
so parallel jobs never race on it) and its id reaches the jobs through an environment variable
that ``on_job_start`` sets in the process running each job, wherever a launcher runs it: Hydra
ships this callback object, id included, with every job (joblib's and Ray's workers, submitit's
jobs on this machine or SLURM's). At the end the parent is tagged with the number of
jobs and of failures, and the sweep fails loudly if any job did: Hydra turns exceptions from callbacks into
warnings, so the failures are logged and left in ``failed_sweeps`` for the CLI's exit code.
"""

import atexit
import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mlpx import signals
from mlpx.sweeps.plot import sweep_plot
from mlpx.sweeps.summary import summarize
from mlpx.tracking.stale_runs import owner_alive, owner_tags
from mlpx.tracking.tracker import PARENT_RUN_ENV, offline_sweep_refusal, prepare_experiment, ui_hint

log = logging.getLogger("mlpx")

#: one message per sweep of this process that had failed jobs or could not track
failed_sweeps: List[str] = []
#: one line per failed job, kept by the job itself: the fallback when tracking cannot tell
failed_jobs: List[str] = []
#: written in a job's folder when the job fails: read back by the sweep, whatever process ran it
FAILED_JOB_FILE = "mlpx-job-failed.txt"
#: sweeps of this process whose parent run is open
_open_sweeps: List["SweepTracking"] = []


def note_failed_job(output_dir: Path, message: str) -> None:
    """Record a failed job where the sweep will look for it: in the job's own folder.

    A job run in another process (joblib, Ray, submitit) cannot reach ``failed_jobs`` of this
    one, and one that failed before its MLflow run existed leaves no run to count."""
    failed_jobs.append(message)
    try:
        (Path(output_dir) / FAILED_JOB_FILE).write_text(message + "\n")
    except OSError as exc:
        log.warning("could not note the failed job in %s: %s", output_dir, exc)


def close_interrupted_sweeps(interrupt: BaseException) -> None:
    """End KILLED the parent run of every sweep a signal interrupted, saying so in a tag."""
    for sweep in list(_open_sweeps):
        sweep.interrupted(signals.reason(interrupt) or str(interrupt))


class SweepTracking(Callback):
    def __init__(self) -> None:
        self._client: Any = None
        self._parent_id: Optional[str] = None
        self._experiment_id: Optional[str] = None
        self._uri: Optional[str] = None
        self._outer_parent: Optional[str] = None  # the variable's value before a job set it

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from mlflow import MlflowClient

        HydraConfig.instance().set_config(config)  # lets ${hydra:runtime.cwd} resolve here too
        tracking = config.tracking
        refusal = offline_sweep_refusal(tracking)  # before any server is contacted or job started
        if refusal:  # SystemExit, not an Exception: Hydra would only warn and start the jobs
            raise SystemExit(f"mlpx: {refusal}")
        try:
            self._experiment_id = prepare_experiment(
                tracking.uri, tracking.experiment, tracking.artifact_location
            )
        except Exception as exc:  # Hydra would only warn: make the sweep's exit code say it
            failed_sweeps.append(f"no MLflow parent run for the sweep: {exc}")
            raise
        self._client = MlflowClient(tracking.uri)
        self._uri = tracking.uri
        overrides = " ".join(config.hydra.overrides.task)
        parent = self._client.create_run(
            self._experiment_id,
            run_name=f"sweep {overrides}" if overrides else "sweep",
            tags={
                "mlpx.sweep": "parent",
                "mlpx.sweep.overrides": overrides,
                "mlpx.sweep.dir": str(config.hydra.sweep.dir),
                "mlflow.source.name": "mlpx",
                **owner_tags(),
            },
        )
        self._parent_id = parent.info.run_id
        os.environ[PARENT_RUN_ENV] = self._parent_id
        atexit.register(self._abandon)
        _open_sweeps.append(self)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Hand the parent run's id to the job in the process that runs it.

        The variable set at the sweep's start reaches only processes this one starts (joblib's
        workers, submitit's local jobs, a Ray instance it starts itself); the workers of a running
        Ray cluster and SLURM's jobs inherit nothing from it. This object travels with every job
        (launchers ship it in the job's Hydra context), and with it the id."""
        if self._parent_id is not None:
            self._outer_parent = os.environ.get(PARENT_RUN_ENV)
            os.environ[PARENT_RUN_ENV] = self._parent_id

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """Leave the variable as the job found it: a worker process outlives its jobs."""
        if self._parent_id is not None:
            if self._outer_parent is None:
                os.environ.pop(PARENT_RUN_ENV, None)
            else:
                os.environ[PARENT_RUN_ENV] = self._outer_parent

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._parent_id is None:
            return
        notes = sorted(Path(str(config.hydra.sweep.dir)).resolve().rglob(FAILED_JOB_FILE))
        try:
            children = self._children()
        except Exception as exc:  # Hydra would only warn: the exit code must still say it
            failed_sweeps.append(f"cannot read the sweep's runs ({exc}); {len(notes)} jobs noted failing")
            raise
        failed = [run for run in children if run.info.status != "FINISHED"]
        folders = {str(Path(run.data.tags.get("mlpx.output_dir", "")).resolve()) for run in children}
        unrecorded = [  # jobs that failed before their MLflow run existed, in any process
            note.read_text().strip() for note in notes if str(note.parent) not in folders
        ]
        self._client.set_tag(self._parent_id, "mlpx.sweep.jobs", str(len(children) + len(unrecorded)))
        self._client.set_tag(self._parent_id, "mlpx.sweep.failed", str(len(failed) + len(unrecorded)))
        if children:
            try:
                self._log_summary(config, children)
            except Exception as exc:  # the runs are all logged; say the summary is missing
                log.warning("could not write the sweep summary: %s: %s", type(exc).__name__, exc)
                self._client.set_tag(self._parent_id, "mlpx.sweep.summary_error", str(exc)[:5000])
        parent_id = self._parent_id
        self._finish("FAILED" if failed or unrecorded else "FINISHED")
        if failed or unrecorded:
            lines = [
                f"{run.info.run_name} ({run.info.status}): "
                + run.data.tags.get("mlpx.error", "no error recorded")
                for run in failed
            ] + [f"{line} (no MLflow run)" for line in unrecorded]
            jobs = len(children) + len(unrecorded)
            message = f"{len(failed) + len(unrecorded)} of {jobs} jobs failed:\n  " + "\n  ".join(lines)
            failed_sweeps.append(message)
            log.error("%s", message)
            return
        log.info("sweep finished: %d runs under parent run %s", len(children), parent_id)

    def _log_summary(self, config: DictConfig, children: List[Any]) -> None:
        """Table, best run and plot of the sweep, on the parent run."""
        metric = OmegaConf.select(config, "tracking.best_metric", default="val_ce")
        mode = OmegaConf.select(config, "tracking.best_mode", default="min")
        mode = str(getattr(mode, "value", mode))  # the Mode enum of the schema, or a plain string
        objectives = {  # the restored epoch's value, as the job returned it (RunResult.objective)
            run.info.run_id: history[int(run.data.tags["mlpx.restored_epoch"])]
            for run in children
            if "mlpx.restored_epoch" in run.data.tags
            for history in [
                {m.step: m.value for m in self._client.get_metric_history(run.info.run_id, metric)}
            ]
            if int(run.data.tags["mlpx.restored_epoch"]) in history
        }
        summary = summarize(children, metric, mode, objectives)
        parent = self._parent_id
        self._client.log_text(parent, summary.to_csv(), "sweep_summary.csv")
        self._client.log_text(parent, summary.to_markdown(), "sweep_summary.md")
        if summary.best is None:
            return
        best = summary.best
        for key, value in (
            ("mlpx.sweep.best_run_id", best["run_id"]),
            ("mlpx.sweep.best_run_name", best["run_name"]),
            ("mlpx.sweep.best_metric", f"{mode} {metric}"),
        ):
            self._client.set_tag(parent, key, value)
        self._client.log_metric(parent, f"best_{metric}", best[metric])
        register_as = OmegaConf.select(config, "tracking.register_best", default=None)
        if register_as:
            self._register_best(register_as, best["run_id"])
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"sweep_{metric}.png"
            path.write_bytes(sweep_plot(summary))
            self._client.log_artifact(parent, str(path))
        log.info("best run by %s %s: %s (%s = %.4g)", mode, metric, best["run_name"], metric, best[metric])

    def _register_best(self, name: str, run_id: str) -> None:
        """Register the best run's model as a new version of ``name`` and point the alias
        ``best`` at it (``models:/NAME@best``); tag the parent with the version."""
        from mlflow.exceptions import MlflowException

        outputs = self._client.get_run(run_id).outputs
        model_ids = [output.model_id for output in (outputs.model_outputs if outputs else [])]
        if not model_ids:
            log.warning("tracking.register_best=%s: the best run %s logged no model", name, run_id)
            return
        try:
            self._client.create_registered_model(name)
        except MlflowException as exc:  # it exists: add a version
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = self._client.get_logged_model(model_ids[-1]).artifact_location
        version = self._client.create_model_version(name, source, run_id=run_id, model_id=model_ids[-1])
        self._client.set_registered_model_alias(name, "best", version.version)
        self._client.set_tag(self._parent_id, "mlpx.sweep.registered", f"{name} version {version.version}")
        log.info("registered the best run's model as %s version %s (alias best)", name, version.version)

    def _children(self) -> List[Any]:
        return self._client.search_runs(
            [self._experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self._parent_id}'",
            max_results=50000,
        )

    def _finish(self, status: str) -> None:
        self._client.set_terminated(self._parent_id, status)
        os.environ.pop(PARENT_RUN_ENV, None)
        atexit.unregister(self._abandon)
        if self in _open_sweeps:
            _open_sweeps.remove(self)
        self._parent_id = None

    def interrupted(self, reason: str) -> None:
        """A signal ended the sweep: the parent run ends KILLED, tagged with the reason."""
        if self._parent_id is None:
            return
        parent_id = self._parent_id
        try:
            self._end_orphaned_children(reason)
            self._client.set_tag(parent_id, "mlpx.interrupted", reason)
            self._finish("KILLED")
        except Exception as exc:  # the store went away: a later start ends it (mlpx.tracking.stale_runs)
            log.warning("could not end the sweep's parent run %s: %s", parent_id, exc)
            return
        signals.note(f"the sweep's parent run {parent_id} ended KILLED ({ui_hint(self._uri)})")

    def _end_orphaned_children(self, reason: str, grace: float = 5.0) -> None:
        """End KILLED the child runs still RUNNING whose process is gone: jobs in a launcher's
        workers (joblib) that the interrupt killed before they could end their runs."""
        from mlflow.entities import RunTag

        deadline = time.monotonic() + grace
        while True:
            running = [r for r in self._children() if r.info.status == "RUNNING"]
            orphans = [r for r in running if not owner_alive(r)]
            if len(orphans) == len(running) or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # a worker still ending its own run
        for run in orphans:
            tags = [RunTag("mlpx.interrupted", reason), RunTag("mlpx.error", f"Interrupted: {reason}")]
            self._client.log_batch(run.info.run_id, tags=tags)
            self._client.set_terminated(run.info.run_id, "KILLED")
            signals.note(f"job run {run.info.run_id} ended KILLED")

    def _abandon(self) -> None:
        """The sweep was interrupted before it ended: do not leave the parent RUNNING."""
        if self._parent_id is not None:
            received = signals.received()
            if received is not None:
                self.interrupted(f"interrupted by {signal.Signals(received).name}")
            else:
                self._finish("KILLED")
