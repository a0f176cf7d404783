"""How long ``examine`` takes, against the naive gradient check it replaces, in the same run.

Contenders: ``examine`` on the seed question's network at full size (784-300-75-10, per-record
training loop, 16 MNIST images) and on its corrected twin, and on 20-16-8-4 networks of the
collection. Baseline: the naive check, one central difference per weight (two forward passes
each) over all 266,000 entries of the seed network; it is timed on a sample of entries and
scaled to all of them (running it whole would take minutes). Medians over ``--repeats`` runs.

    python bench/doctor_speed.py [--repeats 5]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.doctor._examine import BY_NAME  # noqa: E402

SAMPLE_ENTRIES = 300
SMALL = ("functional_l2_correct", "vectorised_correct", "per_record_correct", "layers_correct")


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def naive_seconds(case_name: str) -> float:
    """Seconds for one central difference per entry of every array of the case's network."""
    keywords = BY_NAME[case_name].keywords
    net = keywords["build"]()
    x, y = keywords["data"]
    arrays = {k: v for k, v in vars(net).items() if isinstance(v, np.ndarray)}
    total = sum(a.size for a in arrays.values())
    w = arrays["weights_i_to_h1"]
    rng = np.random.default_rng(0)
    entries = [tuple(int(rng.integers(0, d)) for d in w.shape) for _ in range(SAMPLE_ENTRIES)]

    def loss() -> float:
        p = np.concatenate([keywords["forward"](net, x[i : i + 1]) for i in range(len(x))])
        return float(-(y * np.log(np.clip(p, 1e-300, 1))).sum(axis=1).mean())

    start = time.perf_counter()
    for index in entries:
        saved = w[index]
        w[index] = saved + 1e-6
        up = loss()
        w[index] = saved - 1e-6
        down = loss()
        w[index] = saved
        del up, down
    return (time.perf_counter() - start) / SAMPLE_ENTRIES * total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from mlpx.doctor import examine

    rows = []
    for name in ("seed_question", "seed_fixed", *SMALL):
        if name not in BY_NAME:
            continue
        keywords = BY_NAME[name].keywords
        rows.append((name, median_seconds(lambda k=keywords: examine(**k), args.repeats)))
    baseline = naive_seconds("seed_question")
    width = max(len(name) for name, _ in rows)
    print(f"{'contender':{width}}  median s  vs naive per-entry check of the seed network")
    for name, seconds in rows:
        ratio = f"{baseline / seconds:8.0f}x faster" if name.startswith("seed") else "(20-16-8-4)"
        print(f"{name:{width}}  {seconds:8.3f}  {ratio}")
    print(f"{'naive (estimated)':{width}}  {baseline:8.1f}  (one central difference per entry)")


if __name__ == "__main__":
    main()
