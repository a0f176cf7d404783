"""A class with per-record Python loops, row vectors, like the seed question's code.

``train(features, targets)`` loops over the records of a batch, accumulates weight and bias
changes, then steps once with the mean. ReLU hidden layers, softmax output, cross-entropy.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def relu(x):
    return x * (x > 0)


def drelu(x):
    return 1.0 * (x > 0)


def softmax(x):
    z = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def cross_entropy(pred, target):
    pred = np.clip(pred, 1e-12, 1.0)
    return -np.sum(target * np.log(pred)) / pred.shape[0]


class RecordNet:
    """20-16-8-4, ReLU, ReLU, softmax."""

    def __init__(self, sizes=(20, 16, 8, 4), lr=0.1, seed=0):
        rng = np.random.default_rng(seed)
        n_in, h1, h2, n_out = sizes
        self.w1 = rng.normal(0.0, n_in**-0.5, (n_in, h1))
        self.w2 = rng.normal(0.0, h1**-0.5, (h1, h2))
        self.w3 = rng.normal(0.0, h2**-0.5, (h2, n_out))
        self.b1 = np.zeros(h1)
        self.b2 = np.zeros(h2)
        self.b3 = np.zeros(n_out)
        self.lr = lr

    def run(self, features):
        h1 = relu(np.dot(features, self.w1) + self.b1)
        h2 = relu(np.dot(h1, self.w2) + self.b2)
        return softmax(np.dot(h2, self.w3) + self.b3)

    def train(self, features, targets):
        n_records = features.shape[0]
        dw1 = np.zeros(self.w1.shape)
        dw2 = np.zeros(self.w2.shape)
        dw3 = np.zeros(self.w3.shape)
        db1 = np.zeros(self.b1.shape)
        db2 = np.zeros(self.b2.shape)
        db3 = np.zeros(self.b3.shape)
        for x, y in zip(features, targets):
            h1 = relu(np.dot(x, self.w1) + self.b1)
            h2 = relu(np.dot(h1, self.w2) + self.b2)
            out = softmax(np.dot(h2, self.w3) + self.b3)
            e3 = out - y
            e2 = np.dot(e3, self.w3.T) * drelu(h2)
            e1 = np.dot(e2, self.w2.T) * drelu(h1)
            dw3 += np.outer(h2, e3)
            dw2 += np.outer(h1, e2)
            dw1 += np.outer(x, e1)
            db3 += e3
            db2 += e2
            db1 += e1
        self.w1 -= self.lr * dw1 / n_records
        self.w2 -= self.lr * dw2 / n_records
        self.w3 -= self.lr * dw3 / n_records
        self.b1 -= self.lr * db1 / n_records
        self.b2 -= self.lr * db2 / n_records
        self.b3 -= self.lr * db3 / n_records

    def train_one(self, x, y):
        """Plain SGD, one record per call."""
        h1 = relu(np.dot(x, self.w1) + self.b1)
        h2 = relu(np.dot(h1, self.w2) + self.b2)
        out = softmax(np.dot(h2, self.w3) + self.b3)
        e3 = out - y
        e2 = np.dot(e3, self.w3.T) * drelu(h2)
        e1 = np.dot(e2, self.w2.T) * drelu(h1)
        self.w3 -= self.lr * np.outer(h2, e3)
        self.w2 -= self.lr * np.outer(h1, e2)
        self.w1 -= self.lr * np.outer(x, e1)
        self.b3 -= self.lr * e3
        self.b2 -= self.lr * e2
        self.b1 -= self.lr * e1


class BiasOverwritten(RecordNet):
    def train(self, features, targets):
        n_records = features.shape[0]
        dw1 = np.zeros(self.w1.shape)
        dw2 = np.zeros(self.w2.shape)
        dw3 = np.zeros(self.w3.shape)
        db1 = np.zeros(self.b1.shape)
        db2 = np.zeros(self.b2.shape)
        db3 = np.zeros(self.b3.shape)
        for x, y in zip(features, targets):
            h1 = relu(np.dot(x, self.w1) + self.b1)
            h2 = relu(np.dot(h1, self.w2) + self.b2)
            out = softmax(np.dot(h2, self.w3) + self.b3)
            e3 = out - y
            e2 = np.dot(e3, self.w3.T) * drelu(h2)
            e1 = np.dot(e2, self.w2.T) * drelu(h1)
            dw3 += np.outer(h2, e3)
            dw2 += np.outer(h1, e2)
            dw1 += np.outer(x, e1)
            db3 = e3  # BUG: = instead of +=, the last record's error only
            db2 = e2
            db1 = e1
        self.w1 -= self.lr * dw1 / n_records
        self.w2 -= self.lr * dw2 / n_records
        self.w3 -= self.lr * dw3 / n_records
        self.b1 -= self.lr * db1 / n_records
        self.b2 -= self.lr * db2 / n_records
        self.b3 -= self.lr * db3 / n_records


class OnlyLastRecord(RecordNet):
    def train(self, features, targets):
        n_records = features.shape[0]
        for x, y in zip(features, targets):
            h1 = relu(np.dot(x, self.w1) + self.b1)
            h2 = relu(np.dot(h1, self.w2) + self.b2)
            out = softmax(np.dot(h2, self.w3) + self.b3)
            e3 = out - y
            e2 = np.dot(e3, self.w3.T) * drelu(h2)
            e1 = np.dot(e2, self.w2.T) * drelu(h1)
            # BUG: every delta assigned, not accumulated: only the last record survives the loop
            dw3 = np.outer(h2, e3)
            dw2 = np.outer(h1, e2)
            dw1 = np.outer(x, e1)
            db3 = e3
            db2 = e2
            db1 = e1
        self.w1 -= self.lr * dw1 / n_records
        self.w2 -= self.lr * dw2 / n_records
        self.w3 -= self.lr * dw3 / n_records
        self.b1 -= self.lr * db1 / n_records
        self.b2 -= self.lr * db2 / n_records
        self.b3 -= self.lr * db3 / n_records


class AccumulatorsInInit(RecordNet):
    """The placeholders moved to __init__ "to save allocations", and never zeroed again."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.delta_w1 = np.zeros(self.w1.shape)
        self.delta_w2 = np.zeros(self.w2.shape)
        self.delta_w3 = np.zeros(self.w3.shape)
        self.delta_b1 = np.zeros(self.b1.shape)
        self.delta_b2 = np.zeros(self.b2.shape)
        self.delta_b3 = np.zeros(self.b3.shape)

    def train(self, features, targets):
        n_records = features.shape[0]
        for x, y in zip(features, targets):
            h1 = relu(np.dot(x, self.w1) + self.b1)
            h2 = relu(np.dot(h1, self.w2) + self.b2)
            out = softmax(np.dot(h2, self.w3) + self.b3)
            e3 = out - y
            e2 = np.dot(e3, self.w3.T) * drelu(h2)
            e1 = np.dot(e2, self.w2.T) * drelu(h1)
            self.delta_w3 += np.outer(h2, e3)
            self.delta_w2 += np.outer(h1, e2)
            self.delta_w1 += np.outer(x, e1)
            self.delta_b3 += e3
            self.delta_b2 += e2
            self.delta_b1 += e1
        self.w1 -= self.lr * self.delta_w1 / n_records
        self.w2 -= self.lr * self.delta_w2 / n_records
        self.w3 -= self.lr * self.delta_w3 / n_records
        self.b1 -= self.lr * self.delta_b1 / n_records
        self.b2 -= self.lr * self.delta_b2 / n_records
        self.b3 -= self.lr * self.delta_b3 / n_records


