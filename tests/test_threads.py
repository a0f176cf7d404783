"""The BLAS thread policy: a fixed count is applied and logged, ``auto`` stays within the cores,
follows a machine going quiet, busy and quiet from the first epoch of each, re-decides when epochs
slow down, and a fixed count trains bit-identically (no timed assertions: the speed goals are
measured by bench/contention.py and bench/policy_trace.py)."""

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mlpx.builtins.activations import ReLU
from mlpx.builtins.initializers import HeNormal
from mlpx.builtins.losses import CrossEntropy
from mlpx.builtins.optimizers import Momentum
from mlpx.core import threads
from mlpx.core.blas import numpy_blas_controller
from mlpx.core.model import MLP
from mlpx.core.threads import AUTO, Decision, ThreadPolicy, candidates, fastest, measure, parse_setting
from mlpx.core.trainer import fit
from mlpx.datasets import Dataset
from mlpx.errors import ConfigError
from mlpx.runs.runner import prepare
from tests.test_model_trainer import _small_cfg, _train

pytestmark = pytest.mark.skipif(
    numpy_blas_controller() is None, reason="NumPy's BLAS is out of threadpoolctl's reach"
)


def _data(n_train=600, n_val=100, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_val, 20)).astype(np.float32)
    labels = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)
    train, val = slice(0, n_train), slice(n_train, None)
    return Dataset("toy", x[train], labels[train], x[val], labels[val], x[val], labels[val], 3)


def _fit(blas_threads, epochs=3, on_epoch_end=None):
    model = MLP([20, 16, 8, 3], ReLU(), HeNormal(), np.random.default_rng(0))
    result = fit(
        model,
        CrossEntropy(),
        Momentum(lr=0.05),
        _data(),
        epochs=epochs,
        batch_size=32,
        rng=np.random.default_rng(1),
        blas_threads=blas_threads,
        on_epoch_end=on_epoch_end,
    )
    return model, result


@pytest.mark.parametrize("value, expected", [("auto", AUTO), ("AUTO", AUTO), ("2", 2), (1, 1), (" 3 ", 3)])
def test_settings_parse(value, expected):
    assert parse_setting(value) == expected


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "", "2x"])
def test_bad_settings_say_what_to_write(value):
    with pytest.raises(ValueError, match="use auto or a whole number"):
        parse_setting(value)


def test_a_bad_setting_stops_the_run_before_training(tmp_path):
    from mlpx.cli import plugin_host

    with pytest.raises(ConfigError, match="trainer.blas_threads=none"):
        prepare(_small_cfg(tmp_path, ["trainer.blas_threads=none"]), plugin_host(), tmp_path)


def test_a_fixed_count_is_applied_during_every_epoch_logged_and_given_back():
    controller = numpy_blas_controller()
    before = controller.num_threads
    seen = []
    _, result = _fit(1, on_epoch_end=lambda epoch, metrics: seen.append(controller.num_threads))
    assert seen == [1, 1, 1]
    assert [m["blas_threads"] for m in result.history] == [1, 1, 1]
    assert controller.num_threads == before


def test_auto_picks_a_count_within_the_usable_cores_and_logs_it():
    policy = ThreadPolicy(AUTO)
    assert 1 <= policy.ceiling <= threads.usable_cores()
    _, result = _fit(policy)
    assert policy.decisions, "auto decided at the start"
    for metrics in result.history:
        assert 1 <= metrics["blas_threads"] <= policy.ceiling
        assert metrics["blas_threads"] == int(metrics["blas_threads"])
    assert all(decision.took < 10 for decision in policy.decisions)  # bounded, not a speed goal


def test_auto_keeps_a_joblib_workers_share():
    controller = numpy_blas_controller()
    before = controller.num_threads
    controller.set_num_threads(1)  # what a worker's BLAS starts with at cores // n_jobs = 1
    try:
        policy = ThreadPolicy(AUTO)
        assert policy.ceiling == 1
        _, result = _fit(policy)
        assert {m["blas_threads"] for m in result.history} == {1}
        assert controller.num_threads == 1
    finally:
        controller.set_num_threads(before)


