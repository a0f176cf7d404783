"""Runs left RUNNING by a process that died (SIGKILL, the OOM killer, power loss) are ended FAILED.

Every run records which process owns it: ``mlpx.host``, ``mlpx.pid`` and ``mlpx.pid_start`` (the
process's start time, so a reused pid is not taken for the owner), and ``mlpx.heartbeat`` (epoch
milliseconds), renewed with every epoch's metrics. When mlpx opens a run it ends, in the same
experiment, the RUNNING runs of this host whose process is gone, and those of other hosts whose
heartbeat is older than ``heartbeat_timeout()`` (other hosts' processes cannot be seen). Runs
without ``mlpx.host`` (made by something else) are left alone.
"""

import os
import socket
import time
from typing import Any, Dict, List, Optional

HOST_TAG, PID_TAG, PID_START_TAG, HEARTBEAT_TAG = "mlpx.host", "mlpx.pid", "mlpx.pid_start", "mlpx.heartbeat"
ABANDONED_TAG = "mlpx.abandoned"
#: seconds without a heartbeat after which another host's RUNNING run counts as dead
DEFAULT_HEARTBEAT_TIMEOUT = 12 * 3600
HEARTBEAT_TIMEOUT_ENV = "MLPX_HEARTBEAT_TIMEOUT"


def heartbeat_timeout() -> float:
    """``$MLPX_HEARTBEAT_TIMEOUT`` seconds if set, else 12 hours: far longer than any epoch."""
    try:
        return float(os.environ.get(HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT))
    except ValueError:
        return DEFAULT_HEARTBEAT_TIMEOUT


def owner_tags(pid: Optional[int] = None) -> Dict[str, str]:
    """The tags naming this process (or ``pid``) as a run's owner, with a first heartbeat."""
    pid = os.getpid() if pid is None else pid
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        PID_START_TAG: _start_time(pid) or "",
        HEARTBEAT_TAG: str(now_ms()),
    }


def now_ms() -> int:
    return int(time.time() * 1000)


def _stat_fields(pid: int) -> Optional[List[str]]:
    """/proc/PID/stat after the command name (which may hold spaces), or None (no such process
    or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _start_time(pid: int) -> Optional[str]:
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None  # field 22: start time in ticks


def process_alive(pid: int, start: Optional[str] = None) -> bool:
    """Whether process ``pid`` runs on this host and, when ``start`` is known, is the same
    process (not a later one that got the pid). A zombie counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc to look closer
    if fields[0] in ("Z", "X"):
        return False
    return not start or fields[19] == start


def owner_alive(run: Any) -> bool:
    """Whether the process that owns ``run`` (an MLflow Run) still runs on this host; runs of
    other hosts, or without owner tags, count as alive."""
    tags = run.data.tags
    if tags.get(HOST_TAG) != socket.gethostname():
        return True
    try:
        return process_alive(int(tags.get(PID_TAG, "")), tags.get(PID_START_TAG))
    except ValueError:
        return True


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ms / 1000))


def why_dead(run: Any, host: str, now: int, timeout_s: float) -> Optional[str]:
    """Why the RUNNING ``run`` (an MLflow Run) has no living owner, or None if it may have one."""
    tags = run.data.tags
    owner_host = tags.get(HOST_TAG)
    if not owner_host:
        return None
    try:
        pid = int(tags.get(PID_TAG, ""))
    except ValueError:
        return None
    beat = _heartbeat(run)
    if owner_host == host:
        if process_alive(pid, tags.get(PID_START_TAG)):
            return None
        return f"its process {pid} on {host} is gone (last heartbeat {_iso(beat)})"
    if now - beat <= timeout_s * 1000:
        return None
    hours = (now - beat) / 3.6e6
    return f"no heartbeat from process {pid} on {owner_host} for {hours:.1f} h (since {_iso(beat)})"


def _heartbeat(run: Any) -> int:
    try:
        return int(run.data.tags.get(HEARTBEAT_TAG, ""))
    except ValueError:
        return int(run.info.start_time or 0)


def end_stale_runs(client: Any, experiment_id: str) -> List[str]:
    """End FAILED every RUNNING run of the experiment whose owner is dead; one line per run ended.

    ``client`` is an ``MlflowClient``. The end time is the run's last heartbeat: when it stopped.
    """
    from mlflow.entities import RunTag

    host, now, timeout_s = socket.gethostname(), now_ms(), heartbeat_timeout()
    running = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    ended = []
    for run in running:
        cause = why_dead(run, host, now, timeout_s)
        if cause is None:
            continue
        # read again now that the owner is known dead: it may have ended the run and exited
        # since the search, and a dead process changes nothing any more
        if client.get_run(run.info.run_id).info.status != "RUNNING":
            continue
        note = f"ended FAILED at {_iso(now)} by mlpx process {os.getpid()} on {host}: {cause}"
        client.log_batch(
            run.info.run_id,
            tags=[RunTag(ABANDONED_TAG, note), RunTag("mlpx.error", f"abandoned: {cause}")],
        )
        client.set_terminated(run.info.run_id, "FAILED", end_time=max(_heartbeat(run), run.info.start_time))
        ended.append(f"run {run.info.run_id} ({run.info.run_name}) was left RUNNING: {note}")
    return ended
