"""Speed-up of an 8-job sweep on Hydra's joblib launcher against the same sweep run sequentially.

    python bench/sweep_speedup.py [--epochs 3] [--repeats 1]

Both sweeps train the default network on real MNIST with eight learning rates, into a fresh
MLflow store each. The sequential baseline is Hydra's basic launcher (one job at a time, BLAS
on every core); the parallel run uses ``hydra/launcher=joblib``, whose workers get
cores // n_jobs BLAS threads each, so jobs x threads = cores. Prints both wall times (median
over ``--repeats``) and the ratio.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEARNING_RATES = "0.01,0.02,0.03,0.05,0.07,0.1,0.15,0.2"


def sweep_seconds(launcher_args: list, epochs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="mlpx-sweep-bench-") as workdir:
        args = [
            sys.executable,
            "-m",
            "mlpx",
            "-m",
            *launcher_args,
            f"optimizer.lr={LEARNING_RATES}",
            f"trainer.epochs={epochs}",
        ]
        started = time.perf_counter()
        subprocess.run(args, cwd=workdir, check=True, capture_output=True)
        elapsed = time.perf_counter() - started
        assert (Path(workdir) / "outputs" / "mlflow.db").is_file()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    sequential, parallel = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine
        sequential.append(sweep_seconds([], args.epochs))
        parallel.append(sweep_seconds(["hydra/launcher=joblib"], args.epochs))
    seq, par = statistics.median(sequential), statistics.median(parallel)
    print(
        f"8 jobs x {args.epochs} epochs: sequential (basic launcher) {seq:.1f} s, "
        f"parallel (joblib) {par:.1f} s -> speed-up x{seq / par:.2f}"
    )


if __name__ == "__main__":
    main()
