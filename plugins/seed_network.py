"""The seed question's network, re-indented as posted, and its corrected twin, as network plugins.

``NeuralNetwork`` is the person's class with its bugs kept: the backward pass multiplies
``y - final_outputs`` by the softmax Jacobian (the gradient of squared error through softmax, not
of the cross-entropy they meant), the bias deltas are ``np.sum(..., axis=0)`` of a 1-D vector (a
scalar) assigned on every record (so only the last record's counts), the output bias's scalar is
the sum of a row of the softmax Jacobian times the error, which is zero (that bias never moves),
``softmax`` takes one max and one sum over the whole array (wrong for a batch), and the printed
loss ``categorical_cross_entropy`` divides by ``len(pred)``, the number of classes for one record.
``run()`` is written the obvious way: the same layer code over the whole batch.

``NeuralNetworkFixed`` is the same code with those five lines corrected. ``mlpx doctor
seed_question`` names the mistakes; ``mlpx doctor seed_fixed`` passes.
"""

import functools

import numpy as np

import mlpx
from mlpx.doctor import Network


class NeuralNetwork:
    def __init__(self, input_nodes, hidden1_nodes, hidden2_nodes, output_nodes, learning_rate, seed=0):
        # Set number of nodes in input, hidden and output layers.
        self.input_nodes = input_nodes
        self.hidden1_nodes = hidden1_nodes
        self.hidden2_nodes = hidden2_nodes
        self.output_nodes = output_nodes

        # Initialize weights (their notebook: np.random.normal(0.0, n ** -0.5, shape))
        rng = np.random.default_rng(seed)
        self.weights_i_to_h1 = rng.normal(0.0, self.input_nodes**-0.5, (self.input_nodes, self.hidden1_nodes))
        self.weights_h1_to_h2 = rng.normal(
            0.0, self.hidden1_nodes**-0.5, (self.hidden1_nodes, self.hidden2_nodes)
        )
        self.weights_h2_to_o = rng.normal(
            0.0, self.hidden2_nodes**-0.5, (self.hidden2_nodes, self.output_nodes)
        )
        self.bias_i_to_h1 = np.zeros(self.hidden1_nodes)
        self.bias_h1_to_h2 = np.zeros(self.hidden2_nodes)
        self.bias_h2_to_o = np.zeros(self.output_nodes)
        self.lr = learning_rate

    def train(self, features, targets):
        n_records = features.shape[0]
        # placeholders for weights and biases change values
        delta_weights_i_h1 = np.zeros(self.weights_i_to_h1.shape)
        delta_weights_h1_h2 = np.zeros(self.weights_h1_to_h2.shape)
        delta_weights_h2_o = np.zeros(self.weights_h2_to_o.shape)
        delta_bias_i_h1 = np.zeros(self.bias_i_to_h1.shape)
        delta_bias_h1_h2 = np.zeros(self.bias_h1_to_h2.shape)
        delta_bias_h2_o = np.zeros(self.bias_h2_to_o.shape)
        for X, y in zip(features, targets):
            ### forward pass
            # input to hidden 1
            inputs_to_h1_layer = np.dot(X, self.weights_i_to_h1) + self.bias_i_to_h1
            inputs_to_h1_layer_activated = self.activation_ReLU(inputs_to_h1_layer)
            # hidden 1 to hidden 2
            h1_to_h2_layer = np.dot(inputs_to_h1_layer_activated, self.weights_h1_to_h2) + self.bias_h1_to_h2
            h1_to_h2_layer_activated = self.activation_ReLU(h1_to_h2_layer)
            # hidden 2 to output
            h2_to_output_layer = np.dot(h1_to_h2_layer_activated, self.weights_h2_to_o) + self.bias_h2_to_o
            h2_to_output_layer_activated = self.softmax(h2_to_output_layer)
            # output
            final_outputs = h2_to_output_layer_activated
            ### backpropagation
            # output to hidden2
            error = y - final_outputs
            output_error_term = error.dot(self.dsoftmax(h2_to_output_layer_activated))
            h2_error = np.dot(output_error_term, self.weights_h2_to_o.T)
            h2_error_term = h2_error * self.activation_dReLU(h1_to_h2_layer_activated)
            # hidden2 to hidden1
            h1_error = np.dot(h2_error_term, self.weights_h1_to_h2.T)
            h1_error_term = h1_error * self.activation_dReLU(inputs_to_h1_layer_activated)
            # weight & bias step (input to hidden)
            delta_weights_i_h1 += h1_error_term * X[:, None]
            delta_bias_i_h1 = np.sum(h1_error_term, axis=0)
            # weight & bias step (hidden1 to hidden2)
            delta_weights_h1_h2 += h2_error_term * inputs_to_h1_layer_activated[:, None]
            delta_bias_h1_h2 = np.sum(h2_error_term, axis=0)
            # weight & bias step (hidden2 to output)
            delta_weights_h2_o += output_error_term * h1_to_h2_layer_activated[:, None]
            delta_bias_h2_o = np.sum(output_error_term, axis=0)
        # update the weights and biases
        self.weights_i_to_h1 += self.lr * delta_weights_i_h1 / n_records
        self.weights_h1_to_h2 += self.lr * delta_weights_h1_h2 / n_records
        self.weights_h2_to_o += self.lr * delta_weights_h2_o / n_records
        self.bias_i_to_h1 += self.lr * delta_bias_i_h1 / n_records
        self.bias_h1_to_h2 += self.lr * delta_bias_h1_h2 / n_records
        self.bias_h2_to_o += self.lr * delta_bias_h2_o / n_records

    def run(self, features):
        """The forward pass over a batch of records, the same layer code as in train()."""
        inputs_to_h1_layer = np.dot(features, self.weights_i_to_h1) + self.bias_i_to_h1
        inputs_to_h1_layer_activated = self.activation_ReLU(inputs_to_h1_layer)
        h1_to_h2_layer = np.dot(inputs_to_h1_layer_activated, self.weights_h1_to_h2) + self.bias_h1_to_h2
        h1_to_h2_layer_activated = self.activation_ReLU(h1_to_h2_layer)
        h2_to_output_layer = np.dot(h1_to_h2_layer_activated, self.weights_h2_to_o) + self.bias_h2_to_o
        final_outputs = self.softmax(h2_to_output_layer)
        return final_outputs

    def activation_ReLU(self, x):
        return x * (x > 0)

    def activation_dReLU(self, x):
        return 1.0 * (x > 0)

    def softmax(self, x):
        z = x - np.max(x)
        return np.exp(z) / np.sum(np.exp(z))

    def dsoftmax(self, x):
        # TODO: vectorise math
        vec_len = len(x)
        J = np.zeros((vec_len, vec_len))
        for i in range(vec_len):
            for j in range(vec_len):
                if i == j:
                    J[i][j] = x[i] * (1 - x[j])
                else:
                    J[i][j] = -x[i] * x[j]
        return J


