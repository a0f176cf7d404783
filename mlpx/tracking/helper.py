"""The MLflow helper process, seen from the main process: start it early, send it requests.

``python -m mlpx`` starts the helper before Hydra composes the config, so the helper's import of
MLflow (~2 s) runs on the other core while the main process composes, loads plugins and data
and checks them. Requests (``mlpx.tracking.recorder.RunRecorder`` method calls) are pickled onto the
helper's stdin and answered in order; the main process sends without waiting and collects the
answers at the points where an error must stop it (before training, after each epoch, at the
end of the run). One helper serves every run of the process, one after the other.
"""

import atexit
import itertools
import pickle
import select
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

from mlpx import signals
from mlpx.errors import TrackingError

Reply = Tuple[Any, ...]


class HelperProcess:
    """A running ``python -m mlpx.tracking.recorder`` and the requests it has not answered yet."""

    def __init__(self) -> None:
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "mlpx.tracking.recorder"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        except OSError as exc:
            raise TrackingError(f"cannot start the MLflow helper process ({sys.executable}): {exc}") from exc
        self._waiting: Dict[int, Tuple[int, str]] = {}  # sequence number -> (recorder id, method)
        self._answers: Dict[int, List[Tuple[str, Reply]]] = {}
        self._ids = itertools.count(1)
        self._sequence = itertools.count(1)
        self._sent_any = False
        self._interrupted_answers = False  # see would_wait

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def new_recorder_id(self) -> int:
        return next(self._ids)

    def send(self, recorder_id: int, method: str, args: tuple, kwargs: dict) -> None:
        """Queue one request; every reply carries its request's sequence number, so a Ctrl-C
        between writing a request and noting it down cannot pair a reply with the wrong one."""
        number = next(self._sequence)
        try:  # pickled whole before anything is written: a failure leaves the pipe clean
            request = pickle.dumps((number, recorder_id, method, args, kwargs))
        except Exception as exc:
            raise TrackingError(f"cannot send {method}() to the MLflow helper: {exc}") from exc
        try:
            with signals.deferred():  # a signal must not leave half a request in the pipe
                self._waiting[number] = (recorder_id, method)
                self._sent_any = True
                self._process.stdin.write(request)
                self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._died() from None

    def would_wait(self) -> bool:
        """Whether ``answers`` would block now: requests are waiting and no reply has arrived.
        (Replies are read only by ``answers``, until none is owed, so none sits in a buffer.)"""
        if not self._waiting or self._process.stdout is None or self._interrupted_answers:
            return False  # (after an interrupted ``answers``, a reply may sit in the buffer)
        try:
            readable, _, _ = select.select([self._process.stdout], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def answers(self, recorder_id: int) -> List[Tuple[str, Reply]]:
        """Wait for every request sent so far; return (method, reply) of this recorder's ones."""
        self._interrupted_answers = True  # until every reply owed is read
        while self._waiting:
            try:
                with signals.deferred():  # nor half a reply read: the next one would be garbage
                    number, reply = pickle.load(self._process.stdout)
                    owner_and_method = self._waiting.pop(number, None)
                    if owner_and_method is not None:
                        owner, method = owner_and_method
                        self._answers.setdefault(owner, []).append((method, reply))
            except (EOFError, OSError, pickle.UnpicklingError):
                raise self._died() from None
        self._interrupted_answers = False
        return self._answers.pop(recorder_id, [])

    def _died(self) -> TrackingError:
        self._waiting.clear()
        if self._process.poll() is None:  # alive but talking nonsense: no use waiting for it
            self._process.kill()
        code = self._process.wait()
        return TrackingError(
            f"the MLflow helper process exited with code {code} before it answered (its error "
            "output is above); the run was not recorded completely"
        )

    def close(self) -> None:
        """Let the helper finish what it was sent and exit; stop one that was sent nothing (it
        may still be importing MLflow, for a command that ended without a run)."""
        if not self._sent_any and self._process.poll() is None:
            self._process.kill()
        if self._process.stdin and not self._process.stdin.closed:
            try:
                self._process.stdin.close()
            except OSError:
                pass
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()


_shared: Optional[HelperProcess] = None


def shared_helper() -> HelperProcess:
    """This process's helper, started on first use (or again, if it died)."""
    global _shared
    if _shared is None or not _shared.alive:
        _shared = HelperProcess()
        atexit.register(_shared.close)
    return _shared


#: what ``python -m mlpx`` does without a run: subcommands, and Hydra flags that print and exit
_NO_RUN = {"plugins", "check", "sync", "doctor", "--help", "-h", "--hydra-help", "--info", "-i", "--cfg"}
_NO_RUN |= {"-c", "--version", "-V", "--shell-completion", "-sc"}


def start_early(args: List[str]) -> None:
    """Start the helper now, so MLflow is imported by the time the first run needs it, unless
    the command line ``args`` run nothing here: no job at all, or jobs in another launcher's
    worker processes (which start their own helper)."""
    elsewhere = any(a.startswith("hydra/launcher=") and a != "hydra/launcher=basic" for a in args)
    if not (_NO_RUN.intersection(args) or elsewhere):
        shared_helper()


class RemoteRecorder:
    """One run's ``RunRecorder`` in the helper: ``submit`` its methods, ``sync`` for the results.

    ``sync`` raises TrackingError for the first failed call, naming it; the calls after it were
    skipped by the helper.
    """

    def __init__(self, helper: Optional[HelperProcess] = None) -> None:
        self._helper = helper or shared_helper()
        self._id = self._helper.new_recorder_id()
        self.results: Dict[str, Any] = {}  # the last result of each method

    def submit(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._helper.send(self._id, method, args, kwargs)

    def would_wait(self) -> bool:
        """Whether ``sync`` would block now (the helper is still busy, importing MLflow say)."""
        return self._helper.would_wait()

    def sync(self) -> None:
        failure = None
        for method, reply in self._helper.answers(self._id):
            if reply[0] == "ok":
                self.results[method] = reply[1]
            elif reply[0] == "error" and failure is None:
                failure = _tracking_error(method, reply[1], reply[2])
        if failure is not None:
            raise failure


def _tracking_error(method: str, kind: str, message: str) -> TrackingError:
    if kind == "TrackingError":
        return TrackingError(message)
    return TrackingError(f"MLflow could not record the run ({method}): {kind}: {message}")
