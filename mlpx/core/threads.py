"""How many BLAS threads train each epoch: a fixed number, or ``auto``, measured and re-decided.

On a machine with few cores, BLAS threads that share a core with another busy process wait for
it at every product: on 2 cores an epoch went from 0.54 s to 2.6 s beside one CPU-bound
process, while one thread stayed at ~0.86 s busy or quiet. ``auto`` times the epoch's own
first training steps (the trainer's probe: real work, none thrown away) at each candidate
count in interleaved slices (~0.1 s in all), and trains with the fastest (the smaller count
when they are within ``TIE``). It starts at one thread and asks the kernel how many tasks of
other processes are runnable (/proc/loadavg less this process's own runnable threads, such as
its BLAS's spinning workers): counts above the cores those leave free are not timed at all.
That check is what keeps the measurement short and honest beside a busy process: one call at
two threads can take 0.2 s there, and a thread that just slept gets a busy core at once for a
while, so a short timing flatters a count that an epoch-long competition for the core punishes.

Between epochs it measures again when, during the epoch, other processes took a core it
trains on (the kernel's busy time on this process's cores, /proc/stat, minus this process's own
CPU time: precise over an epoch, not over a probe), and when the epoch's steps ran ``SLOWER``
than the recent epochs at the same count did (the first epoch at a count: ``FIRST_EPOCH_SLOWER``
than the measurement predicts). Recent epochs, not the fastest ever: the machine's speed drifts
(by 1.5x over tens of seconds here, host noise /proc/stat does not show), and each count has its
own, since the steps' share outside the BLAS differs between counts.

Below its ceiling it measures before every epoch: the probe is real training, so a measurement
wastes only the difference between counts, and beside a busy process, whose runnable task it
sees, it times just one count: ``FIRST_SLICES`` slices of the training it does anyway. That
keeps a noisy measurement (say right after a busy process stopped) from holding it below the
ceiling, and follows a busy process that stops between epochs. Where runnable tasks cannot be
counted, a measurement times every count, so it measures every epoch only while /proc/stat
shows that the last epoch left a core free, and otherwise every ``RECHECK_EPOCHS`` epochs.
None of these re-measures comes before it has trained ``AMORTIZE`` times as long as the last
measurement took (the look below: as long as a measurement beside a busy process takes, three
8 ms slices), so measuring stays a small share of a run whose epochs are short; and each check
below the ceiling that timed several counts and kept its count doubles that wait
(``PERIODIC``, up to ``MAX_BACKOFF``), so a quiet machine where fewer threads really are faster
settles.

Before an epoch at more than one thread it takes a cheap look: other runnable tasks now, once,
and ``LOOK_SAMPLES`` times ``LOOK_GAP`` apart only when that once shows any (a task that runs
for a moment, a shell command or a kernel worker, is rarely seen by most). When they would take
a core it trains on, it measures before the epoch instead of finding out after it: a process
that starts between epochs costs 2 threads their slowest epoch otherwise (2.7 s against 0.9).

The count never exceeds the cores this process may run on (``os.sched_getaffinity``) nor the
threads its BLAS started with: a joblib worker, whose BLAS the launcher starts with
cores // n_jobs threads, keeps that share, and only the runnable tasks beyond the cores that
share leaves to the others compete with it (``competing_others``: the sweep's other workers
fill their own cores). A number is applied as given. Results are
bit-identical for a fixed count; between counts they differ in the last bits."""

import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from mlpx.core.blas import numpy_blas_controller

AUTO = "auto"

