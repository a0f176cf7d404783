"""Rashid's "Make Your Own Neural Network" notebook as readers retype it: ``neuralNetwork`` with
``wih`` / ``who`` drawn from ``numpy.random.normal(0.0, pow(n, -0.5), ...)``, no biases, sigmoid
everywhere (``scipy.special.expit`` in the book; a NumPy lambda here), ``train(inputs_list,
targets_list)`` on one record as column vectors, ``query``. Pixels become
``asfarray / 255.0 * 0.99 + 0.01``; targets ``0.01`` with ``0.99`` at the label.

The step ``who += lr * (E * O * (1 - O)) . H^T`` is plain gradient descent on ``0.5 * sum (t - o)^2``
for one record, hence mse with scale 0.5. The book's ``hidden_errors = who.T . output_errors``
leaves out ``O * (1 - O)``; the correct class here back-propagates the output delta.
"""

import numpy as np

from tests.doctor.networks import Bug, Case

INPUT_NODES, HIDDEN_NODES, OUTPUT_NODES = 16, 12, 4
D_IN, N_OUT = INPUT_NODES, OUTPUT_NODES
LEARNING_RATE = 0.2


class neuralNetwork:
    def __init__(self, inputnodes, hiddennodes, outputnodes, learningrate):
        self.inodes = inputnodes
        self.hnodes = hiddennodes
        self.onodes = outputnodes
        rng = np.random.RandomState(42)
        self.wih = rng.normal(0.0, pow(self.inodes, -0.5), (self.hnodes, self.inodes))
        self.who = rng.normal(0.0, pow(self.hnodes, -0.5), (self.onodes, self.hnodes))
        self.lr = learningrate
        self.activation_function = lambda x: 1.0 / (1.0 + np.exp(-x))

    def errors(self, targets, final_outputs):
        return targets - final_outputs

    def back_errors(self, output_errors, final_outputs):
        return np.dot(self.who.T, output_errors * final_outputs * (1.0 - final_outputs))

    def train(self, inputs_list, targets_list):
        inputs = np.array(inputs_list, ndmin=2).T
        targets = np.array(targets_list, ndmin=2).T
        hidden_inputs = np.dot(self.wih, inputs)
        hidden_outputs = self.activation_function(hidden_inputs)
        final_inputs = np.dot(self.who, hidden_outputs)
        final_outputs = self.activation_function(final_inputs)
        output_errors = self.errors(targets, final_outputs)
        hidden_errors = self.back_errors(output_errors, final_outputs)
        self.who += self.lr * np.dot(
            (output_errors * final_outputs * (1.0 - final_outputs)), np.transpose(hidden_outputs)
        )
        self.wih += self.lr * np.dot(
            (hidden_errors * hidden_outputs * (1.0 - hidden_outputs)), np.transpose(inputs)
        )

    def query(self, inputs_list):
        inputs = np.array(inputs_list, ndmin=2).T
        hidden_outputs = self.activation_function(np.dot(self.wih, inputs))
        final_outputs = self.activation_function(np.dot(self.who, hidden_outputs))
        return final_outputs


class AsPrinted(neuralNetwork):
    def back_errors(self, output_errors, final_outputs):
        return np.dot(self.who.T, output_errors)  # the book's line: the errors split by the weights


class ErrorsOutputMinusTarget(neuralNetwork):
    def errors(self, targets, final_outputs):
        return final_outputs - targets  # BUG: the "error" turned around, but still "+=" below


class ZeroStart(neuralNetwork):
    def __init__(self, inputnodes, hiddennodes, outputnodes, learningrate):
        super().__init__(inputnodes, hiddennodes, outputnodes, learningrate)
        self.wih = np.zeros((self.hnodes, self.inodes))  # BUG: "start neutral"
        self.who = np.zeros((self.onodes, self.hnodes))


def scale_inputs(pixels):
    return (np.asarray(pixels, dtype=float) / 255.0 * 0.99) + 0.01


def make_targets(labels, n_classes):
    targets = np.zeros((len(labels), n_classes)) + 0.01
    for row, label in enumerate(labels):
        targets[row, int(label)] = 0.99
    return targets


def train_each(n, X, Y):
    for record, target in zip(X, Y):
        n.train(record, target)


def _keywords(cls):
    return dict(
        build=lambda: cls(INPUT_NODES, HIDDEN_NODES, OUTPUT_NODES, LEARNING_RATE),
        forward=lambda n, X: n.query(X).T,  # query takes a (records, inputs) array as well
        objective={"loss": "mse", "scale": 0.5, "reduction": "mean"},
        params=lambda n: {"wih": n.wih, "who": n.who},
        update=train_each,
        lr=LEARNING_RATE,
        prepare_inputs=scale_inputs,
        encode_labels=make_targets,
        check_batch=1,
    )


CASES = [
    Case("tutorial_rashid_neural_network", "rashid", _keywords(neuralNetwork)),
    Case(
        "tutorial_rashid_as_printed",
        "rashid",
        _keywords(AsPrinted),
        # the published train(): who's step is exact, wih's lacks o(1 - o) in the error it receives
        [Bug("gradient", "missing-activation-derivative", ("wih",))],
    ),
    Case(
        "tutorial_rashid_error_reversed",
        "rashid",
        _keywords(ErrorsOutputMinusTarget),
        # both steps climb the error
        [Bug("gradient", "gradient-ascent-sign-error", ("wih", "who"))],
    ),
    Case(
        "tutorial_rashid_zero_weights",
        "rashid",
        _keywords(ZeroStart),
        # the gradient is right, but all hidden units receive the same update forever
        [Bug("symmetry", "zero-init-symmetry")],
    ),
]
