"""CS231n assignment 2's ``TwoLayerNet`` as students fill it in: ``self.params['W1']`` of shape
(D, H), ``loss(X, y=None)`` returning the class scores without labels and ``(loss, grads)`` with
integer labels, a softmax loss computed inside with max subtraction, ``0.5 * reg * sum(W * W)`` in
the loss and ``reg * W`` in the gradients. Biases start at zero; weights at ``std * randn`` with
the assignment's tiny ``std=1e-4``.

The doctor's one-hot ``Y`` goes in as ``y=Y.argmax(1)``, as a reader would write it; the objective
is cross-entropy averaged over the batch plus L2 with scale 0.5 on W1 and W2 (not the biases).
"""

import numpy as np

from tests.doctor.networks import Bug, Case

D_IN, HIDDEN, N_OUT = 20, 16, 4
REG = 0.05
LEARNING_RATE = 0.5


class TwoLayerNet:
    """affine - relu - affine - softmax"""

    def __init__(self, input_size, hidden_size, output_size, std=1e-4, seed=0):
        rs = np.random.RandomState(seed)
        self.params = {}
        self.params["W1"] = std * rs.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = std * rs.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)

    def scores_of(self, X):
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        hidden = np.maximum(0, X.dot(W1) + b1)
        return hidden.dot(W2) + b2, hidden

    def loss(self, X, y=None, reg=0.0):
        W1, W2 = self.params["W1"], self.params["W2"]
        N = X.shape[0]
        scores, hidden = self.scores_of(X)
        if y is None:
            return scores

        shifted = scores - np.max(scores, axis=1, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        probs = np.exp(log_probs)
        data_loss = self.data_loss(probs, log_probs, y, N)
        reg_loss = 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        loss = data_loss + reg_loss

        grads = {}
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads["W2"] = hidden.T.dot(dscores) + reg * W2
        grads["b2"] = np.sum(dscores, axis=0)
        dhidden = dscores.dot(W2.T)
        dhidden[hidden <= 0] = 0
        grads["W1"] = X.T.dot(dhidden) + reg * W1
        grads["b1"] = np.sum(dhidden, axis=0)
        return loss, grads

    def data_loss(self, probs, log_probs, y, N):
        return -np.sum(log_probs[np.arange(N), y]) / N

    def train_step(self, X, y, learning_rate, reg):
        """the body of the assignment's ``train`` loop for one minibatch"""
        loss, grads = self.loss(X, y=y, reg=reg)
        for name in self.params:
            self.params[name] -= learning_rate * grads[name]
        return loss

    def predict(self, X):
        return np.argmax(self.loss(X), axis=1)


class LogOfProbs(TwoLayerNet):
    """the loss written the way most first solutions write it: the log of the probabilities"""

    def data_loss(self, probs, log_probs, y, N):
        return -np.sum(np.log(probs[np.arange(N), y])) / N  # BUG: -inf once a probability underflows


class TwoReg(TwoLayerNet):
    """d/dW of reg * W**2 is 2 * reg * W ... but the loss has the 0.5 in front."""

    def loss(self, X, y=None, reg=0.0):
        W1, W2 = self.params["W1"], self.params["W2"]
        N = X.shape[0]
        scores, hidden = self.scores_of(X)
        if y is None:
            return scores
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
        loss = -np.sum(shifted[np.arange(N), y] - np.log(np.sum(np.exp(shifted), axis=1))) / N
        loss += 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        grads = {}
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads["W2"] = hidden.T.dot(dscores) + 2 * reg * W2  # BUG: the 0.5 of the loss forgotten
        grads["b2"] = np.sum(dscores, axis=0)
        dhidden = dscores.dot(W2.T)
        dhidden[hidden <= 0] = 0
        grads["W1"] = X.T.dot(dhidden) + 2 * reg * W1  # BUG: same
        grads["b1"] = np.sum(dhidden, axis=0)
        return loss, grads


class NoDivideByN(TwoLayerNet):
    """the data loss is averaged (``/ N``) but ``dscores /= N`` was left out."""

    def loss(self, X, y=None, reg=0.0):
        W1, W2 = self.params["W1"], self.params["W2"]
        N = X.shape[0]
        scores, hidden = self.scores_of(X)
        if y is None:
            return scores
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
        loss = np.mean(np.log(np.sum(np.exp(shifted), axis=1)) - shifted[np.arange(N), y])
        loss += 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        grads = {}
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1  # BUG: no dscores /= N
        grads["W2"] = hidden.T.dot(dscores) + reg * W2
        grads["b2"] = np.sum(dscores, axis=0)
        dhidden = dscores.dot(W2.T)
        dhidden[hidden <= 0] = 0
        grads["W1"] = X.T.dot(dhidden) + reg * W1
        grads["b1"] = np.sum(dhidden, axis=0)
        return loss, grads


class MaskOnUpstream(TwoLayerNet):
    """the ReLU gate taken from the sign of the incoming gradient, not of the hidden layer."""

    def loss(self, X, y=None, reg=0.0):
        W1, W2 = self.params["W1"], self.params["W2"]
        N = X.shape[0]
        scores, hidden = self.scores_of(X)
        if y is None:
            return scores
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
        loss = -np.sum(shifted[np.arange(N), y] - np.log(np.sum(np.exp(shifted), axis=1))) / N
        loss += 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        grads = {}
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads["W2"] = hidden.T.dot(dscores) + reg * W2
        grads["b2"] = np.sum(dscores, axis=0)
        dhidden = dscores.dot(W2.T)
        dhidden[dhidden <= 0] = 0  # BUG: should be hidden <= 0
        grads["W1"] = X.T.dot(dhidden) + reg * W1
        grads["b1"] = np.sum(dhidden, axis=0)
        return loss, grads


class LossAfterInPlace(TwoLayerNet):
    """``dscores = probs`` (no copy), and the loss is computed after the -1 went in."""

    def loss(self, X, y=None, reg=0.0):
        W1, W2 = self.params["W1"], self.params["W2"]
        N = X.shape[0]
        scores, hidden = self.scores_of(X)
        if y is None:
            return scores
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
        grads = {}
        dscores = probs  # BUG: an alias, so the next line changes probs too
        dscores[np.arange(N), y] -= 1
        dscores /= N
        correct_logprobs = -np.log(np.abs(probs[np.arange(N), y]))  # abs() "fixed" the nan
        loss = np.sum(correct_logprobs) / N + 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        grads["W2"] = hidden.T.dot(dscores) + reg * W2
        grads["b2"] = np.sum(dscores, axis=0)
        dhidden = dscores.dot(W2.T)
        dhidden[hidden <= 0] = 0
        grads["W1"] = X.T.dot(dhidden) + reg * W1
        grads["b1"] = np.sum(dhidden, axis=0)
        return loss, grads


def softmax_rows(scores):
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


OBJECTIVE = {
    "loss": "cross_entropy",
    "reduction": "mean",
    "l2": {"coef": REG, "params": ["W1", "W2"], "scale": 0.5},
}


def _step(net, X, Y):
    net.train_step(X, Y.argmax(axis=1), LEARNING_RATE, REG)  # its returned loss is not the net


def _keywords(cls, std=1e-4):
    return dict(
        build=lambda: cls(D_IN, HIDDEN, N_OUT, std=std),
        forward=lambda net, X: softmax_rows(net.loss(X)),
        objective=OBJECTIVE,
        params=lambda net: net.params,
        gradients=lambda net, X, Y: net.loss(X, y=Y.argmax(axis=1), reg=REG)[1],
        update=_step,
        lr=LEARNING_RATE,
        loss=lambda net, X, Y: net.loss(X, y=Y.argmax(axis=1), reg=REG)[0],
    )


ALL = ("W1", "b1", "W2", "b2")

CASES = [
    Case("tutorial_cs231n_two_layer_net", "cs231n", _keywords(TwoLayerNet)),
    Case("tutorial_cs231n_two_layer_net_std_0_1", "cs231n", _keywords(TwoLayerNet, std=0.1)),
    Case(
        "tutorial_cs231n_log_of_softmax_probs",
        "cs231n",
        # gradients right; with large scores probs[range(N), y] underflows to 0 and the loss is inf
        _keywords(LogOfProbs, std=0.1),
        [Bug("loss", "log-of-zero")],
    ),
    Case(
        "tutorial_cs231n_reg_gradient_doubled",
        "cs231n",
        # std=0.1 so that reg * W is not lost beside the data gradient; biases carry no reg
        _keywords(TwoReg, std=0.1),
        [Bug("gradient", "l2-gradient-wrong-factor", ("W1", "W2"))],
    ),
    Case(
        "tutorial_cs231n_dscores_not_divided",
        "cs231n",
        _keywords(NoDivideByN, std=0.1),
        # data gradient N times too large in every array (the reg part is right, so not exactly N)
        [Bug("gradient", "gradient-not-averaged", ALL)],
    ),
    Case(
        "tutorial_cs231n_relu_mask_on_dhidden",
        "cs231n",
        _keywords(MaskOnUpstream, std=0.1),
        # W2 / b2 come before the gate and are right
        [Bug("gradient", "relu-derivative-wrong-tensor", ("W1", "b1"))],
    ),
    Case(
        "tutorial_cs231n_loss_after_in_place",
        "cs231n",
        _keywords(LossAfterInPlace, std=0.1),
        # the gradients are right; the reported loss reads |p - 1| for the true class, which is
        # 0 (log -> inf) once the net is sure and right, as at large inputs
        [Bug("loss", "in-place-update-aliasing"), Bug("loss", "log-of-zero")],
    ),
]
