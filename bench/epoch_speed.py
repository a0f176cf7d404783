"""Epoch time of mlpx's trainer against a plain NumPy loop, PyTorch and JAX, on the same data.

The seed network (784-300-75-10, ReLU, softmax cross-entropy), float32, plain SGD, one epoch
over the 55,000 MNIST training images. Contenders:

- ``mlpx``: the trainer's ``fit`` with its hooks (validation on 1,000 images, no health metrics)
  and its default ``blas_threads=auto``, one policy across the epochs as in a run (measured at
  the first, re-decided between epochs): the built-in plugins train through the compiled step
  (``mlpx.core.compiled``); ``mlpx numpy``: the same on the NumPy path (``compiled=False``), as
  any other plugin trains; ``mlpx unfused``: the NumPy path without the optimizer step fused
  into the weight-gradient GEMM;
- ``plain numpy``: the straightforward vectorised loop a careful NumPy user writes first;
- ``pytorch``: ``nn.Sequential`` + ``optim.SGD``, the CPU build;
- ``jax``: a jitted step called from a Python loop; ``jax scan``: the whole epoch compiled into
  one ``lax.scan``, JAX's best case;
- ``numpy floor``: just the minibatch gather and the network's matrix products through NumPy's
  BLAS, the floor for any NumPy implementation here (no softmax, activation, bias or update).

They run interleaved (one epoch each, in turn, ``--repeats`` times, each round starting one
contender later) so a noisy neighbour hurts all of them alike; the first round is a warm-up and
is dropped. Prints medians, ratios against the baseline (PyTorch when installed, else the plain
NumPy loop) and the fraction of this machine's measured float32 GEMM peak. The goals' ratios
(mlpx against the plain loop, the floor and PyTorch) are paired: the median over rounds of each
round's ratio, whose two epochs ran seconds apart, so the machine's slow drift in speed (up to
1.5x over tens of seconds here) cancels; the ratio of the medians is printed beside it.

    python bench/epoch_speed.py [--batch-sizes 32 128 1024] [--repeats 7]

PyTorch and JAX are optional: `pip install torch==2.13.0` (the CPU build on this machine) and
`pip install jax`; they are never runtime dependencies of mlpx.
"""

import argparse
import statistics
import time
from typing import Callable, Dict, List

import numpy as np

from mlpx.builtins.activations import ReLU
from mlpx.builtins.datasets import Mnist
from mlpx.builtins.initializers import HeNormal
from mlpx.builtins.losses import CrossEntropy
from mlpx.builtins.optimizers import SGD
from mlpx.core.model import MLP
from mlpx.core.threads import AUTO, ThreadPolicy
from mlpx.core.trainer import fit
from mlpx.plugins.manager import load_plugins

SIZES = [784, 300, 75, 10]
LR = 0.01


def epoch_gflop(n_samples: int) -> float:
    """Forward, weight gradients of every layer, input gradients of all but the first layer."""
    products = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    backward_inputs = sum(a * b for a, b in zip(SIZES[1:-1], SIZES[2:]))
    return 2 * n_samples * (2 * products + backward_inputs) / 1e9


