"""How many BLAS threads train each epoch: a fixed number, or ``auto``, measured and re-decided.

On a machine with few cores, BLAS threads that share a core with another busy process wait for
it at every product: on 2 cores an epoch went from 0.54 s to 2.6 s beside one CPU-bound
process, while one thread stayed at ~0.86 s busy or quiet. ``auto`` therefore times a few
forward and backward passes of the run's own model at each candidate count, interleaved, and
trains with the fastest (the smaller count when they are within ``TIE``). Between epochs it
measures again when an epoch's steps were ``SLOWER`` than that measurement predicts (something
started beside it), and every ``RECHECK_EPOCHS`` epochs while it runs on fewer threads than it
may use (that something may have stopped).

The count never exceeds the cores this process may run on (``os.sched_getaffinity``) nor the
threads its BLAS started with: a joblib worker, whose BLAS the launcher starts with
cores // n_jobs threads, keeps that share. A number is applied as given. Results are
bit-identical for a fixed count; between counts they differ in the last bits.
"""

import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

from mlpx.blas import numpy_blas_controller

AUTO = "auto"

#: the whole measurement's time budget, warm-up included (seconds; a probe call is timed whole)
MEASURE_SECONDS = 0.1
#: one timed slice of repeated probe calls at one count; slices of the candidates alternate
SLICE_SECONDS = 0.008
#: a count this many times slower than the best is not timed again within a measurement
DROP = 2.0
#: counts whose measured steps are within this factor of the fastest count as ties: fewer wins
TIE = 1.05
#: an epoch whose steps take this factor longer than predicted (after the usual overhead) re-decides
SLOWER = 1.3
#: before any epoch has shown the usual overhead over the probe, steps this much slower re-decide
FIRST_EPOCH_SLOWER = 2.0
#: while below the ceiling, measure again every this many epochs
RECHECK_EPOCHS = 4

Setting = Union[str, int]


def parse_setting(value: Any) -> Setting:
    """``"auto"`` or a thread count >= 1 from a config value; ValueError says what is wrong."""
    text = str(value).strip().lower()
    if text == AUTO:
        return AUTO
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1 or str(count) != text:
        raise ValueError(f"trainer.blas_threads={value}: use auto or a whole number of threads >= 1")
    return count


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask; all CPUs where that is not known)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def candidates(ceiling: int) -> List[int]:
    """Counts ``auto`` compares: 1, powers of two below ``ceiling``, and ``ceiling`` itself."""
    counts = {1, ceiling}
    power = 2
    while power < ceiling:
        counts.add(power)
        power *= 2
    return sorted(counts)


def measure(
    probe: Callable[[], None],
    counts: List[int],
    set_threads: Callable[[int], None],
    budget: float = MEASURE_SECONDS,
    clock: Callable[[], float] = time.perf_counter,
) -> Dict[int, float]:
    """Seconds per ``probe`` call at each of ``counts``: the median over interleaved slices.

    One untimed call per count first (it wakes that many threads and fills caches), then rounds
    of one ``SLICE_SECONDS`` slice per count, the order rotating each round, until ``budget``
    is spent (one round at least). Interleaving makes a
    neighbour that comes and goes hurt every count alike; the median ignores a slice the
    scheduler took away. A count ``DROP`` times slower than the best leaves the rounds early:
    its threads are waiting on a busy core, and every call of it costs the budget dearly.
    """
    started = clock()
    for count in counts:
        set_threads(count)
        probe()
    slices: Dict[int, List[float]] = {count: [] for count in counts}
    active, round_index = list(counts), 0
    while True:
        shift = round_index % len(active)
        for count in active[shift:] + active[:shift]:
            set_threads(count)
            calls, slice_started = 0, clock()
            while True:
                probe()
                calls += 1
                elapsed = clock() - slice_started
                if elapsed >= SLICE_SECONDS:
                    break
            slices[count].append(elapsed / calls)
        medians = {count: statistics.median(slices[count]) for count in active}
        best = min(medians.values())
        active = [count for count in active if medians[count] <= DROP * best]
        round_index += 1
        if len(active) == 1 or clock() - started >= budget:
            break
    return {count: statistics.median(values) for count, values in slices.items()}


def fastest(seconds_per_call: Dict[int, float]) -> int:
    """The count with the fastest calls, the smallest of those within ``TIE`` of it."""
    best = min(seconds_per_call.values())
    return min(count for count, seconds in seconds_per_call.items() if seconds <= TIE * best)


