"""The MLflow calls that record one run, on plain data, and the loop that serves them in a helper.

``RunRecorder`` is the only code that talks to ``MlflowClient`` for a training run. It lives in
a helper process (``mlpx.tracking.helper``) so that importing MLflow, ~2 s, overlaps with Hydra,
plugin loading, data loading and the checks in the main process. Its methods take and return
only str, float, int, dict and list, so requests pickle cheaply and no MLflow type crosses over.
"""

import contextlib
import os
import pickle
import signal
import sys
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, List, Mapping, Optional, Tuple

from mlpx.errors import TrackingError
from mlpx.tracking.spool import HTTP_LIMITS, OFFLINE_ID_TAG, Spool, unreachable
from mlpx.tracking.stale_runs import HEARTBEAT_TAG, now_ms, owner_tags

_MAX_TAG_LENGTH = 5000
#: the pyfunc model's code (models from code), run by MLflow where the model loads: never imported here
MODEL_CODE = Path(__file__).resolve().with_name("logged_model.py")


class RunRecorder:
    """Creates one MLflow run and logs to it; every method after ``open`` writes to that run."""

    def __init__(self) -> None:
        self.run_id: Optional[str] = None
        self._client: Any = None
        self._experiment_id: Optional[str] = None
        self._uri: Optional[str] = None
        self._folder: Optional[str] = None  # the run's Hydra folder, where unsent calls are kept
        self._spool: Optional[Spool] = None
        self._offline: Optional[str] = None  # why the run is kept offline, when it is
        self._replaying = False  # sent by ``mlpx sync``: the heartbeat is the syncing process's
        self._steps: set = set()  # steps (epochs) logged

    def call(self, method: str, args: tuple, kwargs: dict) -> Any:
        """Call ``method``; once an http(s) server stopped answering, or from the start in offline
        mode, keep the call in the run's folder instead (``mlpx.tracking.spool``), this one and
        every later one, and go on at once.

        ``close`` returns {"epochs": the epochs whose metrics were logged or kept}, and where the
        unsent calls are ("spool", "unsent", "folder") when there are any, with "offline" (why) for
        an offline run."""
        result = None
        if self._spool is None:
            try:
                result = getattr(self, method)(*args, **kwargs)
            except Exception as exc:
                if not (self.run_id and self._folder and self._uri.startswith("http") and unreachable(exc)):
                    raise
                cause = f"{type(exc).__name__}: {exc}"
                self._spool = Spool(Path(self._folder), self._uri, self.run_id, cause)
                self._keep(method, args, kwargs)
        elif method != "end_stale_runs":  # no server to clean up, nor one to contact
            self._keep(method, args, kwargs)
        if method == "log_metrics" and args[1] > 0:  # step 0: the gradient check, before training
            self._steps.add(args[1])
        if method == "close":
            result = {"epochs": len(self._steps)}
            if self._spool is not None:
                result.update(spool=str(self._spool.path), unsent=self._spool.count, folder=self._folder)
            if self._offline is not None:
                result["offline"] = self._offline
        elif method == "end_stale_runs" and self._spool is not None:
            result = []
        return result

    def _keep(self, method: str, args: tuple, kwargs: dict) -> None:
        if method == "close":  # the run's own end time, not the time it is sent
            kwargs = {**kwargs, "end_time": now_ms()}
        self._spool.append(method, args, kwargs)

    def open(
        self,
        uri: str,
        experiment: str,
        artifact_location: Optional[str],
        params: Mapping[str, str],
        tags: Mapping[str, str],
        run_name: Optional[str],
        environment: Mapping[str, str],
        cwd: str,
        main_file: Optional[str] = None,
        code_dir: Optional[str] = None,
        offline: str = "false",
        start_time: Optional[int] = None,
    ) -> Any:
        """Create the experiment if needed and the run (status RUNNING) with its params; return
        the run id. ``start_time`` (epoch ms): when the main process asked for the run.

        Offline (``offline`` "true", or "auto" and an http(s) server that does not answer):
        contact no server, keep the run's creation in its folder for ``mlpx sync`` and return
        {"offline": why, "folder": the run folder}.

        ``environment`` and ``cwd`` are the main process's now: they may have changed since
        this helper started (``hydra.job.env_set``, ``hydra.job.chdir``), and MLflow's stores
        and artifact clients read both. The user, source and git tags are MLflow's own
        (``resolve_tags``, as ``mlflow.start_run`` sets them) for the main process's
        ``main_file``; when that is no git checkout (the ``mlpx`` console script), for mlpx's
        ``code_dir``.
        """
        os.environ.clear()
        os.environ.update(environment)
        for name, value in HTTP_LIMITS.items():  # a dead server costs seconds, not minutes
            os.environ.setdefault(name, value)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stderr is the user's
        os.chdir(cwd)
        self._uri, self._folder = uri, tags.get("mlpx.output_dir")
        from mlpx.tracking.tracker import is_remote, prepare_experiment, probe_server

        why = None
        if offline == "true":
            why = "tracking.offline=true"
        elif offline == "auto" and is_remote(uri):
            try:
                probe_server(uri)
            except TrackingError as exc:  # the server does not answer
                reason = getattr(exc.__cause__, "reason", exc.__cause__)
                why = f"tracking.offline=auto, and the server at {uri} did not answer at start ({reason})"
        tags = _context_tags(tags, main_file, code_dir)
        if why is not None:
            start = start_time or now_ms()
            return self._open_offline(why, experiment, artifact_location, params, tags, run_name, start)
        from mlflow import MlflowClient

        experiment_id = prepare_experiment(uri, experiment, artifact_location)
        self._client = MlflowClient(uri)
        self._experiment_id = experiment_id
        run = self._client.create_run(experiment_id, start_time, tags, run_name)
        self.run_id = run.info.run_id
        parent = tags.get("mlflow.parentRunId")
        if parent:  # the sweep's process is alive while it starts jobs
            self._client.set_tag(parent, HEARTBEAT_TAG, str(now_ms()))
        self.log_params(params)
        return self.run_id

    def _open_offline(
        self,
        why: str,
        experiment: str,
        artifact_location: Optional[str],
        params: Mapping[str, str],
        tags: Mapping[str, str],
        run_name: Optional[str],
        start_time: int,
    ) -> Dict[str, str]:
        """Keep the run's creation and params as the spool's first records; contact nothing."""
        if not self._folder:
            raise TrackingError("offline tracking needs the run's folder (the tag mlpx.output_dir)")
        self._offline = why
        self._spool = Spool(Path(self._folder), self._uri, None, why)
        tags = {**tags, OFFLINE_ID_TAG: self._spool.offline_id}
        self._spool.append("create", (experiment, artifact_location, tags, run_name, start_time), {})
        self._spool.append("log_params", (dict(params),), {})
        return {"offline": why, "folder": self._folder}

    def create(
        self,
        experiment: str,
        artifact_location: Optional[str],
        tags: Mapping[str, str],
        run_name: Optional[str],
        start_time: int,
    ) -> str:
        """Create an offline run on the server now (``mlpx sync``), started when it really started.

        The run is owned by the syncing process while it is RUNNING (``mlpx.host``, ``mlpx.pid``),
        so another mlpx starting on the store meanwhile does not take it for a dead run."""
        from mlflow import MlflowClient

        from mlpx.tracking.tracker import prepare_experiment

        self._experiment_id = prepare_experiment(self._uri, experiment, artifact_location)
        self._client = self._client or MlflowClient(self._uri)
        tags = {**tags, **owner_tags()}
        run = self._client.create_run(self._experiment_id, start_time, tags, run_name)
        self.run_id = run.info.run_id
        return self.run_id

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int, timestamp_ms: int) -> None:
        from mlflow.entities import Metric, RunTag

        batch = [Metric(k, float(v), timestamp_ms, step) for k, v in metrics.items()]
        beat = [RunTag(HEARTBEAT_TAG, str(now_ms() if self._replaying else timestamp_ms))]  # alive
        self._client.log_batch(self.run_id, metrics=batch, tags=beat)

    def end_stale_runs(self) -> List[str]:
        """End FAILED the experiment's runs left RUNNING by dead processes (``mlpx.tracking.stale_runs``);
        one line per run ended. A failure here is reported, not fatal to this run."""
        from mlpx.tracking.stale_runs import end_stale_runs

        try:
            return end_stale_runs(self._client, self._experiment_id)
        except Exception as exc:
            return [f"could not look for runs left RUNNING by dead processes: {type(exc).__name__}: {exc}"]

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:_MAX_TAG_LENGTH]) for k, v in tags.items()]
        if items:
            self._client.log_batch(self.run_id, tags=items)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, path: str, artifact_path: Optional[str] = None) -> None:
        self._client.log_artifact(self.run_id, path, artifact_path)

    def log_metric(self, key: str, value: float, step: Optional[int], timestamp_ms: int) -> None:
        """A plugin's metric (``run.log_metric``); MLflow's step 0 when ``step`` is None."""
        from mlflow.entities import Metric

        self._client.log_batch(self.run_id, metrics=[Metric(key, float(value), timestamp_ms, step or 0)])

    def log_param(self, key: str, value: str) -> None:
        self._client.log_param(self.run_id, key, value)

    def log_inputs(self, splits: List[Mapping[str, Any]]) -> None:
        """Log each split as an MLflow dataset (``mlflow.data.from_numpy`` + ``log_input``'s call).

        A split is {name, digest, source, context, features: [shape, dtype], targets: [shape,
        dtype]}: a dataset entity holds the schema and shape, never the values, so arrays of
        zero strides stand in for the data, which need not cross the pipe.
        """
        import warnings

        import mlflow.data
        import numpy as np
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        inputs = []
        for split in splits:  # (the source path also reads as a URI: MLflow warns, and picks the path)
            features, targets = (
                np.broadcast_to(np.zeros((), dtype=split[part][1]), tuple(split[part][0]))
                for part in ("features", "targets")
            )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
                dataset = mlflow.data.from_numpy(
                    features, split["source"], targets, name=split["name"], digest=split["digest"]
                )
            context = [InputTag(MLFLOW_DATASET_CONTEXT, split["context"])]
            inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=context))
        self._client.log_inputs(self.run_id, datasets=inputs)

    def log_model(
        self,
        weights: str,
        network: Mapping[str, Any],
        activation_code: str,
        input_example: List[List[float]],
        register_as: Optional[str] = None,
    ) -> str:
        """Log the trained MLP as an MLflow pyfunc model, a LoggedModel linked to the run; return
        its ``models:/`` URI. ``register_as``: also register it as a new version of that model.

        The model is ``mlpx/tracking/logged_model.py`` (models from code: no pickle of mlpx objects) with
        ``weights`` (a .npz of plain arrays), ``network`` (its layer count, dtype, activation) and
        the activation's source file ``activation_code``. Requirements are given, not inferred
        (MLflow infers them by loading the model in a subprocess: seconds).
        """
        import json
        import tempfile

        import mlflow
        import numpy as np
        from mlflow.models import Model, ModelSignature
        from mlflow.types import Schema, TensorSpec

        mlflow.set_tracking_uri(self._uri)
        if self._experiment_id is None:  # replayed by ``mlpx sync``
            self._experiment_id = self._client.get_run(self.run_id).info.experiment_id
        mlflow.set_experiment(experiment_id=self._experiment_id)  # the LoggedModel's experiment
        if self._replaying:
            logged = self._logged_model()
            if logged is not None:
                return logged
        dtype = np.dtype(network["dtype"])
        signature = ModelSignature(
            inputs=Schema([TensorSpec(dtype, (-1, network["n_features"]))]),
            outputs=Schema([TensorSpec(np.dtype(np.float64), (-1, network["n_classes"]))]),
        )
        requirements = {"mlflow": mlflow.__version__, "numpy": np.__version__}
        with tempfile.TemporaryDirectory() as folder, _quiet(), _only_packages_known(requirements):
            spec_path = Path(folder) / "network.json"
            spec_path.write_text(json.dumps(network, indent=2))
            # what mlflow.pyfunc.log_model calls, given the run: this process has no active run
            info = Model.log(
                artifact_path=None,
                name="model",
                flavor=mlflow.pyfunc,
                run_id=self.run_id,
                python_model=str(MODEL_CODE),
                artifacts={"weights": weights, "network": str(spec_path)},
                code_paths=[activation_code],
                signature=signature,
                input_example=np.asarray(input_example, dtype=dtype),
                pip_requirements=[f"{name}=={version}" for name, version in requirements.items()],
            )
        if register_as:
            mlflow.register_model(info.model_uri, register_as)
        return info.model_uri

    def _logged_model(self) -> Optional[str]:
        """The ``models:/`` URI of the run's model if an earlier ``mlpx sync`` logged it whole;
        one it left half-made (not READY) is deleted, to be logged again."""
        runs_models = self._client.search_logged_models(
            [self._experiment_id], filter_string=f"source_run_id = '{self.run_id}'"
        )
        for model in runs_models:
            if model.name != "model":
                continue
            if model.status == "READY":
                return model.model_uri
            self._client.delete_logged_model(model.model_id)
        return None

    def close(self, status: str, tags: Mapping[str, str], end_time: Optional[int] = None) -> None:
        """Set the final tags and end the run with ``status`` (FINISHED, FAILED or KILLED), at
        ``end_time`` (epoch ms; default now)."""
        if self.run_id is None:
            return
        try:
            self.set_tags(tags)
        finally:  # a tag MLflow refuses must not leave the run RUNNING
            self._client.set_terminated(self.run_id, status, end_time)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without MLflow's advice on type hints and its INFO line on validating the input example."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in ("mlflow.pyfunc", "mlflow.models")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*type hints", category=UserWarning)
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