def categorical_cross_entropy(pred, target):
    return (1 / len(pred)) * -np.sum(target * np.log(pred))


def printed_loss(network, features, targets):
    """The loss as the notebook prints it: each record's loss, averaged over the records."""
    return float(np.mean([categorical_cross_entropy(network.run(x), y) for x, y in zip(features, targets)]))


class NeuralNetworkFixed(NeuralNetwork):
    """The seed's class with its five mistakes corrected, and nothing else changed."""

    def train(self, features, targets):
        n_records = features.shape[0]
        delta_weights_i_h1 = np.zeros(self.weights_i_to_h1.shape)
        delta_weights_h1_h2 = np.zeros(self.weights_h1_to_h2.shape)
        delta_weights_h2_o = np.zeros(self.weights_h2_to_o.shape)
        delta_bias_i_h1 = np.zeros(self.bias_i_to_h1.shape)
        delta_bias_h1_h2 = np.zeros(self.bias_h1_to_h2.shape)
        delta_bias_h2_o = np.zeros(self.bias_h2_to_o.shape)
        for X, y in zip(features, targets):
            inputs_to_h1_layer = np.dot(X, self.weights_i_to_h1) + self.bias_i_to_h1
            inputs_to_h1_layer_activated = self.activation_ReLU(inputs_to_h1_layer)
            h1_to_h2_layer = np.dot(inputs_to_h1_layer_activated, self.weights_h1_to_h2) + self.bias_h1_to_h2
            h1_to_h2_layer_activated = self.activation_ReLU(h1_to_h2_layer)
            h2_to_output_layer = np.dot(h1_to_h2_layer_activated, self.weights_h2_to_o) + self.bias_h2_to_o
            final_outputs = self.softmax(h2_to_output_layer)
            # cross-entropy through softmax: the error term is y - p itself, no Jacobian
            error = y - final_outputs
            output_error_term = error
            h2_error = np.dot(output_error_term, self.weights_h2_to_o.T)
            h2_error_term = h2_error * self.activation_dReLU(h1_to_h2_layer_activated)
            h1_error = np.dot(h2_error_term, self.weights_h1_to_h2.T)
            h1_error_term = h1_error * self.activation_dReLU(inputs_to_h1_layer_activated)
            # every delta accumulated over the records, biases as vectors
            delta_weights_i_h1 += h1_error_term * X[:, None]
            delta_bias_i_h1 += h1_error_term
            delta_weights_h1_h2 += h2_error_term * inputs_to_h1_layer_activated[:, None]
            delta_bias_h1_h2 += h2_error_term
            delta_weights_h2_o += output_error_term * h1_to_h2_layer_activated[:, None]
            delta_bias_h2_o += output_error_term
        self.weights_i_to_h1 += self.lr * delta_weights_i_h1 / n_records
        self.weights_h1_to_h2 += self.lr * delta_weights_h1_h2 / n_records
        self.weights_h2_to_o += self.lr * delta_weights_h2_o / n_records
        self.bias_i_to_h1 += self.lr * delta_bias_i_h1 / n_records
        self.bias_h1_to_h2 += self.lr * delta_bias_h1_h2 / n_records
        self.bias_h2_to_o += self.lr * delta_bias_h2_o / n_records

    def softmax(self, x):
        # one max and one sum per record (the last axis), for one record or a batch
        z = x - np.max(x, axis=-1, keepdims=True)
        e = np.exp(z)
        return e / np.sum(e, axis=-1, keepdims=True)