def gemm_peak_gflops(repeats: int) -> float:
    """Float32 GEMM rate of this machine's BLAS on a large product shaped like the first layer's:
    the median of ``repeats`` after two warm-up products (the best one swings with the host's
    turbo and neighbours, the first pays for starting BLAS's threads)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 784), dtype=np.float32)
    b = rng.standard_normal((784, 2048), dtype=np.float32)
    out = np.empty((2048, 2048), np.float32)
    seconds = []
    for repeat in range(repeats + 2):
        started = time.perf_counter()
        np.matmul(a, b, out=out)
        if repeat >= 2:
            seconds.append(time.perf_counter() - started)
    return 2 * 2048 * 784 * 2048 / statistics.median(seconds) / 1e9


def mlpx_contender(
    x, y, batch_size, fused_updates: bool = True, compiled: bool = True
) -> Callable[[int], None]:
    host = load_plugins(plugins_dirs=[])
    model = MLP(SIZES, ReLU(), HeNormal(), np.random.default_rng(0))
    loss, optimizer = CrossEntropy(), SGD(lr=LR)

    class _Data:  # the trainer needs only these fields
        x_train, y_train, x_val, y_val, n_classes = x, y, x[:1000], y[:1000], 10

    policy = ThreadPolicy(AUTO)

    def epoch(seed: int) -> None:
        result = fit(
            model,
            loss,
            optimizer,
            _Data,
            epochs=1,
            batch_size=batch_size,
            rng=np.random.default_rng(seed),
            fused_updates=fused_updates,
            compiled=compiled,
            blas_threads=policy,
            on_epoch_end=lambda e, m: host.pm.hook.on_epoch_end(run=None, epoch=e, metrics=m),
        )
        epoch.threads.append(int(result.history[0]["blas_threads"]))

    epoch.threads = []
    return epoch


def plain_numpy_contender(x, y, batch_size) -> Callable[[int], None]:
    """A straightforward vectorised loop: what a careful NumPy user writes first."""
    rng = np.random.default_rng(0)
    weights = [
        (rng.standard_normal((i, o)) * np.sqrt(2 / i)).astype(np.float32)
        for i, o in zip(SIZES[:-1], SIZES[1:])
    ]
    biases = [np.zeros(o, np.float32) for o in SIZES[1:]]
    onehot = np.eye(10, dtype=np.float32)[y]

    def epoch(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(x))
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            xb, yb = x[idx], onehot[idx]
            z1 = xb @ weights[0] + biases[0]
            a1 = np.maximum(z1, 0)
            z2 = a1 @ weights[1] + biases[1]
            a2 = np.maximum(z2, 0)
            z3 = a2 @ weights[2] + biases[2]
            p = np.exp(z3 - z3.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            d3 = (p - yb) / len(xb)
            d2 = (d3 @ weights[2].T) * (z2 > 0)
            d1 = (d2 @ weights[1].T) * (z1 > 0)
            for w, b, d, a in (
                (weights[2], biases[2], d3, a2),
                (weights[1], biases[1], d2, a1),
                (weights[0], biases[0], d1, xb),
            ):
                w -= LR * (a.T @ d)
                b -= LR * d.sum(axis=0)

    return epoch


def torch_contender(x, y, batch_size) -> Callable[[int], None]:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 300),
        torch.nn.ReLU(),
        torch.nn.Linear(300, 75),
        torch.nn.ReLU(),
        torch.nn.Linear(75, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def epoch(seed: int) -> None:
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()

    return epoch


def _jax_init(seed: int = 0):
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(seed)
    params = []
    for i, o in zip(SIZES[:-1], SIZES[1:]):
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (i, o), jnp.float32) * np.sqrt(2 / i), jnp.zeros(o)))
    return params


def _jax_sgd_step():
    """One jitted SGD step of the seed network on a batch (x rows, integer labels)."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params, xb, yb):
        a = xb
        for w, b in params[:-1]:
            a = jax.nn.relu(a @ w + b)
        logits = a @ params[-1][0] + params[-1][1]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], axis=1))

    def step(params, xb, yb):
        grads = jax.grad(loss_fn)(params, xb, yb)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)

    return step


def jax_contender(x, y, batch_size) -> Callable[[int], None]:
    """JAX as most people write it: a jitted step called from a Python loop."""
    import jax
    import jax.numpy as jnp

    sgd_step = _jax_sgd_step()
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    @jax.jit
    def step(params, idx):  # the gather compiled into the step too
        return sgd_step(params, xj[idx], yj[idx])

    state = {"params": _jax_init()}

    def epoch(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(x))
        p = state["params"]
        for start in range(0, len(x), batch_size):
            p = step(p, order[start : start + batch_size])
        jax.block_until_ready(p)
        state["params"] = p

    return epoch


def jax_scan_contender(x, y, batch_size) -> Callable[[int], None]:
    """JAX at its best: the epoch's full batches compiled into one ``lax.scan``, gathers included;
    the last partial batch (if any) is one more jitted step."""
    import jax
    import jax.numpy as jnp

    step = _jax_sgd_step()
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    n_full = len(x) // batch_size

    @jax.jit
    def full_batches(params, batches):  # batches: (n_full, batch_size) row indices
        def body(p, idx):
            return step(p, xj[idx], yj[idx]), None

        return jax.lax.scan(body, params, batches)[0]

    @jax.jit
    def tail_step(params, idx):
        return step(params, xj[idx], yj[idx])

    state = {"params": _jax_init()}

    def epoch(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(x))
        batches = order[: n_full * batch_size].reshape(n_full, batch_size)
        p = full_batches(state["params"], jnp.asarray(batches))
        if n_full * batch_size < len(x):
            p = tail_step(p, order[n_full * batch_size :])
        state["params"] = jax.block_until_ready(p)

    return epoch