@contextlib.contextmanager
def _only_packages_known(requirements: Mapping[str, str]) -> Iterator[None]:
    """While a model is logged with these requirements, MLflow's map of installed packages to
    modules holds just them (each its own module), then is unset again.

    MLflow checks given requirements against the installed versions, and first maps every
    installed distribution's files to its modules (``packages_distributions``): 0.3-0.8 s here,
    most of a logged model's time, at the end of every run, for two packages whose versions it
    then reads by name anyway. Nothing else runs meanwhile; a map MLflow already built is kept.
    """
    from mlflow.utils import requirements_utils

    if requirements_utils._MODULES_TO_PACKAGES is not None:
        yield
        return
    requirements_utils._MODULES_TO_PACKAGES = {name: [name] for name in requirements}
    try:
        yield
    finally:
        requirements_utils._MODULES_TO_PACKAGES = None
        requirements_utils._PACKAGES_TO_MODULES = None


def _context_tags(
    tags: Mapping[str, str], main_file: Optional[str], code_dir: Optional[str]
) -> Dict[str, str]:
    """``tags`` over MLflow's own run-context tags (user, source name and type, git commit,
    branch and repository URL) for ``main_file``, with the git tags of ``code_dir`` if
    ``main_file`` is not in a checkout."""
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils import git_utils
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_BRANCH, MLFLOW_GIT_COMMIT, MLFLOW_GIT_REPO_URL

    saved = sys.argv[:]
    if main_file:
        sys.argv[:1] = [main_file]  # MLflow reads the main file's path from sys.argv[0]
    try:
        resolved = resolve_tags(dict(tags))  # in the helper, without IPython: mark_ipython_absent
    finally:
        sys.argv[:] = saved
    if MLFLOW_GIT_COMMIT not in resolved and code_dir:
        for key, read in (
            (MLFLOW_GIT_COMMIT, git_utils.get_git_commit),
            (MLFLOW_GIT_BRANCH, git_utils.get_git_branch),
            (MLFLOW_GIT_REPO_URL, git_utils.get_git_repo_url),
        ):
            value = read(code_dir)
            if value:
                resolved[key] = value
    return resolved