def test_without_a_policy_the_blas_is_left_alone_and_its_count_logged():
    controller = numpy_blas_controller()
    _, result = _fit(None, epochs=1)
    assert result.history[0]["blas_threads"] == controller.num_threads


@pytest.mark.parametrize("count", [1, 2])
def test_a_fixed_count_trains_bit_identically(count):
    first, first_result = _fit(count)
    second, second_result = _fit(count)
    for key in first.params:
        np.testing.assert_array_equal(first.params[key], second.params[key])
    strip = [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in first_result.history]
    assert strip == [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in second_result.history]


def test_the_run_logs_blas_threads_every_epoch(tmp_path):
    result = _train(_small_cfg(tmp_path, ["trainer.epochs=2", "trainer.blas_threads=1"]), tmp_path)
    assert [m["blas_threads"] for m in result.history] == [1, 1]
    auto = _train(_small_cfg(tmp_path, ["trainer.epochs=2"]), tmp_path)  # the default: auto
    assert all(1 <= m["blas_threads"] <= threads.usable_cores() for m in auto.history)


def test_candidates_span_one_to_the_ceiling():
    assert candidates(1) == [1]
    assert candidates(2) == [1, 2]
    assert candidates(6) == [1, 2, 4, 6]


class _FakeMachine:
    """A probe whose cost depends on the thread count, on a clock that only it and sleeps advance."""

    def __init__(self, cost):
        self.cost, self.now, self.count, self.calls, self.sleeps = cost, 0.0, None, {}, 0

    def set_threads(self, count):
        self.count = count

    def probe(self):
        self.now += self.cost[self.count]
        self.calls[self.count] = self.calls.get(self.count, 0) + 1

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.sleeps += 1


def test_measure_times_every_count_and_picks_the_fastest():
    machine = _FakeMachine({1: 0.002, 2: 0.0011})
    seconds = measure(machine.probe, [1, 2], machine.set_threads, budget=0.1, clock=machine.clock)
    assert seconds == pytest.approx({1: 0.002, 2: 0.0011})
    assert fastest(seconds) == 2
    assert machine.now < 0.15  # the budget holds


def test_measure_drops_a_count_that_waits_on_a_busy_core():
    machine = _FakeMachine({1: 0.002, 2: 0.05})  # two threads, one sharing a busy core
    seconds = measure(machine.probe, [1, 2], machine.set_threads, budget=0.1, clock=machine.clock)
    assert fastest(seconds) == 1
    assert machine.calls[2] == 1  # its first call cost more than a slice: never timed again


def test_measure_skips_counts_the_runnable_others_leave_no_core_for():
    machine = _FakeMachine({1: 0.002, 2: 0.0011})
    seconds = measure(machine.probe, [1, 2], machine.set_threads, 0.1, machine.clock, others_now=lambda: 1)
    assert seconds == pytest.approx({1: 0.002}) and 2 not in machine.calls


def test_near_ties_go_to_fewer_threads():
    assert fastest({1: 1.0, 2: 0.99}) == 1
    assert fastest({1: 1.0, 2: 0.5}) == 2


class _FakeMeter:
    def __init__(self, others=None):
        self.others = others

    def start(self):
        pass

    def cores(self):
        return self.others


def _decided(policy, seconds_per_call, chosen, others=None, runnable=None):
    """As if ``policy`` had just measured ``seconds_per_call`` and chosen ``chosen``, seeing
    ``runnable`` other tasks, with a meter that reports ``others`` busy cores each epoch."""
    policy._meter = _FakeMeter(others)
    decision = Decision(seconds_per_call, chosen, 0.0, max(seconds_per_call), runnable)
    policy.decisions.append(decision)
    policy._threads, policy._remeasure, policy._epochs_since = chosen, None, 0


def test_slower_epochs_than_predicted_make_auto_measure_again():
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002, 2: 0.001}, 2)
    policy.after_epoch(100, 0.12)  # 1.2x the probe: the usual overhead of a step
    assert not policy._remeasure
    policy.after_epoch(100, 0.13)
    assert not policy._remeasure
    policy.after_epoch(100, 0.5)  # something started beside it
    assert policy._remeasure


