"""``mlpx sync RUN_DIR``: send what a run kept in its folder (the spool) to its tracking server.

Idempotent: the spool's progress file counts the records already sent, so a second sync (or one
after a sync that failed half-way) sends only the rest.
"""

import sys
from pathlib import Path
from typing import List, Optional

from mlpx.tracking.recorder import RunRecorder
from mlpx.tracking.spool import PROGRESS_FILE, SPOOL_FILE, read_spool, sent_records


def sync(folder: Path, uri: Optional[str] = None) -> str:
    """Send what ``folder`` kept to the server (``uri``, default the run's own); return a summary.

    Raises TrackingError when the server still cannot be reached (nothing is lost: run it again).
    """
    from mlpx.errors import TrackingError
    from mlpx.tracking.tracker import is_remote, probe_server

    header, *calls = read_spool(folder)
    uri = uri or header["uri"]
    done = sent_records(folder)
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