# ---------------------------------------------------------------- the helper's side of the pipe

Request = Tuple[int, int, str, tuple, dict]  # (sequence number, recorder id, method, args, kwargs)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer pickled requests until the pipe closes: one reply per request, in order.

    A reply is (the request's sequence number, answer), the answer ("ok", result) or ("error",
    exception type name, message). Once a recorder's call failed, its later calls are answered
    ("skipped", ...) so one error is reported once; only ``close`` still runs, so the run does
    not stay RUNNING.
    """
    import mlflow  # noqa: F401  the ~2 s this process exists to spend early

    recorders: Dict[int, RunRecorder] = {}
    failures: Dict[int, str] = {}  # recorder id -> its first error
    while True:
        try:
            number, recorder_id, method, args, kwargs = pickle.load(requests)
        except (EOFError, pickle.UnpicklingError):
            _orphaned(recorders)
            return
        recorder = recorders.setdefault(recorder_id, RunRecorder())
        if method == "close":
            args, kwargs = _closing(failures.get(recorder_id), *args, **kwargs)
            recorders.pop(recorder_id)
            failures.pop(recorder_id, None)
        if recorder_id in failures:
            reply: tuple = ("skipped", method)
        else:
            try:
                reply = ("ok", recorder.call(method, args, kwargs))
            except Exception as exc:  # reported to the main process, which raises it there
                failures.setdefault(recorder_id, f"{type(exc).__name__}: {_message(exc)}")
                reply = ("error", type(exc).__name__, _message(exc))
        try:
            pickle.dump((number, reply), replies)
            replies.flush()
        except OSError:  # the main process is gone (BrokenPipeError): nobody else can end its runs
            _orphaned(recorders)
            return


def _orphaned(recorders: Mapping[int, RunRecorder]) -> None:
    """The main process closed the pipe without closing these runs: it died (SIGKILL, the OOM
    killer). End them here, KILLED if this process got the signal too, else FAILED."""
    for recorder in recorders.values():
        if recorder.run_id is None and recorder._spool is None:  # no run, and none kept offline
            continue
        if _signal_received is not None:
            status, cause = "KILLED", f"interrupted by {signal.Signals(_signal_received).name}"
        else:
            status, cause = "FAILED", f"the mlpx process {_main_pid} died"
        tags = {"mlpx.error": f"{cause} before it ended the run; ended by its MLflow helper process"}
        if status == "KILLED":
            tags["mlpx.interrupted"] = cause
        try:
            recorder.call("close", (status, tags), {})
        except Exception as exc:  # nobody is left to tell but stderr
            print(f"mlpx helper: could not end run {recorder.run_id}: {exc}", file=sys.stderr)


def _closing(failure: Optional[str], status: str, tags: Mapping[str, str]) -> Tuple[tuple, dict]:
    """``close``'s arguments: a run whose recording failed is closed anyway (never left
    RUNNING), and FAILED with the error if it would otherwise look FINISHED."""
    if failure and status == "FINISHED":
        status, tags = "FAILED", {**tags, "mlpx.error": f"recording the run failed: {failure}"}
    return (status, tags), {}


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


_signal_received: Optional[int] = None
_main_pid: Optional[int] = None


def mark_ipython_absent() -> None:
    """Make ``import IPython`` fail at once in this process.

    The helper is never an IPython shell, a notebook, or a process Databricks' dbutils reach, yet
    MLflow asks, by importing IPython, when it creates a run and again a logged model (its
    Jupyter and Databricks run-context probes: 0.2-0.4 s each, before the first epoch's sync and
    after the last). Every such probe in MLflow catches ImportError, so they answer "no" at once.
    """
    sys.modules["IPython"] = None


def _note_signal(signum: int, frame) -> None:
    global _signal_received
    if _signal_received is None:
        _signal_received = signum


def main(argv: List[str]) -> None:
    """Entry point of the helper process: requests on stdin, replies on a private copy of stdout.

    Anything MLflow prints goes to stderr, so it cannot corrupt the reply stream. Ctrl-C (and
    SIGTERM or SIGHUP sent to the whole process group) reaches the helper too; it only notes
    the signal, so it can still record the run as KILLED for the main process, and it exits
    when the main process closes the pipe. If the main process dies without closing its run,
    the helper closes it.
    """
    global _main_pid
    _main_pid = os.getppid()
    mark_ipython_absent()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _note_signal)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies)
    try:
        replies.close()
    except OSError:  # the main process is gone; what it was owed cannot be delivered
        pass
    os._exit(0)  # every reply is out: skip tearing MLflow down, which the main process would wait for


if __name__ == "__main__":
    main(sys.argv[1:])