def test_a_first_epoch_far_slower_than_measured_makes_auto_measure_again():
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002, 2: 0.001}, 2)
    policy.after_epoch(100, 0.5)
    assert policy._remeasure


def test_below_the_ceiling_auto_looks_again_now_and_then():
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002, 2: 0.004}, 1)
    for _ in range(threads.RECHECK_EPOCHS - 1):
        policy.after_epoch(100, 0.22)
        assert not policy._remeasure
    policy.after_epoch(100, 0.22)
    assert policy._remeasure


def test_a_fixed_count_never_measures():
    policy = ThreadPolicy(2)
    probes = []
    assert policy.before_epoch(lambda: probes.append(1)) == 2
    policy.after_epoch(100, 100.0)
    assert policy.before_epoch(lambda: probes.append(1)) == 2
    assert probes == [] and policy.decisions == []
    policy.release()


def test_auto_measures_again_when_another_process_takes_a_core_it_trains_on():
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002, 2: 0.001}, 2, others=0.0)
    policy.after_epoch(100, 0.12)
    assert not policy._remeasure
    policy._meter.others = 0.9  # a busy process beside it, even if the steps kept their pace
    policy.after_epoch(100, 0.12)
    assert policy._remeasure


def test_auto_measures_again_when_the_busy_process_is_gone():
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002}, 1, others=1.0)  # 2 threads not timed: a task was runnable
    policy.after_epoch(100, 0.22)
    assert not policy._remeasure
    policy._meter.others = 0.05
    policy.after_epoch(100, 0.22)
    assert policy._remeasure


def test_others_half_a_core_busy_take_it():
    assert threads.free_cores(2, None) == 2
    assert threads.free_cores(2, 0.3) == 2
    assert threads.free_cores(2, 0.6) == 1
    assert threads.free_cores(2, 1.9) == 1  # always at least one
    assert threads.free_cores(4, 1.2) == 3


def test_the_meter_reads_the_others_cpu_time_or_says_it_cannot():
    meter = threads.OthersMeter()
    assert meter.cores() is None  # not started
    meter.start()
    sum(range(100_000))
    others = meter.cores()
    assert others is None or 0 <= others <= len(meter.cpus)


class _ProbingPolicy(ThreadPolicy):
    """A fixed count whose every epoch starts with ``calls`` probe calls, as ``auto``'s measurement does."""

    def __init__(self, count, calls):
        super().__init__(count)
        self.calls = calls

    def before_epoch(self, probe):
        for _ in range(self.calls):
            probe()
        return super().before_epoch(probe)


@pytest.mark.parametrize("calls", [1, 7, 40])  # 40: more than the 18 full batches, then the idle probe
def test_the_measurement_trains_the_epochs_first_steps_once_each(calls):
    model, result = _fit(_ProbingPolicy(1, calls))
    plain, plain_result = _fit(1)
    for key in plain.params:
        np.testing.assert_array_equal(model.params[key], plain.params[key])
    strip = [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in result.history]
    assert strip == [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in plain_result.history]


def test_own_running_threads_count_a_thread_computing_beside_the_caller():
    stop = threading.Event()

    def compute() -> None:  # NumPy's product releases the GIL: the thread stays runnable
        a = np.ones((300, 300))
        while not stop.is_set():
            a @ a

    worker = threading.Thread(target=compute)
    alone = threads._own_running_threads()
    worker.start()
    try:
        beside = max(threads._own_running_threads() for _ in range(50))
    finally:
        stop.set()
        worker.join()
    assert alone >= 1 and beside >= 2  # the caller, and the computing thread


QUIET = {1: 0.002, 2: 0.0011}  # seconds a step at each count, on 2 cores
BUSY = {1: 0.002, 2: 0.05}  # beside a CPU-bound process: 2 threads wait for its core


