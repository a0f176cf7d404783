"""What a dead tracking server could not take, kept in the run's folder; ``mlpx sync RUN_DIR`` sends it.

When an http(s) tracking server stops answering mid-run, the helper (``mlpx.tracking.recorder``) stops
calling it: every later ``RunRecorder`` call, the failed one first, is appended to
``RUN_DIR/mlflow-unsent.jsonl`` (one JSON object per line; artifacts by path, as they already are
in the run's folder) and training goes on at full speed. ``mlpx sync RUN_DIR`` replays the calls
on the same ``RunRecorder`` methods once a server answers, noting how many it sent in
``mlflow-unsent.sent`` after each one, so running it twice, or again after an interruption,
sends nothing twice.
"""

import json
from pathlib import Path
from typing import Any, Dict, List

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


def read_spool(folder: Path) -> List[Dict[str, Any]]:
    with open(folder / SPOOL_FILE) as spooled:
        return [json.loads(line) for line in spooled if line.strip()]


def sent_records(folder: Path) -> int:
    try:
        return int((folder / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return 0
