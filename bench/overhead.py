"""What mlpx costs around the epochs: start-up and teardown, per-epoch tracking, data loading, memory.

    python bench/overhead.py [--repeats 5] [--skip-memory]

1. Framework overhead: wall time of ``python -m mlpx trainer.epochs=1`` minus that run's
   ``epoch_seconds`` (read back from MLflow): imports, plugin loading, Hydra, data, MLflow.
2. Per-epoch tracking: the time of the MLflow tracker's ``on_epoch_end`` (one synchronous batch
   logging to SQLite) against the median epoch time of the default network.
3. Data: loading MNIST in a fresh process once the decoded cache exists.
4. Memory: peak resident memory of the default run (``/usr/bin/time -v``) and of its MLflow
   helper process (read from /proc), and resident memory after each epoch of an in-process run
   (it must not grow).
Medians over ``--repeats``; the machine is shared, so compare ratios, not single numbers.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def framework_overhead(repeats: int, workdir: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}"
    subprocess.run(
        [sys.executable, "-m", "mlpx", "trainer.epochs=1", "data.train_size=100"],
        cwd=workdir,
        capture_output=True,
        check=True,
    )  # creates the store and the cache
    overheads, walls = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "mlpx", "trainer.epochs=1"],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
        run_id = re.search(r"MLflow run (\w+)", completed.stdout).group(1)
        epoch = MlflowClient(uri).get_run(run_id).data.metrics["epoch_seconds"]
        walls.append(wall)
        overheads.append(wall - epoch)
    print(
        f"1. `python -m mlpx trainer.epochs=1`: wall {statistics.median(walls):.2f} s, of which "
        f"framework {statistics.median(overheads):.2f} s (median of {repeats}; target < 4 s)"
    )
    imports = [
        float(
            _python(
                "import time; t = time.perf_counter(); "
                "import mlflow.store.tracking.sqlalchemy_store; "
                "print(time.perf_counter() - t)"
            )
        )
        for _ in range(repeats)
    ]
    print(f"   of which importing MLflow's SQL store: {statistics.median(imports):.2f} s")


def tracking_per_epoch(repeats: int, workdir: Path) -> None:
    from mlpx.builtins.activations import ReLU
    from mlpx.builtins.datasets import Mnist
    from mlpx.builtins.initializers import HeNormal
    from mlpx.builtins.losses import CrossEntropy
    from mlpx.builtins.optimizers import Momentum
    from mlpx.core.model import MLP
    from mlpx.core.trainer import fit
    from mlpx.tracking.tracker import MlflowTracker

    data = Mnist().load()
    model = MLP([784, 300, 75, 10], ReLU(), HeNormal(), np.random.default_rng(0))
    history = fit(
        model,
        CrossEntropy(),
        Momentum(),
        data,
        epochs=repeats,
        batch_size=128,
        rng=np.random.default_rng(0),
        lr_schedule="cosine",
    )
    epoch = statistics.median(m["epoch_seconds"] for m in history.history)
    tracker = MlflowTracker(f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}", "overhead", None)
    tracker.open({"bench": "tracking"}, {}, "tracking overhead")
    costs = []
    for step, metrics in enumerate(history.history * 10, start=1):
        started = time.perf_counter()
        tracker.on_epoch_end(epoch=step, metrics=metrics)
        costs.append(time.perf_counter() - started)
    started = time.perf_counter()
    tracker.close(None)
    flush = time.perf_counter() - started
    per_epoch = statistics.median(costs)
    print(
        f"2. tracking per epoch: {per_epoch * 1e3:.2f} ms against a {epoch:.3f} s epoch = "
        f"{per_epoch / epoch:.2%} (target < 2 %); closing the run {flush:.3f} s"
    )


def data_loading(repeats: int) -> None:
    code = (
        "import time; from mlpx.builtins.datasets import Mnist; t = time.perf_counter(); "
        "Mnist().load(); print(time.perf_counter() - t)"
    )
    _python(code)  # make sure the cache exists
    loads = [float(_python(code)) for _ in range(repeats)]
    print(
        f"3. MNIST load from the cache in a fresh process: {statistics.median(loads):.3f} s "
        f"(median of {repeats}; target < 0.2 s)"
    )


def _helper_peaks_kb() -> Dict[int, int]:
    """VmHWM (peak resident memory) of every running MLflow helper process, by pid."""
    peaks = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"mlpx.tracking.recorder" in (entry / "cmdline").read_bytes():
                status = (entry / "status").read_text()
                peaks[int(entry.name)] = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
        except (OSError, AttributeError):
            continue  # gone meanwhile
    return peaks


def memory(workdir: Path) -> None:
    before = set(_helper_peaks_kb())
    process = subprocess.Popen(
        ["/usr/bin/time", "-v", sys.executable, "-m", "mlpx"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    helper_kb: Dict[int, int] = {}
    while process.poll() is None:  # the helper's peak, read until it exits
        helper_kb.update({pid: kb for pid, kb in _helper_peaks_kb().items() if pid not in before})
        time.sleep(0.05)
    stderr = process.stderr.read()
    main_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    helper = max(helper_kb.values(), default=0)
    print(
        f"4. default run: peak resident memory {main_kb / 1024:.0f} MB (/usr/bin/time -v), MLflow "
        f"helper {helper / 1024:.0f} MB, together at most {(main_kb + helper) / 1024:.0f} MB "
        "(target < 600 MB)"
    )
    code = (
        "import numpy as np\n"
        "from mlpx.builtins.activations import ReLU\nfrom mlpx.builtins.datasets import Mnist\n"
        "from mlpx.builtins.initializers import HeNormal\nfrom mlpx.builtins.losses import CrossEntropy\n"
        "from mlpx.builtins.optimizers import Momentum\nfrom mlpx.core.model import MLP\n"
        "from mlpx.core.trainer import fit\n"
        "page = __import__('os').sysconf('SC_PAGE_SIZE')\n"
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * page / 2**20\n"
        "model = MLP([784, 300, 75, 10], ReLU(), HeNormal(), np.random.default_rng(0))\n"
        "fit(model, CrossEntropy(), Momentum(), Mnist().load(), epochs=8, batch_size=128,\n"
        "    rng=np.random.default_rng(0), on_epoch_end=lambda e, m: print(f'{rss():.1f}'))\n"
    )
    after = [float(v) for v in _python(code).split()]
    print(
        f"   resident memory after epochs 1..8 (MB): {' '.join(f'{v:.0f}' for v in after)}; "
        f"growth from epoch 2 to 8: {after[-1] - after[1]:+.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mlpx-bench-"))
    os.chdir(ROOT)
    try:
        framework_overhead(args.repeats, workdir)
        tracking_per_epoch(args.repeats, workdir)
        data_loading(args.repeats)
        if not args.skip_memory:
            memory(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
