"""One ``trainer.blas_threads=auto`` policy through quiet, busy and quiet epochs: what it decides.

    python bench/policy_trace.py [--quiet 2] [--busy 3] [--after 4] [--batch-size 128]

Trains the default network one epoch at a time with a single ``ThreadPolicy`` (as one long run
does), starting a real CPU-bound process (``python -c "while True: pass"``) for the busy epochs
and killing it after them. Prints each epoch's time, thread count and the cores other processes
kept busy, then every measurement the policy made: why, the other runnable tasks it saw, and
the seconds per step at each count it timed. A policy that follows the machine trains the first
busy epoch at 1 thread and the first quiet one after it at 2 (on 2 cores). "others" of about 1
in a quiet epoch is some other process on the machine: that epoch says nothing about the policy.
"""

import argparse
import subprocess
import sys
import time

import numpy as np

from mlpx.builtins.activations import ReLU
from mlpx.builtins.datasets import Mnist
from mlpx.builtins.initializers import HeNormal
from mlpx.builtins.losses import CrossEntropy
from mlpx.builtins.optimizers import Momentum
from mlpx.core.model import MLP
from mlpx.core.threads import ThreadPolicy
from mlpx.core.trainer import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet", type=int, default=2, help="quiet epochs first")
    parser.add_argument("--busy", type=int, default=3, help="then epochs beside a busy process")
    parser.add_argument("--after", type=int, default=4, help="then quiet epochs again")
    parser.add_argument("--batch-size", type=int, default=128)
    options = parser.parse_args()
    data = Mnist().load()
    rng = np.random.default_rng(0)
    model = MLP([784, 300, 75, 10], ReLU(), HeNormal(), rng, dtype=np.float32)
    optimizer, policy = Momentum(lr=0.01, momentum=0.9), ThreadPolicy()
    plan = ["quiet"] * options.quiet + ["busy"] * options.busy + ["quiet"] * options.after
    busy = None
    try:
        for epoch, condition in enumerate(plan, start=1):
            if condition == "busy" and busy is None:
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(0.5)
            if condition == "quiet" and busy is not None:
                busy.kill()
                busy.wait()
                busy = None
                time.sleep(0.5)
            fitted = fit(
                model, CrossEntropy(), optimizer, data, epochs=1, batch_size=options.batch_size,
                rng=rng, health=False, blas_threads=policy,
            )  # fmt: skip
            last = fitted.history[-1]
            others = policy.others_per_epoch[-1] if policy.others_per_epoch else None
            threads = int(last["blas_threads"])
            kept = others if others is None else round(others, 2)
            print(
                f"epoch {epoch} {condition:<5} {last['epoch_seconds']:.3f} s  threads {threads}"
                f"  others {kept}  measurements {len(policy.decisions)}",
                flush=True,
            )
    finally:
        if busy is not None:
            busy.kill()
    for decision in policy.decisions:
        per_step = ", ".join(f"{n}: {s * 1e3:.2f} ms" for n, s in sorted(decision.seconds_per_call.items()))
        print(
            f"measured ({decision.reason}; others runnable {decision.runnable}) {per_step}"
            f" -> {decision.threads} threads ({decision.took:.3f} s)"
        )


if __name__ == "__main__":
    main()
