"""``mlpx sync RUN_DIR``: send what a run kept in its folder (the spool) to its tracking server.

Idempotent: an offline run is created once (its id noted in the run folder before anything else
is sent, and found again by its ``mlpx.offline_id`` tag if a sync was killed between the two), and
the spool's progress file counts the records already sent, so a second sync (or one after a sync
that failed or was killed half-way) sends only the rest. A record sent just before a kill is sent
again: MLflow's SQL stores keep one copy of a metric with the same key, step, timestamp and value,
tags and params are set to the same values, artifacts overwritten, and a model logged whole is
not logged twice.
"""

import os
import socket
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from mlpx.errors import TrackingError
from mlpx.tracking.recorder import RunRecorder
from mlpx.tracking.spool import (
    HTTP_LIMITS,
    OFFLINE_ID_TAG,
    SPOOL_FILE,
    note_sent,
    read_mapping,
    read_spool,
    resolve_files,
    sent_records,
    write_mapping,
)
from mlpx.tracking.stale_runs import HOST_TAG, PID_START_TAG, PID_TAG, process_alive


def sync(folder: Path, uri: Optional[str] = None) -> str:
    """Send what ``folder`` kept to the server (``uri``, default the run's own); return a summary.

    Raises TrackingError when the server still cannot be reached (nothing is lost: run it again).
    """
    from mlpx.tracking.tracker import is_remote, probe_server

    header, *calls = read_spool(folder)
    mapping = read_mapping(folder)
    if mapping and uri and uri != mapping["uri"]:
        raise TrackingError(
            f"{folder} was sent to {mapping['uri']} as MLflow run {mapping['run_id']} already; "
            f"run `mlpx sync {folder}` without --uri to send the rest there"
        )
    given = uri
    uri = uri or (mapping or header)["uri"]
    local = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else None
    if given is None and local is not None and not Path(local).is_file():
        raise TrackingError(
            f"{folder} was kept for the SQLite store {local}, which does not exist here (was the folder "
            f"copied from another machine?): name the store to send it to, `mlpx sync {folder} --uri URI`"
        )
    run_id = header["run_id"] or (mapping or {}).get("run_id")
    done = sent_records(folder)
    if done >= len(calls):
        return f"nothing to send: the {len(calls)} records of run {run_id} were sent to {uri} already"
    for name, value in HTTP_LIMITS.items():  # a server that dies mid-sync costs seconds, not minutes
        os.environ.setdefault(name, value)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if is_remote(uri):
        probe_server(uri)
    from mlflow import MlflowClient

    recorder = RunRecorder()
    recorder.run_id, recorder._client, recorder._uri = run_id, MlflowClient(uri), uri
    recorder._replaying = True
    for number, call in enumerate(calls, start=1):
        if number <= done:
            continue
        try:
            if call["method"] == "create":
                run_id = _create_once(recorder, folder, header, call["args"])
            else:
                args = resolve_files(folder, call["method"], call["args"])
                getattr(recorder, call["method"])(*args, **call["kwargs"])
        except Exception as exc:
            raise TrackingError(
                f"sent {number - 1} of {len(calls)} records of run {run_id or '(not created yet)'} to "
                f"{uri}; {call['method']} failed: {type(exc).__name__}: {exc}. "
                f"Run `mlpx sync {folder}` again."
            ) from exc
        note_sent(folder, number)
    kind = "offline run" if header.get("offline") else "run"
    sent = f"sent {len(calls) - done} records of {kind} {run_id} to {uri}"
    if not any(call["method"] == "close" for call in calls):
        return sent + _end_unclosed(recorder, calls)
    return sent + ": all of it is there now"


def _end_unclosed(recorder: RunRecorder, calls: List[Dict[str, Any]]) -> str:
    """A spool without its run's end: the process that kept it still runs (say so, leave the run
    RUNNING for it), or it died (SIGKILL, power loss) before ending it: end the run FAILED."""
    owner = next((call["args"][2] for call in calls if call["method"] == "create"), None)
    owner = owner or next((call["args"][4] for call in calls if call["method"] == "open"), {})
    pid, host = owner.get(PID_TAG, ""), owner.get(HOST_TAG)
    if host == socket.gethostname() and pid.isdigit() and process_alive(int(pid), owner.get(PID_START_TAG)):
        return f"; process {pid} is still recording it: run `mlpx sync` again once it has ended"
    cause = f"the mlpx process {pid or '?'} on {host or '?'} died before it ended the run"
    recorder.close("FAILED", {"mlpx.error": f"{cause}; ended FAILED by mlpx sync"})
    return f"; {cause}, so it is ended FAILED"


def _create_once(recorder: RunRecorder, folder: Path, header: Dict[str, Any], args: List[Any]) -> str:
    """The offline run's id on the server: the one noted in ``folder``, the one an interrupted
    sync created (found by its ``mlpx.offline_id`` tag), or a new run; noted before it returns."""
    mapping = read_mapping(folder)
    if mapping:
        recorder.run_id = mapping["run_id"]
        return recorder.run_id
    from mlpx.tracking.tracker import prepare_experiment

    experiment, artifact_location = args[0], args[1]
    experiment_id = prepare_experiment(recorder._uri, experiment, artifact_location)
    found = recorder._client.search_runs(
        [experiment_id], filter_string=f"tags.`{OFFLINE_ID_TAG}` = '{header['offline_id']}'", max_results=1
    )
    if found:
        recorder.run_id, recorder._experiment_id = found[0].info.run_id, experiment_id
    else:
        recorder.create(*args)
    write_mapping(folder, recorder._uri, recorder.run_id)
    return recorder.run_id


def sync_command(args: List[str]) -> int:
    """``mlpx sync RUN_DIR [--uri URI]``: 0 when everything is sent, 1 if not, 2 on a usage error."""
    import argparse

    from mlpx.errors import MlpxError

    parser = argparse.ArgumentParser(
        prog="mlpx sync",
        description="Send what a run kept in its folder to its MLflow tracking server: a run made "
        "offline (tracking.offline=true or auto), or the rest of a run whose server stopped "
        "answering. Creates the run (and its experiment) when it was made offline; running it "
        "twice, or again after an interrupted sync, sends nothing twice.",
        epilog="Exit status: 0 when everything is sent, 1 when the server still cannot take it "
        "(nothing is lost: run it again), 2 on a usage error.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help=f"the run folder, holding {SPOOL_FILE}")
    parser.add_argument("--uri", help="the tracking server (default: the run's own tracking.uri)")
    options = parser.parse_args(args)
    folder = options.run_dir
    if not (folder / SPOOL_FILE).is_file():
        print(f"mlpx sync: {folder} holds no {SPOOL_FILE}: nothing to send", file=sys.stderr)
        return 1
    try:
        print(sync(folder, options.uri))
    except MlpxError as exc:
        print(f"mlpx sync: {exc}", file=sys.stderr)
        return 1
    return 0
