"""What logging the MLflow model costs a run: ``tracking.log_model=true`` against ``false``.

    python bench/model_cost.py [--repeats 5] [--epochs 1]

Runs ``python -m mlpx trainer.epochs=N`` with the model logged and without, interleaved (the
order alternates every round), each in a fresh folder with a migrated store, and prints the
median wall time of each, the median of the paired differences (the model's cost on the run's
wall time; the goal is < 0.5 s) and their ratio. The machine is shared: read the paired
difference, not single times.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(workdir: Path, log_model: bool, epochs: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    args = [
        sys.executable,
        "-m",
        "mlpx",
        f"trainer.epochs={epochs}",
        f"tracking.log_model={str(log_model).lower()}",
    ]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    options = parser.parse_args()
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as scratch:
        template = Path(scratch) / "template.db"
        MlflowClient(f"sqlite:///{template}").search_experiments()  # migrate once, copy per run
        times = {True: [], False: []}
        for round_index in range(options.repeats + 1):  # round 0 warms the caches, not counted
            for log_model in (True, False) if round_index % 2 else (False, True):
                workdir = Path(scratch) / f"r{round_index}-{log_model}"
                (workdir / "outputs").mkdir(parents=True)
                shutil.copy(template, workdir / "outputs" / "mlflow.db")
                seconds = _run(workdir, log_model, options.epochs)
                if round_index:
                    times[log_model].append(seconds)
    with_model, without = statistics.median(times[True]), statistics.median(times[False])
    paired = statistics.median(a - b for a, b in zip(times[True], times[False]))
    print(f"python -m mlpx trainer.epochs={options.epochs}, median of {options.repeats} interleaved pairs:")
    print(f"  tracking.log_model=true  {with_model:6.2f} s")
    print(f"  tracking.log_model=false {without:6.2f} s   (baseline)")
    print(
        f"  the model's cost: {paired:+.2f} s per run (median paired difference; goal < 0.5 s), "
        f"ratio {with_model / without:.2f}"
    )


if __name__ == "__main__":
    main()