def _policy_on(machine, others_now, ceiling=2):
    """An ``auto`` policy whose BLAS, clock, sleeps and counts of runnable tasks are ``machine``'s
    and ``others_now``'s, with a meter reporting no busy core until told otherwise."""
    policy = ThreadPolicy(
        AUTO, ceiling=ceiling, others_now=others_now, sleep=machine.sleep, clock=machine.clock
    )
    policy._set = machine.set_threads
    policy._meter = _FakeMeter(0.0)
    return policy


def _epoch(policy, machine, steps=400):
    """One epoch as the trainer runs it: the count, then ``steps`` steps at it, reported."""
    count = policy.before_epoch(machine.probe)
    seconds = steps * machine.cost[count]
    machine.now += seconds
    policy.after_epoch(steps, seconds)
    return count


def test_auto_follows_a_machine_going_quiet_busy_quiet_from_the_first_epoch_of_each():
    machine, runnable = _FakeMachine(dict(QUIET)), [0]
    policy = _policy_on(machine, lambda: runnable[0])
    counts = []
    for busy, epochs in [(False, 2), (True, 3), (False, 3)]:
        machine.cost, runnable[0], policy._meter.others = (BUSY, 1, 1.0) if busy else (QUIET, 0, 0.0)
        calls_at_two = machine.calls.get(2, 0)
        counts += [_epoch(policy, machine) for _ in range(epochs)]
        if busy:
            assert machine.calls.get(2, 0) == calls_at_two  # not one step at 2 threads beside it
    assert counts == [2, 2, 1, 1, 1, 2, 2, 2]
    reasons = [decision.reason for decision in policy.decisions]
    assert reasons == [
        "start",
        "others runnable now",
        "below the ceiling",
        "below the ceiling",
        "below the ceiling",
    ]
    assert [decision.runnable for decision in policy.decisions] == [0, 1, 1, 1, 0]
    assert machine.sleeps == 2  # the look confirmed the busy process once; quiet, it read once


def test_below_the_ceiling_a_busy_machine_pays_only_the_checks_for_measuring_every_epoch():
    machine = _FakeMachine(dict(BUSY))
    policy = _policy_on(machine, lambda: 1)
    policy._meter.others = 1.0
    for _ in range(5):
        assert _epoch(policy, machine) == 1
    assert len(policy.decisions) == 5 and 2 not in machine.calls
    for decision in policy.decisions:  # FIRST_SLICES slices of 1-thread training, then on
        assert set(decision.seconds_per_call) == {1}
        assert decision.took < (threads.FIRST_SLICES + 1) * threads.SLICE_SECONDS + 0.01


def test_a_noisy_measurement_below_the_ceiling_is_taken_again_before_the_next_epoch():
    machine = _FakeMachine(dict(QUIET))
    policy = _policy_on(machine, lambda: 0)
    _decided(
        policy, {1: 0.002, 2: 0.0035}, 1, others=0.0, runnable=0
    )  # 2 threads timed just as a neighbour left
    policy.after_epoch(100, 0.2)  # the 1-thread epoch is as fast as ever: no slowdown to see
    assert policy._remeasure
    assert policy.before_epoch(machine.probe) == 2


def test_where_runnable_tasks_cannot_be_counted_a_free_core_still_measures_every_epoch():
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002, 2: 0.0035}, 1, others=0.0)  # runnable: None
    policy.after_epoch(100, 0.2)
    assert policy._remeasure == "a core was free"


def test_where_runnable_tasks_cannot_be_counted_a_busy_machine_is_measured_only_now_and_then():
    policy = ThreadPolicy(AUTO, ceiling=2)  # each measurement would time a 2-thread call beside it
    _decided(policy, {1: 0.002, 2: 0.05}, 1, others=1.0)
    for _ in range(threads.RECHECK_EPOCHS - 1):
        policy.after_epoch(100, 0.2)
        assert not policy._remeasure
    policy.after_epoch(100, 0.2)
    assert policy._remeasure == "recheck"


class _Samples:
    """``others_now`` answering from a list, then the last value; ``calls`` counts the reads."""

    def __init__(self, *values):
        self.values, self.calls = list(values), 0

    def __call__(self):
        self.calls += 1
        return self.values[min(self.calls, len(self.values)) - 1]