class NotAveraged(RecordNet):
    def train(self, features, targets):
        dw1 = np.zeros(self.w1.shape)
        dw2 = np.zeros(self.w2.shape)
        dw3 = np.zeros(self.w3.shape)
        db1 = np.zeros(self.b1.shape)
        db2 = np.zeros(self.b2.shape)
        db3 = np.zeros(self.b3.shape)
        for x, y in zip(features, targets):
            h1 = relu(np.dot(x, self.w1) + self.b1)
            h2 = relu(np.dot(h1, self.w2) + self.b2)
            out = softmax(np.dot(h2, self.w3) + self.b3)
            e3 = out - y
            e2 = np.dot(e3, self.w3.T) * drelu(h2)
            e1 = np.dot(e2, self.w2.T) * drelu(h1)
            dw3 += np.outer(h2, e3)
            dw2 += np.outer(h1, e2)
            dw1 += np.outer(x, e1)
            db3 += e3
            db2 += e2
            db1 += e1
        # BUG: the sum over the batch, never divided by n_records
        self.w1 -= self.lr * dw1
        self.w2 -= self.lr * dw2
        self.w3 -= self.lr * dw3
        self.b1 -= self.lr * db1
        self.b2 -= self.lr * db2
        self.b3 -= self.lr * db3


def sgd_epoch(net, X, Y, epoch):
    """The user's own epoch: SGD over the records in order."""
    for x, y in zip(X, Y):
        net.train_one(x, y)


def params(net):
    return {"w1": net.w1, "b1": net.b1, "w2": net.w2, "b2": net.b2, "w3": net.w3, "b3": net.b3}


ALL = ("w1", "b1", "w2", "b2", "w3", "b3")
BIASES = ("b1", "b2", "b3")


def _keywords(cls, **extra):
    keywords = dict(
        build=lambda: cls(),
        forward=lambda net, X: net.run(X),
        objective="cross_entropy",
        params=params,
        update=lambda net, X, Y: net.train(X, Y),
        lr=0.1,
        loss=lambda net, X, Y: cross_entropy(net.run(X), Y),
    )
    keywords.update(extra)
    return keywords


CASES = [
    Case("per_record_correct", "per-record", _keywords(RecordNet)),
    Case(
        "per_record_sgd_one_record",
        "per-record",
        _keywords(
            RecordNet,
            update=lambda net, X, Y: net.train_one(X[0], Y[0]),
            check_batch=1,
            train_epoch=sgd_epoch,
        ),
    ),
    Case(
        "per_record_bias_overwritten",
        "per-record",
        _keywords(BiasOverwritten),
        # the bias step is the last record's error / n: wrong for every bias, weights accumulate fine
        [Bug("gradient", "bias-grad-overwritten", BIASES)],
    ),
    Case(
        "per_record_only_last_sample",
        "per-record",
        _keywords(OnlyLastRecord),
        # every delta is the last record's / n: all six arrays wrong
        [Bug("gradient", "only-last-sample-used", ALL)],
    ),
    Case(
        "per_record_accumulators_never_zeroed",
        "per-record",
        _keywords(AccumulatorsInInit),
        # the first call from a fresh net is right; the second adds the first call's sums: `state`
        [Bug("state", "gradients-not-reset-between-steps")],
    ),
    Case(
        "per_record_not_averaged",
        "per-record",
        _keywords(NotAveraged),
        # the step is n times the mean gradient (objective: mean) in every array
        [Bug("gradient", "gradient-not-averaged", ALL)],
    ),
]