#: the whole measurement's time budget, warm-up included (seconds; a probe call is timed whole)
MEASURE_SECONDS = 0.1
#: one timed slice of repeated probe calls at one count; slices of the candidates alternate
SLICE_SECONDS = 0.008
#: slices at one thread first, asking how many other tasks are runnable after each
FIRST_SLICES = 3
#: a count this many times slower than the best is not timed again within a measurement
DROP = 2.0
#: counts whose measured steps are within this factor of the fastest count as ties: fewer wins
TIE = 1.05
#: an epoch whose steps take this factor longer than the fastest recent epoch at its count re-decides
SLOWER = 1.3
#: how many of the last epochs ``SLOWER`` compares with (only those at the same count)
RECENT_EPOCHS = 4
#: with no recent epoch at its count, steps this many times the measured ones re-decide
FIRST_EPOCH_SLOWER = 2.0
#: a core counts as taken by other processes when they kept it busy this much of the time
TAKEN = 0.5
#: where neither runnable tasks nor the last epoch show whether a core is taken: while below
#: the ceiling, measure again this often (epochs)
RECHECK_EPOCHS = 4
#: between epochs it measures again only after training this many times as long as the last
#: measurement took: a measurement costs a fraction of its time (the worse count's extra steps,
#: idle probes once an epoch's steps run out), so this bounds its share of a run. Epochs of 0.01 s
#: (a small network) otherwise paid 0.1 s each for re-measures; the look below is exempt
AMORTIZE = 5.0
#: reasons of the periodic checks below the ceiling: each that times several counts and confirms
#: the count doubles the training it waits for before the next (up to ``MAX_BACKOFF`` x), so a
#: machine where fewer threads really are faster (a small network) settles instead of being
#: measured for ever
PERIODIC = ("below the ceiling", "a core was free", "recheck")
MAX_BACKOFF = 32.0
#: the look before an epoch at more than one thread: samples of the runnable other tasks
#: (the first alone when it sees none), and the seconds between them
LOOK_SAMPLES = 3
LOOK_GAP = 0.001

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


def _busy_seconds(cpus: List[int]) -> Optional[float]:
    """CPU seconds the kernel counts as busy (user, nice, system, irq, softirq, steal) on
    ``cpus`` since boot, from /proc/stat; None where that file does not exist."""
    try:
        with open("/proc/stat") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{cpu}" for cpu in cpus}
    ticks = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
            ticks += user + nice + system + irq + softirq + steal
    return ticks / os.sysconf("SC_CLK_TCK")


class OthersMeter:
    """How many of this process's cores other processes kept busy over a window: the kernel's
    busy time on those cores minus this process's own CPU time (every thread of it)."""

    def __init__(self) -> None:
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cpus = list(range(os.cpu_count() or 1))
        self._start: Optional[tuple] = None

    def start(self) -> None:
        self._start = (_busy_seconds(self.cpus), time.process_time(), time.perf_counter())

    def cores(self) -> Optional[float]:
        """Cores the others used on average since ``start`` (None: not measurable here)."""
        busy = _busy_seconds(self.cpus)
        if self._start is None or busy is None or self._start[0] is None:
            return None
        busy0, own0, wall0 = self._start
        wall = time.perf_counter() - wall0
        if wall <= 0:
            return None
        others = (busy - busy0 - (time.process_time() - own0)) / wall  # /proc/stat counts 10 ms ticks
        return min(float(len(self.cpus)), max(0.0, others))


def free_cores(ceiling: int, others: Optional[float]) -> int:
    """Cores of ``ceiling`` the others leave free (half a core busy counts as taken), >= 1."""
    if others is None:
        return ceiling
    return max(1, ceiling - math.floor(others + 1 - TAKEN))


def room_beside(runnable: int, ceiling: int) -> int:
    """Counts up to ``ceiling`` that ``runnable`` other tasks leave a core each for, >= 1."""
    return max(1, ceiling - runnable)


def candidates(ceiling: int) -> List[int]:
    """Counts ``auto`` compares: 1, powers of two below ``ceiling``, and ``ceiling`` itself."""
    counts = {1, ceiling}
    power = 2
    while power < ceiling:
        counts.add(power)
        power *= 2
    return sorted(counts)


def _own_running_threads() -> int:
    """Threads of this process the kernel has runnable right now (/proc/self/task/*/stat), the
    caller included; 1 where that cannot be read."""
    running = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                text = stat.read()
        except OSError:  # the thread ended meanwhile
            continue
        if text[text.rindex(")") + 2 : text.rindex(")") + 3] == "R":
            running += 1
    return max(1, running)