def numpy_floor_contender(x, y, batch_size) -> Callable[[int], None]:
    """Only the minibatch gather and the network's matrix products, through NumPy's BLAS into
    preallocated buffers: what any NumPy implementation spends before its first elementwise
    operation (no softmax, activation, bias or update)."""
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((i, o), dtype=np.float32) * 0.05 for i, o in zip(SIZES[:-1], SIZES[1:])]
    gradients = [np.empty_like(w) for w in weights]
    buffers: Dict[int, tuple] = {}

    def epoch(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(x))
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) not in buffers:
                buffers[len(idx)] = (
                    np.empty((len(idx), SIZES[0]), np.float32),
                    [np.empty((len(idx), o), np.float32) for o in SIZES[1:]],
                    [np.empty((len(idx), i), np.float32) for i in SIZES[1:-1]],
                )
            xb, outs, grad_inputs = buffers[len(idx)]
            np.take(x, idx, axis=0, out=xb, mode="wrap")
            a = xb
            for w, out in zip(weights, outs):
                a = np.matmul(a, w, out=out)
            inputs = [xb, *outs[:-1]]
            for layer in range(len(weights) - 1, -1, -1):
                np.matmul(inputs[layer].T, outs[layer], out=gradients[layer])
                if layer:
                    np.matmul(outs[layer], weights[layer].T, out=grad_inputs[layer - 1])

    return epoch


def paired_ratio(numerators: List[float], denominators: List[float]) -> float:
    """The median over rounds of one round's ratio: both epochs of a round ran seconds apart."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    data = Mnist().load()
    x, y = data.x_train, data.y_train
    gflop = epoch_gflop(len(x))
    print(f"{len(x)} images per epoch, {gflop:.1f} GFLOP")
    for batch_size in args.batch_sizes:
        makers = {
            "mlpx": mlpx_contender,
            "mlpx numpy": lambda x, y, b: mlpx_contender(x, y, b, compiled=False),
            "mlpx unfused": lambda x, y, b: mlpx_contender(x, y, b, fused_updates=False),
            "plain numpy": plain_numpy_contender,
            "pytorch": torch_contender,
            "jax": jax_contender,
            "jax scan": jax_scan_contender,
            "numpy floor": numpy_floor_contender,
        }
        contenders: Dict[str, Callable[[int], None]] = {}
        for name, make in makers.items():
            try:
                contenders[name] = make(x, y, batch_size)
            except ImportError:
                print(f"  ({name} not installed: skipped)")
        times: Dict[str, List[float]] = {name: [] for name in contenders}
        peaks: List[float] = []  # measured every round: the host's speed drifts
        names = list(contenders)
        for repeat in range(args.repeats + 1):
            # each round starts one contender later, so none always runs in another's wake
            # (PyTorch's and XLA's worker threads spin for a while after their work)
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                epoch = contenders[name]
                started = time.perf_counter()
                epoch(repeat)
                if repeat:  # the first round warms caches, JIT and thread pools
                    times[name].append(time.perf_counter() - started)
            peaks.append(gemm_peak_gflops(repeats=5))
        peak = statistics.median(peaks)
        baseline = "pytorch" if "pytorch" in times else "plain numpy"
        base = statistics.median(times[baseline])
        print(
            f"\nbatch {batch_size}: median of {args.repeats} epochs, baseline {baseline}; float32 GEMM "
            f"peak {peak:.0f} GFLOP/s (median of every round's), so {gflop / peak:.3f} s at best"
        )
        for name, values in times.items():
            median = statistics.median(values)
            used = getattr(contenders[name], "threads", None)
            print(
                f"  {name:<12} {median:6.3f} s   x{base / median:4.2f} vs {baseline}   "
                f"{gflop / median / peak:5.1%} of GEMM peak   (min {min(values):.3f}, max {max(values):.3f})"
                + (f"   threads {','.join(map(str, used[1:]))}" if used else "")
            )
        goals = [("plain numpy", "<= 1"), ("numpy floor", "<= 1.15"), ("pytorch", "< 1")]
        print(
            "  paired (median of the rounds' ratios; ratio of the medians in brackets): "
            + ", ".join(
                f"mlpx / {name} {paired_ratio(times['mlpx'], times[name]):.2f} "
                f"[{statistics.median(times['mlpx']) / statistics.median(times[name]):.2f}] (goal {goal})"
                for name, goal in goals
                if name in times
            )
        )


if __name__ == "__main__":
    main()
