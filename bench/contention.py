"""Epoch time quiet and beside a busy process: mlpx's thread policy against fixed counts and PyTorch.

The seed network (784-300-75-10, ReLU, softmax cross-entropy), float32, momentum (the default
optimizer), one epoch over the 55,000 MNIST training images, without health metrics. Contenders:

- ``mlpx auto``: ``trainer.blas_threads=auto``, a fresh policy for every block of rounds (a run
  started in that condition; its first epoch pays for the measurement);
- ``mlpx auto, one run``: one policy throughout, so it lives through every change between quiet
  and busy (its re-decisions between epochs are what this shows);
- ``mlpx 1 thread``, ``mlpx N threads`` (N = the cores this process may use): fixed counts;
- ``pytorch``, ``pytorch 1 thread``: ``nn.Sequential`` + ``optim.SGD(momentum=0.9)``, the CPU
  build, when installed (``pip install torch==2.13.0``).

The busy process is a real CPU-bound one, ``python -c "while True: pass"``, started before each
busy block and killed after it (``--pin`` pins it to the last core this process may use; by
default the kernel places it). Quiet and busy blocks alternate, ``--blocks`` times; within a
block every contender trains one epoch per round, in turn, each round starting one contender
later, ``--rounds`` rounds. The first quiet round is a warm-up and is dropped. Prints each
contender's median epoch per condition and its ratio to the baseline, ``mlpx 1 thread`` quiet,
measured in the same run, then the issue's goals: auto beside a busy process <= 1.2x the
baseline, auto quiet <= 0.8x it.

    python bench/contention.py [--batch-size 128] [--rounds 3] [--blocks 2] [--pin]
"""

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from mlpx.builtins.activations import ReLU
from mlpx.builtins.datasets import Mnist
from mlpx.builtins.initializers import HeNormal
from mlpx.builtins.losses import CrossEntropy
from mlpx.builtins.optimizers import Momentum
from mlpx.core.model import MLP
from mlpx.core.threads import AUTO, OthersMeter, ThreadPolicy, usable_cores
from mlpx.core.trainer import fit

SIZES = [784, 300, 75, 10]
LR, MOMENTUM = 0.05, 0.9
BASELINE = "mlpx 1 thread"
CONDITIONS = ("quiet", "busy")


class MlpxContender:
    """mlpx's trainer, one epoch per call, on a model that keeps training across calls."""

    def __init__(self, data, batch_size: int, threads, fresh_policy_per_block: bool = False) -> None:
        self.data, self.batch_size, self.threads = data, batch_size, threads
        self.fresh = fresh_policy_per_block
        self.model = MLP(SIZES, ReLU(), HeNormal(), np.random.default_rng(0))
        self.loss, self.optimizer = CrossEntropy(), Momentum(lr=LR, momentum=MOMENTUM)
        self.policy: Optional[ThreadPolicy] = ThreadPolicy(AUTO) if threads == AUTO else None
        self.counts: Dict[str, List[int]] = {condition: [] for condition in CONDITIONS}
        self._old_decisions: list = []

    def new_block(self) -> None:
        if self.fresh:
            if self.policy is not None:
                self._old_decisions.extend(self.policy.decisions)
            self.policy = ThreadPolicy(AUTO)

    def policies_decisions(self) -> list:
        """Every measurement its policies made."""
        return self._old_decisions + (self.policy.decisions if self.policy is not None else [])

    def epoch(self, seed: int, condition: str) -> None:
        result = fit(
            self.model,
            self.loss,
            self.optimizer,
            self.data,
            epochs=1,
            batch_size=self.batch_size,
            rng=np.random.default_rng(seed),
            blas_threads=self.policy if self.policy is not None else self.threads,
        )
        self.counts[condition].append(int(result.history[0]["blas_threads"]))


