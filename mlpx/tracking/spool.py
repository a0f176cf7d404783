"""What the tracking server did not get, kept in the run's folder; ``mlpx sync RUN_DIR`` sends it.

Two ways a run's ``RunRecorder`` calls land in ``RUN_DIR/mlflow-unsent.jsonl`` (one JSON object
per line after a header) instead of reaching MLflow:

- an http(s) tracking server stops answering mid-run: the failed call and every later one are
  kept (the header names the run id the server gave at start), and training goes on at full speed;
- offline mode (``tracking.offline=true``, or ``auto`` with a server that does not answer at
  start): no server is contacted at all. The first record creates the run (``create``: tags, run
  name, start time), the next one logs its params; the header has no run id yet, but an
  ``offline_id`` that the run is tagged with (``mlpx.offline_id``).

``mlpx sync RUN_DIR`` (``mlpx.tracking.sync``) replays the calls on the same ``RunRecorder``
methods. It notes the run it created in ``mlflow-unsent.run`` before sending anything else, and
how many records it sent in ``mlflow-unsent.sent`` after each one, so running it twice, or again
after an interruption, creates no second run and sends nothing twice.

Files are kept by path relative to the run folder (a folder moved or copied elsewhere, say from
a compute node without network to a login node, still syncs); a file logged from outside the
folder (a plugin's temporary file) is copied into ``mlflow-unsent-files/`` first.
"""

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

SPOOL_FILE = "mlflow-unsent.jsonl"
PROGRESS_FILE = "mlflow-unsent.sent"
MAPPING_FILE = "mlflow-unsent.run"  # {"uri", "run_id"}: the run ``mlpx sync`` created for an offline run
COPIES_FOLDER = "mlflow-unsent-files"
OFFLINE_ID_TAG = "mlpx.offline_id"
#: lowered from MLflow's defaults (7 retries, backoff 2, 120 s) in the helper and in ``mlpx sync``,
#: unless set: a dead server costs a call a few seconds, not minutes
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
#: the positions of file arguments of the recorder's methods, kept relative to the run folder
_FILE_ARGS = {"log_artifact": (0,), "log_model": (0, 2)}


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
    """The unsent calls of one run, appended to ``folder/SPOOL_FILE``.

    ``run_id`` None: an offline run, which ``mlpx sync`` creates (``offline_id`` finds it again).
    """

    def __init__(self, folder: Path, uri: str, run_id: Optional[str], cause: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / SPOOL_FILE
        self.count = 0
        self.offline_id = None if run_id else uuid.uuid4().hex
        header = {"uri": uri, "run_id": run_id, "cause": cause}
        if self.offline_id:
            header.update(offline=True, offline_id=self.offline_id)
        with open(self.path, "w") as out:
            out.write(json.dumps(header) + "\n")

    def append(self, method: str, args: tuple, kwargs: dict) -> None:
        args = list(args)
        for position in _FILE_ARGS.get(method, ()):
            if position < len(args) and args[position]:
                args[position] = self._kept(Path(args[position]))
        with open(self.path, "a") as out:
            out.write(json.dumps({"method": method, "args": args, "kwargs": kwargs}) + "\n")
            out.flush()
            os.fsync(out.fileno())  # a power loss must not take the run's last records
        self.count += 1

    def _kept(self, path: Path) -> str:
        """``path`` relative to the run folder, copied into it first if it lies outside."""
        path = path.resolve()
        try:
            return str(path.relative_to(self.folder.resolve()))
        except ValueError:
            copy = self.folder / COPIES_FOLDER / str(self.count) / path.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, copy, dirs_exist_ok=True)
            elif path.exists():  # a missing file fails at sync, naming it
                shutil.copyfile(path, copy)
            else:
                return str(path)
            return str(copy.relative_to(self.folder))


def read_spool(folder: Path) -> List[Dict[str, Any]]:
    with open(folder / SPOOL_FILE) as spooled:
        return [json.loads(line) for line in spooled if line.strip()]


def resolve_files(folder: Path, method: str, args: List[Any]) -> List[Any]:
    """A record's arguments with its files' paths made absolute again, against ``folder``."""
    args = list(args)
    for position in _FILE_ARGS.get(method, ()):
        if position < len(args) and args[position]:
            args[position] = str(Path(folder).resolve() / args[position])
    return args


def sent_records(folder: Path) -> int:
    try:
        return int((folder / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return 0


def note_sent(folder: Path, records: int) -> None:
    _write_atomically(folder / PROGRESS_FILE, str(records))


def read_mapping(folder: Path) -> Optional[Dict[str, str]]:
    try:
        return json.loads((folder / MAPPING_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_mapping(folder: Path, uri: str, run_id: str) -> None:
    _write_atomically(folder / MAPPING_FILE, json.dumps({"uri": uri, "run_id": run_id}))


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` whole: a kill mid-write leaves the old content, never half."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
