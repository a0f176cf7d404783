"""What a dead tracking server could not take, kept in the run's folder; ``mlpx sync RUN_DIR`` sends it.

When an http(s) tracking server stops answering mid-run, the helper (``mlpx.run_recorder``) stops
calling it: every later ``RunRecorder`` call, the failed one first, is appended to
``RUN_DIR/mlflow-unsent.jsonl`` (one JSON object per line; artifacts by path, as they already are
in the run's folder) and training goes on at full speed. ``mlpx sync RUN_DIR`` replays the calls
on the same ``RunRecorder`` methods once a server answers, noting how many it sent in
``mlflow-unsent.sent`` after each one, so running it twice, or again after an interruption,
sends nothing twice.
"""

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

SPOOL_FILE = "mlflow-unsent.jsonl"
PROGRESS_FILE = "mlflow-unsent.sent"
#: lowered from MLflow's defaults (7 retries, backoff 2, 120 s) in the helper, unless set: a dead
#: server costs a call a few seconds, not minutes
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server did not answer (refused, reset, timed out), as opposed to
    refusing the request."""
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    message = str(getattr(exc, "message", None) or exc)
    return "failed with exception" in message and any(
        word in message for word in ("Max retries exceeded", "Connection", "timed out", "Timeout")
    )


class Spool:
    """The unsent calls of one run, appended to ``folder/SPOOL_FILE``."""

    def __init__(self, folder: Path, uri: str, run_id: str, cause: str) -> None:
        self.path = Path(folder) / SPOOL_FILE
        self.count = 0
        header = {"uri": uri, "run_id": run_id, "cause": cause}
        with open(self.path, "w") as out:
            out.write(json.dumps(header) + "\n")

    def append(self, method: str, args: tuple, kwargs: dict) -> None:
        with open(self.path, "a") as out:
            out.write(json.dumps({"method": method, "args": list(args), "kwargs": kwargs}) + "\n")
        self.count += 1


def _read(folder: Path) -> List[Dict[str, Any]]:
    with open(folder / SPOOL_FILE) as spooled:
        return [json.loads(line) for line in spooled if line.strip()]


def _sent(folder: Path) -> int:
    try:
        return int((folder / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return 0


def sync(folder: Path, uri: Optional[str] = None) -> str:
    """Send what ``folder`` kept to the server (``uri``, default the run's own); return a summary.

    Raises TrackingError when the server still cannot be reached (nothing is lost: run it again).
    """
    from mlpx.errors import TrackingError
    from mlpx.run_recorder import RunRecorder
    from mlpx.tracking import is_remote, probe_server

    header, *calls = _read(folder)
    uri = uri or header["uri"]
    done = _sent(folder)
    if done >= len(calls):
        return f"nothing to send: the {len(calls)} records of run {header['run_id']} were sent already"
    if is_remote(uri):
        probe_server(uri)
    from mlflow import MlflowClient

    recorder = RunRecorder()
    recorder.run_id, recorder._client, recorder._uri = header["run_id"], MlflowClient(uri), uri
    for number, call in enumerate(calls, start=1):
        if number <= done:
            continue
        try:
            getattr(recorder, call["method"])(*call["args"], **call["kwargs"])
        except Exception as exc:
            raise TrackingError(
                f"sent {number - 1} of {len(calls)} records of run {header['run_id']} to {uri}; "
                f"{call['method']} failed: {type(exc).__name__}: {exc}. Run `mlpx sync {folder}` again."
            ) from exc
        (folder / PROGRESS_FILE).write_text(str(number))
    return f"sent {len(calls) - done} records of run {header['run_id']} to {uri}"


def sync_command(args: List[str]) -> int:
    """``mlpx sync RUN_DIR [--uri URI]``: 0 when everything is sent, 1 if not, 2 on a usage error."""
    from mlpx.errors import MlpxError

    usage = "usage: mlpx sync RUN_DIR [--uri URI]   (send what a run could not send to its tracking server)"
    uri = None
    if "--uri" in args:
        at = args.index("--uri")
        if at + 1 >= len(args):
            print(usage, file=sys.stderr)
            return 2
        uri = args[at + 1]
        args = args[:at] + args[at + 2 :]
    if len(args) != 1 or args[0].startswith("-"):
        print(usage, file=sys.stderr)
        return 2
    folder = Path(args[0])
    if not (folder / SPOOL_FILE).is_file():
        print(f"mlpx sync: {folder} holds no {SPOOL_FILE}: nothing to send", file=sys.stderr)
        return 1
    try:
        print(sync(folder, uri))
    except MlpxError as exc:
        print(f"mlpx sync: {exc}", file=sys.stderr)
        return 1
    return 0
