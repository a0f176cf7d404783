"""SIGINT, SIGTERM and SIGHUP end a run the same way: an ``Interrupted`` exception, KILLED in MLflow.

SIGTERM's default action kills a process at once (no ``finally``, no ``atexit``): schedulers
(SLURM, Docker, systemd) send it first, so the run would stay RUNNING forever. ``install`` makes
all three signals raise ``Interrupted`` (a ``KeyboardInterrupt``, so every handler that ends a run
on Ctrl-C also ends it on the others). While the run is being closed, a repeated signal is
ignored (a terminal's second Ctrl-C); the third ends the process at once. ``deferred`` holds a
signal back over a few lines that must not be cut in half (writing a request to the helper).
The closing layers ``note`` what they kept; ``report`` prints it as one line and gives the exit code.
"""

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator, List, Optional

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: signals received after the first before the process gives up closing and exits at once
_FORCE_AFTER = 2


class Interrupted(KeyboardInterrupt):
    """The process received ``signum`` (SIGINT, SIGTERM or SIGHUP) and is ending its run."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_received: Optional[int] = None  # the first signal, once one arrived
_repeats = 0
_defer_depth = 0
_pending: Optional[int] = None
#: one line per run (or sweep parent) closed because of the signal, written by the tracking layers
kept: List[str] = []


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` in this process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup's SIGHUP stays ignored
            signal.signal(signum, _handle)


def received() -> Optional[int]:
    """The first signal this process received, if any."""
    return _received


def reason(error: BaseException) -> Optional[str]:
    """``interrupted by SIGTERM`` for an interrupt (a plain KeyboardInterrupt is SIGINT), else None."""
    if isinstance(error, Interrupted):
        return str(error)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted by SIGINT"
    return None


def _handle(signum: int, frame) -> None:
    global _received, _repeats, _pending
    if _received is not None:
        _repeats += 1
        if _repeats >= _FORCE_AFTER:
            os.write(2, b"mlpx: interrupted again: exiting without closing the run\n")
            os._exit(128 + signum)
        os.write(2, b"mlpx: still closing the run; interrupt once more to exit at once\n")
        return
    _received = signum
    if _defer_depth:
        _pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a signal arriving inside the block until the block is done, then raise it."""
    global _defer_depth, _pending
    _defer_depth += 1
    try:
        yield
    finally:
        _defer_depth -= 1
        if _defer_depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


def note(line: str) -> None:
    """Record what was kept of a run the signal ended, for the closing line."""
    kept.append(line)


def report(error: KeyboardInterrupt) -> int:
    """Print one line saying what the interrupt kept and where; return the exit code (128 + signal)."""
    signum = getattr(error, "signum", signal.SIGINT)
    name = signal.Signals(signum).name
    if kept:
        print(f"mlpx: interrupted by {name}: " + "; ".join(kept), file=sys.stderr, flush=True)
    else:
        print(f"mlpx: interrupted by {name}; no MLflow run was open", file=sys.stderr, flush=True)
    return 128 + signum