def categorical_cross_entropy_fixed(pred, target):
    """Mean over the records of a batch (n, C); logs clipped away from zero."""
    pred = np.clip(pred, 1e-12, 1.0)
    return -np.sum(target * np.log(pred)) / pred.shape[0]


SIZES = (784, 300, 75, 10)
LEARNING_RATE = 0.1


@functools.cache
def mnist16():
    """The first 16 MNIST training images scaled to [0, 1], and their one-hot labels."""
    from mlpx.datasets.mnist import BUNDLED_DIR, MNIST_FILES, read_verified

    images = read_verified(BUNDLED_DIR / MNIST_FILES["train_images"].filename, MNIST_FILES["train_images"])
    labels = read_verified(BUNDLED_DIR / MNIST_FILES["train_labels"].filename, MNIST_FILES["train_labels"])
    X = images[:16].reshape(16, -1).astype(np.float64) / 255.0
    Y = np.eye(10)[labels[:16].astype(np.int64)]
    X.setflags(write=False)
    Y.setflags(write=False)
    return X, Y


def seed_keywords(cls, sizes=SIZES, data=True):
    """examine's keywords for the class, written as the person would adapt their notebook."""
    loss = (
        printed_loss
        if cls is NeuralNetwork
        else lambda net, X, Y: categorical_cross_entropy_fixed(net.run(X), Y)
    )
    keywords = dict(
        build=lambda: cls(*sizes, LEARNING_RATE, seed=0),
        forward=lambda net, X: net.run(X),
        objective="cross_entropy",
        update=lambda net, X, Y: net.train(X, Y),
        lr=lambda net: net.lr,
        loss=loss,
        check_batch=None,  # train() loops over the records of the batch itself
    )
    if data:
        keywords["data"] = tuple(array.copy() for array in mnist16())
    return keywords


def seed_question():
    return Network(**seed_keywords(NeuralNetwork), description="the seed question's network, as posted")


def seed_fixed():
    return Network(**seed_keywords(NeuralNetworkFixed), description="the seed question's network, corrected")


@mlpx.hookimpl
def register_networks(register):
    register("seed_question", seed_question)
    register("seed_fixed", seed_fixed)