def _looking(samples, count=2, ceiling=2):
    machine = _FakeMachine(dict(QUIET))
    policy = _policy_on(machine, samples, ceiling)
    _decided(policy, {1: 0.002, 2: 0.0011}, count, others=0.0, runnable=0)
    policy._trained_since = 1.0  # an epoch trained since that measurement
    return policy, machine


def test_the_look_on_a_quiet_machine_is_one_read():
    samples = _Samples(0)
    policy, machine = _looking(samples)
    assert not policy._busy_now()
    assert samples.calls == 1 and machine.sleeps == 0


def test_the_look_needs_most_samples_to_see_a_runnable_task():
    policy, machine = _looking(_Samples(1, 0, 0))  # a task that ran for a moment
    assert not policy._busy_now()
    assert machine.sleeps == threads.LOOK_SAMPLES - 1 and machine.now == pytest.approx(0.002)
    policy, _ = _looking(_Samples(1, 0, 1))
    assert policy._busy_now()


def test_the_look_before_an_epoch_measures_only_when_a_core_it_trains_on_is_wanted():
    samples = _Samples(1)
    policy, machine = _looking(samples)
    assert policy.before_epoch(machine.probe) == 1 and policy.decisions[-1].reason == "others runnable now"
    policy, _ = _looking(_Samples(1), count=2, ceiling=4)  # one busy task leaves 3 of 4 cores
    assert not policy._busy_now()
    policy, _ = _looking(_Samples(None))  # cannot tell: no look
    assert not policy._busy_now()
    samples = _Samples(1)
    policy, machine = _looking(samples, count=1, ceiling=1)
    assert policy.before_epoch(machine.probe) == 1
    assert samples.calls == 0 and len(policy.decisions) == 1  # one thread: nothing to look for


def test_epochs_at_another_count_are_not_compared_with_this_ones():
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002, 2: 0.001}, 2)
    policy.after_epoch(100, 0.11)
    _decided(policy, {1: 0.0016, 2: 0.002}, 1)
    policy.after_epoch(100, 0.24)  # 1.5x its measurement and 2.2x the 2-thread steps: its own usual
    policy.after_epoch(100, 0.25)
    assert not policy._remeasure
    policy.after_epoch(100, 0.34)  # 1.4x the fastest recent 1-thread epoch
    assert policy._remeasure == "slower"


def test_a_slow_drift_of_the_machines_speed_does_not_re_decide_but_a_jump_does():
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002, 2: 0.001}, 2)
    seconds = 0.11
    for _ in range(10):  # 5% slower each epoch: 1.6x in all, under 1.3x over the recent epochs
        policy.after_epoch(100, seconds)
        assert not policy._remeasure
        seconds *= 1.05
    policy.after_epoch(100, seconds * 1.3)
    assert policy._remeasure == "slower"


def test_an_epoch_at_a_count_long_unused_is_compared_with_the_measurement():
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002, 2: 0.001}, 2)
    policy.after_epoch(100, 0.1)
    _decided(policy, {1: 0.002}, 1)
    for _ in range(threads.RECENT_EPOCHS):
        policy.after_epoch(100, 0.2)
    _decided(policy, {1: 0.002, 2: 0.0014}, 2)  # the machine got slower meanwhile
    policy.after_epoch(100, 0.15)  # 1.5x the 2-thread epoch of long ago, 1.07x its measurement
    assert not policy._remeasure


@pytest.mark.skipif(threads.runnable_others() is None, reason="runnable tasks cannot be counted here")
def test_the_look_sees_a_real_busy_process():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning
        # every runnable task competes here, whatever the machine's cores (competing_others would
        # leave a busy process room beside a ceiling of 2 on 4 cores)
        policy = ThreadPolicy(AUTO, ceiling=2, others_now=threads.runnable_others)
        _decided(policy, {1: 0.002, 2: 0.0011}, 2, others=0.0, runnable=0)
        started = time.perf_counter()
        assert policy._busy_now()
        assert time.perf_counter() - started < 0.05  # a few ms, well under a measurement
    finally:
        busy.kill()
        busy.wait()