def runnable_others() -> Optional[int]:
    """Tasks of other processes runnable right now (/proc/loadavg minus this process's own
    runnable threads), when this process may use every CPU of the machine (else they may be
    elsewhere); None where it cannot be told.

    Its own threads do not count: after a BLAS call on two threads the idle worker spins for
    ~0.1 s and is runnable all that time, which made a measurement right after one (the
    previous epoch's, a check's, another library's) see a busy core that was not there.
    """
    if usable_cores() != (os.cpu_count() or 0):
        return None
    try:
        with open("/proc/loadavg") as loadavg:
            running = int(loadavg.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0, running - _own_running_threads())


def competing_others(ceiling: int) -> Optional[int]:
    """Other runnable tasks beyond the cores a ``ceiling`` of threads leaves to them: with a
    ceiling of 2 on 8 cores six fit beside it, a seventh competes (joblib's other workers on a
    big machine must not keep one worker at 1 thread); None where they cannot be counted."""
    runnable = runnable_others()
    if runnable is None:
        return None
    return max(0, runnable - max(0, (os.cpu_count() or 1) - ceiling))


def measure(
    probe: Callable[[], None],
    counts: List[int],
    set_threads: Callable[[int], None],
    budget: float = MEASURE_SECONDS,
    clock: Callable[[], float] = time.perf_counter,
    others_now: Callable[[], Optional[int]] = lambda: None,
) -> Dict[int, float]:
    """Seconds per ``probe`` call at each of ``counts`` (ascending): medians over slices.

    First ``FIRST_SLICES`` slices of one ``SLICE_SECONDS`` at the smallest count, asking
    ``others_now`` (tasks runnable besides this one) after each: counts above the cores those
    leave free are not timed at all, since a single call of them can take longer than the whole
    budget beside a busy process. Then rounds of one slice per remaining count, the order
    rotating each round, until ``budget`` is spent. A count's first call wakes its threads and
    fills caches and is not timed, unless it alone overran a slice and ``DROP`` times the
    fastest so far; a count ``DROP`` times slower than the best leaves the rounds early.
    Interleaving makes a neighbour that comes and goes hurt every count alike; the median
    ignores a slice the scheduler took away.
    """
    started = clock()
    slices: Dict[int, List[float]] = {count: [] for count in counts}

    def time_slice(count: int) -> None:
        set_threads(count)
        calls, slice_started = 0, clock()
        while True:
            probe()
            calls += 1
            elapsed = clock() - slice_started
            if elapsed >= SLICE_SECONDS:
                break
        slices[count].append(elapsed / calls)

    set_threads(counts[0])
    probe()
    seen = []
    for _ in range(FIRST_SLICES):
        time_slice(counts[0])
        seen.append(others_now())
    known = [others for others in seen if others is not None]
    if known:
        free = room_beside(statistics.median_low(known), max(counts))
        counts = [count for count in counts if count == counts[0] or count <= free]
    first_calls = {}
    for count in counts[1:]:
        set_threads(count)
        call_started = clock()
        probe()
        first_calls[count] = clock() - call_started
    quickest = min([statistics.median(slices[counts[0]]), *first_calls.values()])
    active = [counts[0]]
    for count, seconds in first_calls.items():
        if seconds <= max(DROP * quickest, SLICE_SECONDS):
            active.append(count)
        else:  # one call already cost more than a slice and DROP x the best
            slices[count].append(seconds)
    round_index = 0
    while len(active) > 1 and clock() - started < budget:
        shift = round_index % len(active)
        for count in active[shift:] + active[:shift]:
            time_slice(count)
        medians = {count: statistics.median(slices[count]) for count in active}
        best = min(medians.values())
        active = [count for count in active if medians[count] <= DROP * best]
        round_index += 1
    return {count: statistics.median(values) for count, values in slices.items() if values}


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
    free: int  # the largest count timed: the cores other runnable tasks left free
    runnable: Optional[int] = None  # the other runnable tasks it saw (None: it could not tell)
    reason: str = ""  # why it measured