class TorchContender:
    """PyTorch's CPU build at a fixed thread count (None: its default)."""

    def __init__(self, data, batch_size: int, threads: Optional[int]) -> None:
        import torch

        self.torch, self.batch_size = torch, batch_size
        self.threads = threads or torch.get_num_threads()
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(784, 300),
            torch.nn.ReLU(),
            torch.nn.Linear(300, 75),
            torch.nn.ReLU(),
            torch.nn.Linear(75, 10),
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.x, self.y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)

    def new_block(self) -> None:
        pass

    def epoch(self, seed: int, condition: str) -> None:
        torch = self.torch
        torch.set_num_threads(self.threads)  # process-wide: set before each of its epochs
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(self.x)))
        for start in range(0, len(self.x), self.batch_size):
            idx = order[start : start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            self.loss_fn(self.model(self.x[idx]), self.y[idx]).backward()
            self.optimizer.step()


def start_busy(pin: bool) -> subprocess.Popen:
    """A CPU-bound Python process, optionally pinned to the last usable core."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    if pin:
        os.sched_setaffinity(busy.pid, {max(os.sched_getaffinity(0))})
    time.sleep(0.3)  # running, and placed by the scheduler, before the first timed epoch
    return busy


def make_contenders(data, batch_size: int) -> Dict[str, object]:
    cores = usable_cores()
    contenders: Dict[str, object] = {
        "mlpx auto": MlpxContender(data, batch_size, AUTO, fresh_policy_per_block=True),
        "mlpx auto, one run": MlpxContender(data, batch_size, AUTO),
        BASELINE: MlpxContender(data, batch_size, 1),
    }
    if cores > 1:
        contenders[f"mlpx {cores} threads"] = MlpxContender(data, batch_size, cores)
    try:
        contenders["pytorch"] = TorchContender(data, batch_size, None)
        contenders["pytorch 1 thread"] = TorchContender(data, batch_size, 1)
    except ImportError:
        print("  (pytorch not installed: skipped)")
    return contenders


def run_block(contenders, condition: str, rounds: int, seed: int, times, warm_up: bool, others) -> int:
    """``rounds`` rounds of one epoch per contender; appends to ``times`` and, to ``others``,
    the cores other processes (the busy one included) kept busy meanwhile."""
    names = list(contenders)
    for contender in contenders.values():
        contender.new_block()
    meter = OthersMeter()
    meter.start()
    for round_index in range(rounds + warm_up):
        shift = (seed + round_index) % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            contenders[name].epoch(seed + round_index, condition)
            if not (warm_up and round_index == 0):
                times[name][condition].append(time.perf_counter() - started)
    others[condition].append(meter.cores())
    return seed + rounds + warm_up


def report(times: Dict[str, Dict[str, List[float]]], contenders, pin: bool, others) -> None:
    base = statistics.median(times[BASELINE]["quiet"])
    busy_kind = "pinned to the last core" if pin else "placed by the kernel"
    print(f"\nbaseline {BASELINE}, quiet: {base:.3f} s; busy = one CPU-bound process {busy_kind}")
    for condition in CONDITIONS:
        shares = ", ".join("?" if share is None else f"{share:.2f}" for share in others[condition])
        print(f"  cores other processes kept busy, {condition} blocks: {shares}")
    header = f"{'quiet':>8} {'x base':>7} {'busy':>8} {'x base':>7}  busy/quiet  threads used"
    print(f"  {'contender':<20} {header}")
    for name, by_condition in times.items():
        quiet, busy = (statistics.median(by_condition[c]) for c in CONDITIONS)
        counts = getattr(contenders[name], "counts", None)
        used = ""
        if counts:
            used = "  ".join(f"{c}: {_count_summary(counts[c])}" for c in CONDITIONS)
        print(
            f"  {name:<20} {quiet:7.3f}s {quiet / base:6.2f}x {busy:7.3f}s {busy / base:6.2f}x"
            f"  {busy / quiet:9.2f}x  {used}"
        )
    auto_quiet, auto_busy = (statistics.median(times["mlpx auto"][c]) for c in CONDITIONS)
    print(
        f"\ngoals: auto busy {auto_busy / base:.2f}x baseline (<= 1.2: "
        f"{'met' if auto_busy <= 1.2 * base else 'NOT met'}), auto quiet {auto_quiet / base:.2f}x "
        f"(<= 0.8: {'met' if auto_quiet <= 0.8 * base else 'NOT met'})"
    )
    took = [d.took for c in ("mlpx auto", "mlpx auto, one run") for d in contenders[c].policies_decisions()]
    if took:
        print(
            f"  auto's {len(took)} measurements took {statistics.median(took):.3f} s (median), "
            f"{max(took):.3f} s max"
        )
    for name in ("pytorch", "pytorch 1 thread"):
        if name in times:
            torch_busy = statistics.median(times[name]["busy"])
            print(f"  auto beside a busy process vs {name} beside it: x{torch_busy / auto_busy:.2f} faster")


def _count_summary(counts: List[int]) -> str:
    return ",".join(f"{n}x{c}" for c, n in sorted({c: counts.count(c) for c in set(counts)}.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every contender per block")
    parser.add_argument("--blocks", type=int, default=2, help="quiet + busy block pairs")
    parser.add_argument("--pin", action="store_true", help="pin the busy process to the last core")
    args = parser.parse_args()

    full = Mnist().load()
    data = dataclasses.replace(full, x_val=full.x_val[:1000], y_val=full.y_val[:1000])  # mostly training
    contenders = make_contenders(data, args.batch_size)
    print(
        f"{len(data.x_train)} images per epoch, batch {args.batch_size}, {usable_cores()} usable cores; "
        f"{args.blocks} x (quiet, busy) blocks of {args.rounds} rounds"
    )
    times = {name: {c: [] for c in CONDITIONS} for name in contenders}
    others: Dict[str, List[Optional[float]]] = {c: [] for c in CONDITIONS}
    seed = 0
    for block in range(args.blocks):
        seed = run_block(contenders, "quiet", args.rounds, seed, times, block == 0, others)
        busy = start_busy(args.pin)
        try:
            seed = run_block(contenders, "busy", args.rounds, seed, times, False, others)
        finally:
            busy.kill()
            busy.wait()
        time.sleep(0.3)
    report(times, contenders, args.pin, others)


if __name__ == "__main__":
    main()