@dataclass
class Decision:
    """One measurement: seconds per probe call at each count, and the count chosen."""

    seconds_per_call: Dict[int, float]
    threads: int
    took: float  # seconds the measurement took


@dataclass
class ThreadPolicy:
    """The BLAS thread count of each epoch: ``setting`` is ``"auto"`` or a fixed count.

    ``before_epoch(probe)`` applies the count (measuring first when ``auto`` must decide) and
    returns it; ``after_epoch(probe_calls, seconds)`` reports how long the epoch's training
    steps took; ``release()`` gives the BLAS back the count it had. One policy may serve several
    ``fit`` calls: it measures once and keeps deciding from what it saw.
    """

    setting: Setting = AUTO
    ceiling: Optional[int] = None  # default: min(usable cores, the BLAS's starting threads)
    budget: float = MEASURE_SECONDS
    decisions: List[Decision] = field(default_factory=list)
    _controller: Any = field(default=None, repr=False)
    _original: Optional[int] = field(default=None, repr=False)
    _threads: Optional[int] = field(default=None, repr=False)
    _remeasure: bool = field(default=True, repr=False)
    _usual_overhead: float = field(default=math.inf, repr=False)
    _epochs_since: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self.setting = parse_setting(self.setting)
        self._controller = numpy_blas_controller()
        self._original = self._current()
        if self.ceiling is None:
            self.ceiling = max(1, min(usable_cores(), self._original or usable_cores()))

    @property
    def threads(self) -> int:
        """The count of the current (or last) epoch; the BLAS's own before the first."""
        return self._threads if self._threads is not None else (self._current() or 1)

    def _current(self) -> Optional[int]:
        return None if self._controller is None else int(self._controller.num_threads)

    def _set(self, count: int) -> None:
        if self._controller is not None and self._controller.num_threads != count:
            self._controller.set_num_threads(count)

    def before_epoch(self, probe: Callable[[], None]) -> int:
        """Apply the count for the coming epoch and return it; ``probe`` is one forward and
        backward pass of the model that changes no weights (``auto`` times it)."""
        if self.setting != AUTO:
            self._threads = int(self.setting)
        elif self._remeasure or self._threads is None:
            self._decide(probe)
        self._set(self._threads)
        return self._threads

    def _decide(self, probe: Callable[[], None]) -> None:
        counts = candidates(self.ceiling) if self._controller is not None else [self.threads]
        started = time.perf_counter()
        if len(counts) == 1:  # nothing to choose (one core, or a BLAS threadpoolctl cannot reach)
            seconds, chosen = {counts[0]: math.nan}, counts[0]
        else:
            seconds = measure(probe, counts, self._set, self.budget)
            chosen = fastest(seconds)
        self.decisions.append(Decision(seconds, chosen, time.perf_counter() - started))
        self._threads, self._remeasure, self._epochs_since = chosen, False, 0

    def after_epoch(self, probe_calls: float, seconds: float) -> None:
        """Record that the last epoch's training steps, worth ``probe_calls`` probe calls (its
        rows over the probe's), took ``seconds``; ``auto`` measures again before the next epoch
        when they were slower than predicted, or periodically while below the ceiling."""
        if self.setting != AUTO or not self.decisions or probe_calls <= 0:
            return
        self._epochs_since += 1
        predicted = self.decisions[-1].seconds_per_call.get(self._threads, math.nan)
        if math.isfinite(predicted) and predicted > 0:
            overhead = seconds / probe_calls / predicted  # the optimizer step and bookkeeping on top
            limit = FIRST_EPOCH_SLOWER if math.isinf(self._usual_overhead) else SLOWER * self._usual_overhead
            if overhead > limit:
                self._remeasure = True
            self._usual_overhead = min(self._usual_overhead, overhead)
        if self._threads < self.ceiling and self._epochs_since >= RECHECK_EPOCHS:
            self._remeasure = True

    def release(self) -> None:
        """Give NumPy's BLAS back the thread count it had when the policy was made."""
        if self._original is not None:
            self._set(self._original)


def policy_for(setting: Union[Setting, ThreadPolicy, None]) -> Optional[ThreadPolicy]:
    """A ``ThreadPolicy`` for a config value (``None``: leave the BLAS's threads alone)."""
    if setting is None or isinstance(setting, ThreadPolicy):
        return setting
    return ThreadPolicy(setting)