@dataclass
class ThreadPolicy:
    """The BLAS thread count of each epoch: ``setting`` is ``"auto"`` or a fixed count.

    ``before_epoch(probe)`` applies the count (measuring first when ``auto`` must decide) and
    returns it; ``after_epoch(probe_calls, seconds)`` reports how long the epoch's training
    steps took; ``release()`` gives the BLAS back the count it had. One policy may serve several
    ``fit`` calls of the same work: it measures once and keeps deciding from what it saw.
    ``others_now``, ``sleep`` and ``clock`` are how it counts other runnable tasks, waits
    between samples of them and times the measurement (tests give fakes).
    """

    setting: Setting = AUTO
    ceiling: Optional[int] = None  # default: min(usable cores, the BLAS's starting threads)
    budget: float = MEASURE_SECONDS
    decisions: List[Decision] = field(default_factory=list)
    others_per_epoch: List[Optional[float]] = field(default_factory=list)  # cores others kept busy
    others_now: Optional[Callable[[], Optional[int]]] = field(default=None, repr=False)  # competing_others
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.perf_counter, repr=False)
    _meter: OthersMeter = field(default_factory=OthersMeter, repr=False)
    _controller: Any = field(default=None, repr=False)
    _original: Optional[int] = field(default=None, repr=False)
    _threads: Optional[int] = field(default=None, repr=False)
    _remeasure: Optional[str] = field(default="start", repr=False)  # why, when it must measure
    _recent: List[Tuple[int, float]] = field(default_factory=list, repr=False)  # (count, s per call)
    _epochs_since: int = field(default=0, repr=False)
    _trained_since: float = field(default=0.0, repr=False)  # seconds of steps since the last measurement
    _backoff: float = field(default=1.0, repr=False)  # x AMORTIZE; doubles while checks confirm the count

    def __post_init__(self) -> None:
        self.setting = parse_setting(self.setting)
        self._controller = numpy_blas_controller()
        self._original = self._current()
        if self.ceiling is None:
            self.ceiling = max(1, min(usable_cores(), self._original or usable_cores()))
        if self.others_now is None:
            ceiling = self.ceiling
            self.others_now = lambda: competing_others(ceiling)

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
        """Apply the count for the coming epoch and return it; ``probe`` is one unit of the
        epoch's work, the same each call (``auto`` times it; the trainer's trains the next step)."""
        if self.setting != AUTO:
            self._threads = int(self.setting)
        else:
            looks = not self._remeasure and self._threads is not None and self._threads > 1
            # the look's bar is what the measurement it asks for costs where it is right: beside a
            # busy process, FIRST_SLICES slices of one thread
            if looks and self._amortised(FIRST_SLICES * SLICE_SECONDS) and self._busy_now():
                self._remeasure = "others runnable now"
            if self._remeasure or self._threads is None:
                self._decide(probe)
        self._set(self._threads)
        self._meter.start()  # what the others take during the epoch
        return self._threads

    def _busy_now(self) -> bool:
        """Whether other runnable tasks would take a core of the current count now: one sample
        and, only when it sees some, ``LOOK_SAMPLES`` in all ``LOOK_GAP`` apart, their median
        deciding (a task that runs for a moment is not in most). False where it cannot tell."""
        first = self.others_now()
        if first is None or room_beside(first, self.ceiling) >= self._threads:
            return False  # the usual answer on a quiet machine: one read, ~0.1 ms
        seen = [first]
        for _ in range(LOOK_SAMPLES - 1):
            self.sleep(LOOK_GAP)
            runnable = self.others_now()
            if runnable is None:
                return False
            seen.append(runnable)
        return room_beside(statistics.median_low(seen), self.ceiling) < self._threads

    def _decide(self, probe: Callable[[], None]) -> None:
        """Measure the candidate counts on ``probe`` and train with the fastest; the decision
        keeps the other runnable tasks the measurement saw and why it was made."""
        counts = candidates(self.ceiling) if self._controller is not None else [self.threads]
        started = self.clock()
        seen: List[int] = []

        def others_now() -> Optional[int]:  # what the measurement sees, kept for the decision
            runnable = self.others_now()
            if runnable is not None:
                seen.append(runnable)
            return runnable

        if len(counts) == 1:  # nothing to choose (one core, or a BLAS threadpoolctl cannot reach)
            seconds, chosen = {counts[0]: math.nan}, counts[0]
        else:
            seconds = measure(probe, counts, self._set, self.budget, self.clock, others_now)
            chosen = fastest(seconds)
        runnable = statistics.median_low(seen) if seen else None
        took = self.clock() - started
        # the counts it timed are those the others left room for
        self.decisions.append(Decision(seconds, chosen, took, max(seconds), runnable, self._remeasure or ""))
        # a periodic check that timed several counts and kept the count the last measurement had
        # also chosen timing several waits twice as long next time; one beside a busy process
        # (it timed only the count it trains with) costs nothing, and the first check after one
        # is often noisy (two threads timed right after the busy process stopped)
        previous = self.decisions[-2] if len(self.decisions) > 1 else None
        confirmed = (
            self._remeasure in PERIODIC
            and chosen == self._threads
            and len(seconds) > 1
            and previous is not None
            and len(previous.seconds_per_call) > 1
        )
        self._backoff = min(MAX_BACKOFF, 2 * self._backoff) if confirmed else 1.0
        self._threads, self._remeasure, self._epochs_since, self._trained_since = chosen, None, 0, 0.0

    def after_epoch(self, probe_calls: float, seconds: float) -> None:
        """Record that the last epoch's training steps, worth ``probe_calls`` probe calls (its
        rows over the probe's), took ``seconds``; ``auto`` measures again before the next epoch
        when other processes took a core it trains on during it, when its steps were slower than
        recent epochs at its count, and (mostly) whenever it trains below its ceiling."""
        if self.setting != AUTO or not self.decisions or probe_calls <= 0:
            return
        self._epochs_since += 1
        self._trained_since += seconds
        others = self._meter.cores()
        self.others_per_epoch.append(others)
        beside = max(0, usable_cores() - self.ceiling)  # cores the ceiling leaves to the others
        free = None if others is None else free_cores(self.ceiling, max(0.0, others - beside))
        per_call, reason = seconds / probe_calls, None
        if free is not None and free < self._threads:
            reason = "others took a core"
        elif self._threads < self.ceiling:
            reason = self._below_ceiling(free)
        if reason is None and self._slower(per_call):
            reason = "slower"
        if reason and not self._amortised():
            reason = None  # too soon: asked again after the next epoch, when it still holds
        self._remeasure = self._remeasure or reason
        self._recent = [*self._recent, (self._threads, per_call)][-RECENT_EPOCHS:]

    def _amortised(self, cost: Optional[float] = None) -> bool:
        """Whether it has trained long enough since the last measurement to measure again:
        ``AMORTIZE`` times as long as ``cost`` (default: what the last measurement took, times
        the back-off of checks below the ceiling that kept confirming their count)."""
        if not self.decisions:
            return True
        if cost is None:
            cost = self._backoff * self.decisions[-1].took
        return self._trained_since >= AMORTIZE * cost

    def _below_ceiling(self, free: Optional[int]) -> Optional[str]:
        """Why to measure before the next epoch, below the ceiling: always where the last epoch
        left a core free or the measurement sees runnable tasks for itself (beside a busy
        process it then times only the count it trains with); else every ``RECHECK_EPOCHS``."""
        if free is not None and free > self._threads:
            return "a core was free"
        if self.decisions[-1].runnable is not None:
            return "below the ceiling"
        return "recheck" if self._epochs_since >= RECHECK_EPOCHS else None

    def _slower(self, per_call: float) -> bool:
        """Whether the epoch's steps (``per_call`` seconds a probe call) ran ``SLOWER`` than the
        fastest of the recent epochs at its count, or with none, ``FIRST_EPOCH_SLOWER`` than
        the last measurement predicted."""
        recent = [seconds for count, seconds in self._recent if count == self._threads]
        if recent:
            return per_call > SLOWER * min(recent)
        predicted = self.decisions[-1].seconds_per_call.get(self._threads, math.nan)
        return math.isfinite(predicted) and predicted > 0 and per_call > FIRST_EPOCH_SLOWER * predicted

    def release(self) -> None:
        """Give NumPy's BLAS back the thread count it had when the policy was made."""
        if self._original is not None:
            self._set(self._original)


def policy_for(setting: Union[Setting, ThreadPolicy, None]) -> Optional[ThreadPolicy]:
    """A ``ThreadPolicy`` for a config value (``None``: leave the BLAS's threads alone)."""
    if setting is None or isinstance(setting, ThreadPolicy):
        return setting
    return ThreadPolicy(setting)
