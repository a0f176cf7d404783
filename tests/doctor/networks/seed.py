"""The seed question's class and its corrected twin (from the example plugin), at full size on 16
real MNIST images and at 20-16-8-4 on the doctor's own synthetic task."""

import importlib.util
from pathlib import Path

from tests.doctor.networks import Bug, Case

_PLUGIN = Path(__file__).resolve().parents[3] / "plugins" / "seed_network.py"
_DRAFT = Path(__file__).resolve().parent / "seed_plugin_draft.py"


def _load():
    path = _PLUGIN if _PLUGIN.exists() else _DRAFT
    spec = importlib.util.spec_from_file_location("mlpx_seed_network_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


seed_network = _load()

WEIGHTS = ("weights_i_to_h1", "weights_h1_to_h2", "weights_h2_to_o")
BIASES = ("bias_i_to_h1", "bias_h1_to_h2", "bias_h2_to_o")


def seed_bugs():
    return [
        # error.dot(dsoftmax(p)) = J (y - p): the gradient of 0.5 |p - y|^2 through softmax, not
        # cross-entropy's (p - y). Every weight matrix gets it (and the biases start from it too,
        # but their own bugs below dominate them).
        Bug("gradient", "mse-gradient-through-softmax-with-ce-loss", WEIGHTS),
        # np.sum(v, axis=0) of a 1-D error term is a scalar: every entry of the bias moves by the same
        # amount (the sum over units); checked numerically: each bias step is a constant vector.
        Bug("gradient", "bias-grad-collapsed-to-scalar", BIASES),
        # `delta_bias = ...` (not +=) inside the record loop: only the last record counts, then / n.
        Bug("gradient", "bias-grad-overwritten", BIASES),
        # the output bias never moves: its scalar is sum_i (J (y - p))_i = 0 since every row of the
        # softmax Jacobian diag(p) - p p^T sums to zero (verified: step ~1e-18). Its gradient is
        # mean(p - y), not zero.
        Bug("gradient", "bias-grad-collapsed-to-scalar", ("bias_h2_to_o",)),
        # printed loss: each record's CE times 1/len(pred), len of a 1-D prediction = C = 10
        Bug("loss", "loss-divided-by-num-classes"),
        # run() on a batch: softmax's np.max / np.sum over the whole (n, C) array, so rows do not sum
        # to one and depend on each other
        Bug("forward", "softmax-wrong-for-batch"),
    ]


SMALL = (20, 16, 8, 4)

CASES = [
    Case(
        "seed_question",
        "per-record",
        seed_network.seed_keywords(seed_network.NeuralNetwork),
        seed_bugs(),
        note="784-300-75-10 on 16 MNIST images",
    ),
    Case(
        "seed_fixed",
        "per-record",
        seed_network.seed_keywords(seed_network.NeuralNetworkFixed),
        note="784-300-75-10 on 16 MNIST images",
    ),
    Case(
        "seed_question_small",
        "per-record",
        seed_network.seed_keywords(seed_network.NeuralNetwork, sizes=SMALL, data=False),
        seed_bugs(),
    ),
    Case(
        "seed_fixed_small",
        "per-record",
        seed_network.seed_keywords(seed_network.NeuralNetworkFixed, sizes=SMALL, data=False),
    ),
]