def test_others_beyond_the_cores_the_ceiling_leaves_them_are_the_competing_ones(monkeypatch):
    # a joblib worker with a ceiling of 2 on 8 cores: six other runnable tasks fit beside it
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    for runnable, competing in ((0, 0), (6, 0), (7, 1), (9, 3)):
        monkeypatch.setattr(threads, "runnable_others", lambda runnable=runnable: runnable)
        assert threads.competing_others(2) == competing
    monkeypatch.setattr(threads, "runnable_others", lambda: None)
    assert threads.competing_others(2) is None


def test_short_epochs_are_not_re_measured_every_epoch_the_measurement_is_amortised():
    # a small network's epoch trains in 0.01 s: a 0.1 s re-measure before each made it 0.11 s
    machine = _FakeMachine({1: 0.00001, 2: 0.00002})  # one thread is the faster: below the ceiling
    policy = _policy_on(machine, lambda: 0)
    counts = [_epoch(policy, machine, steps=1000) for _ in range(60)]  # 0.01 s epochs at 1 thread
    assert set(counts) == {1}
    first = policy.decisions[0].took
    trained = 60 * 1000 * machine.cost[1]
    # measuring before each of them would be 60 decisions: at most one per 5 x its time trained,
    # and it does look again once it has trained that long
    assert 2 <= len(policy.decisions) <= 1 + trained / (5 * first)


def test_busy_cores_beyond_those_the_ceiling_leaves_to_others_do_not_re_measure(monkeypatch):
    # a joblib worker with a ceiling of 2 on 8 cores: the other workers keep 6 cores busy
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    policy = ThreadPolicy(AUTO, ceiling=2)
    _decided(policy, {1: 0.002, 2: 0.0011}, 2, others=6.0, runnable=0)
    policy._trained_since = 10.0  # long enough to measure again, were there a reason
    policy.after_epoch(100, 0.11)
    assert policy._remeasure is None
    policy._meter = _FakeMeter(7.0)  # a seventh busy core: one the worker trains on
    policy.after_epoch(100, 0.11)
    assert policy._remeasure == "others took a core"


def test_checks_below_the_ceiling_that_keep_confirming_the_count_back_off():
    machine = _FakeMachine({1: 0.001, 2: 0.002})  # one thread really is faster
    policy = _policy_on(machine, lambda: 0)
    for _ in range(200):
        _epoch(policy, machine, steps=500)  # 0.5 s epochs, a 0.1 s measurement
    # measuring before every epoch would be 200; each confirming check doubles the wait
    assert len(policy.decisions) < 20
    assert {d.threads for d in policy.decisions} == {1}


def test_right_after_a_measurement_the_look_waits_for_a_little_training():
    # a 0.01 s epoch whose look sees a task that is gone by the measurement would otherwise pay
    # a measurement before every epoch; the bar is what one beside a busy process costs
    policy, machine = _looking(_Samples(1))
    policy._trained_since = 0.0
    assert policy.before_epoch(machine.probe) == 2 and len(policy.decisions) == 1
    policy._trained_since = threads.AMORTIZE * threads.FIRST_SLICES * threads.SLICE_SECONDS
    assert policy.before_epoch(machine.probe) == 1 and policy.decisions[-1].reason == "others runnable now"


def test_the_first_check_after_a_busy_spell_does_not_start_the_back_off():
    # right after a busy process stops, two threads can time slow once: that check keeps one
    # thread, and the next epoch's check must not wait twice as long for it
    machine, runnable = _FakeMachine(dict(BUSY)), [1]
    policy = _policy_on(machine, lambda: runnable[0])
    policy._meter.others = 1.0
    for _ in range(3):
        assert _epoch(policy, machine) == 1  # busy: each measurement times one thread
    runnable[0], policy._meter.others = 0, 0.0
    machine.cost = {1: 0.002, 2: 0.0035}  # quiet, but two threads time slow once
    assert _epoch(policy, machine) == 1
    machine.cost = dict(QUIET)
    assert _epoch(policy, machine) == 2  # measured again before the next epoch, and right
