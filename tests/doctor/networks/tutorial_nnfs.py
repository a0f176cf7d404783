"""The "Neural Networks from Scratch" book (nnfs) as readers type it in: ``Layer_Dense`` with
``0.01 * randn`` weights and zero ``(1, n)`` biases, ``Activation_ReLU``, the combined
``Activation_Softmax_Loss_CategoricalCrossentropy`` whose backward is
``dinputs[range(n), y] -= 1; dinputs /= n``, and the book's optimizers: ``Optimizer_SGD`` with
``decay`` and ``momentum`` (the momentums stored on the layer objects as ``weight_momentums`` /
``bias_momentums``) and ``Optimizer_Adam`` with bias correction ``1 - beta ** (iterations + 1)``.

The doctor sees ``optimizer={...}``: ``gradients`` runs forward and backward and returns the
layers' ``dweights`` / ``dbiases``; ``step`` is the book's pre_update / update_params / post_update
triple; ``hyper`` gives the learning rate the next step will use (``decay`` shrinks it).
"""

import numpy as np

from tests.doctor.networks import Bug, Case

D_IN, HIDDEN, N_OUT = 20, 16, 4


class Layer_Dense:
    def __init__(self, n_inputs, n_neurons, rng):
        self.weights = 0.01 * rng.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))

    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.dot(inputs, self.weights) + self.biases

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)


class Activation_ReLU:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0


class Activation_ReLU_GateOnGradient(Activation_ReLU):
    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[dvalues <= 0] = 0  # BUG: gated by the incoming gradient, not the inputs


class Activation_Softmax:
    def forward(self, inputs):
        self.inputs = inputs
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)


class Loss_CategoricalCrossentropy:
    def calculate(self, output, y):
        return np.mean(self.forward(output, y))

    def forward(self, y_pred, y_true):
        samples = len(y_pred)
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        if len(y_true.shape) == 1:
            correct_confidences = y_pred_clipped[range(samples), y_true]
        else:
            correct_confidences = np.sum(y_pred_clipped * y_true, axis=1)
        return -np.log(correct_confidences)


class Activation_Softmax_Loss_CategoricalCrossentropy:
    def __init__(self):
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs, y_true):
        self.activation.forward(inputs)
        self.output = self.activation.output
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        if len(y_true.shape) == 2:
            y_true = np.argmax(y_true, axis=1)
        self.dinputs = dvalues.copy()
        self.dinputs[range(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples


class SoftmaxLossNoDivide(Activation_Softmax_Loss_CategoricalCrossentropy):
    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        if len(y_true.shape) == 2:
            y_true = np.argmax(y_true, axis=1)
        self.dinputs = dvalues.copy()
        self.dinputs[range(samples), y_true] -= 1  # BUG: the "/ samples" line left out


class Optimizer_SGD:
    def __init__(self, learning_rate=1.0, decay=0.0, momentum=0.0):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.momentum = momentum

    def pre_update_params(self):
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))

    def update_params(self, layer):
        if self.momentum:
            if not hasattr(layer, "weight_momentums"):
                layer.weight_momentums = np.zeros_like(layer.weights)
                layer.bias_momentums = np.zeros_like(layer.biases)
            weight_updates = (
                self.momentum * layer.weight_momentums - self.current_learning_rate * layer.dweights
            )
            layer.weight_momentums = weight_updates
            bias_updates = self.momentum * layer.bias_momentums - self.current_learning_rate * layer.dbiases
            layer.bias_momentums = bias_updates
        else:
            weight_updates = -self.current_learning_rate * layer.dweights
            bias_updates = -self.current_learning_rate * layer.dbiases
        layer.weights += weight_updates
        layer.biases += bias_updates

    def post_update_params(self):
        self.iterations += 1

    def hyper(self):
        lr = self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))
        return {"lr": lr, "momentum": self.momentum}


class Optimizer_SGD_MomentumNotKept(Optimizer_SGD):
    def update_params(self, layer):
        if not hasattr(layer, "weight_momentums"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
        # BUG: the two "layer.*_momentums = *_updates" lines were never typed
        weight_updates = self.momentum * layer.weight_momentums - self.current_learning_rate * layer.dweights
        bias_updates = self.momentum * layer.bias_momentums - self.current_learning_rate * layer.dbiases
        layer.weights += weight_updates
        layer.biases += bias_updates


class Optimizer_Adam:
    def __init__(self, learning_rate=0.001, decay=0.0, epsilon=1e-7, beta_1=0.9, beta_2=0.999):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.epsilon = epsilon
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def pre_update_params(self):
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))

    def update_params(self, layer):
        if not hasattr(layer, "weight_cache"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
            layer.bias_cache = np.zeros_like(layer.biases)
        layer.weight_momentums = self.beta_1 * layer.weight_momentums + (1 - self.beta_1) * layer.dweights
        layer.bias_momentums = self.beta_1 * layer.bias_momentums + (1 - self.beta_1) * layer.dbiases
        weight_momentums_corrected = layer.weight_momentums / (1 - self.beta_1 ** (self.iterations + 1))
        bias_momentums_corrected = layer.bias_momentums / (1 - self.beta_1 ** (self.iterations + 1))
        layer.weight_cache = self.beta_2 * layer.weight_cache + (1 - self.beta_2) * layer.dweights**2
        layer.bias_cache = self.beta_2 * layer.bias_cache + (1 - self.beta_2) * layer.dbiases**2
        weight_cache_corrected = layer.weight_cache / (1 - self.beta_2 ** (self.iterations + 1))
        bias_cache_corrected = layer.bias_cache / (1 - self.beta_2 ** (self.iterations + 1))
        layer.weights += (
            -self.current_learning_rate
            * weight_momentums_corrected
            / (self.sqrt(weight_cache_corrected) + self.epsilon)
        )
        layer.biases += (
            -self.current_learning_rate
            * bias_momentums_corrected
            / (self.sqrt(bias_cache_corrected) + self.epsilon)
        )

    def sqrt(self, cache):
        return np.sqrt(cache)

    def post_update_params(self):
        self.iterations += 1

    def hyper(self):
        lr = self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))
        return {"lr": lr, "beta1": self.beta_1, "beta2": self.beta_2, "eps": self.epsilon}


class Optimizer_Adam_NoSqrt(Optimizer_Adam):
    def sqrt(self, cache):
        return cache  # BUG: "/ (cache_corrected + epsilon)": the square root was dropped


class Model:
    """the book's chapter-10 script, wrapped so that a fresh copy can be built"""

    def __init__(
        self, optimizer, relu=Activation_ReLU, loss_activation=Activation_Softmax_Loss_CategoricalCrossentropy
    ):
        rng = np.random.RandomState(0)  # nnfs.init() seeds the global generator; a local one here
        self.dense1 = Layer_Dense(D_IN, HIDDEN, rng)
        self.activation1 = relu()
        self.dense2 = Layer_Dense(HIDDEN, N_OUT, rng)
        self.loss_activation = loss_activation()
        self.optimizer = optimizer

    def forward(self, X, y):
        self.dense1.forward(X)
        self.activation1.forward(self.dense1.output)
        self.dense2.forward(self.activation1.output)
        return self.loss_activation.forward(self.dense2.output, y)

    def backward(self, y):
        self.loss_activation.backward(self.loss_activation.output, y)
        self.dense2.backward(self.loss_activation.dinputs)
        self.activation1.backward(self.dense2.dinputs)
        self.dense1.backward(self.activation1.dinputs)

    def predict(self, X):
        self.dense1.forward(X)
        self.activation1.forward(self.dense1.output)
        self.dense2.forward(self.activation1.output)
        self.loss_activation.activation.forward(self.dense2.output)
        return self.loss_activation.activation.output

    def step(self):
        self.optimizer.pre_update_params()
        self.optimizer.update_params(self.dense1)
        self.optimizer.update_params(self.dense2)
        self.optimizer.post_update_params()


def _params(model):
    return {
        "dense1.weights": model.dense1.weights,
        "dense1.biases": model.dense1.biases,
        "dense2.weights": model.dense2.weights,
        "dense2.biases": model.dense2.biases,
    }


def _gradients(model, X, Y):
    y = np.argmax(Y, axis=1)  # the book's labels are sparse class indices
    model.forward(X, y)
    model.backward(y)
    return {
        "dense1.weights": model.dense1.dweights,
        "dense1.biases": model.dense1.dbiases,
        "dense2.weights": model.dense2.dweights,
        "dense2.biases": model.dense2.dbiases,
    }


def _keywords(make_optimizer, kind, **model_kwargs):
    return dict(
        build=lambda: Model(make_optimizer(), **model_kwargs),
        forward=lambda model, X: model.predict(X),
        objective="cross_entropy",
        params=_params,
        gradients=_gradients,
        loss=lambda model, X, Y: model.forward(X, np.argmax(Y, axis=1)),
        optimizer={
            "kind": kind,
            "gradients": _gradients,
            "step": lambda model: model.step(),
            "hyper": lambda model: model.optimizer.hyper(),
        },
    )


ALL = tuple(_params(Model(Optimizer_SGD())))

CASES = [
    Case(
        "tutorial_nnfs_sgd_decay_momentum",
        "nnfs",
        _keywords(lambda: Optimizer_SGD(learning_rate=1.0, decay=1e-3, momentum=0.9), "momentum"),
    ),
    Case(
        "tutorial_nnfs_adam",
        "nnfs",
        _keywords(lambda: Optimizer_Adam(learning_rate=0.05, decay=5e-7), "adam"),
    ),
    Case(
        "tutorial_nnfs_softmax_loss_not_divided",
        "nnfs",
        _keywords(
            lambda: Optimizer_SGD(learning_rate=1.0, decay=1e-3, momentum=0.9),
            "momentum",
            loss_activation=SoftmaxLossNoDivide,
        ),
        # the loss is np.mean over samples; the combined backward sums: every array n times too big
        [Bug("gradient", "gradient-not-averaged", ALL)],
    ),
    Case(
        "tutorial_nnfs_relu_gate_on_dvalues",
        "nnfs",
        _keywords(lambda: Optimizer_SGD(learning_rate=1.0), "sgd", relu=Activation_ReLU_GateOnGradient),
        # dense2 is upstream of the gate and right
        [Bug("gradient", "relu-derivative-wrong-tensor", ("dense1.weights", "dense1.biases"))],
    ),
    Case(
        "tutorial_nnfs_momentum_not_stored",
        "nnfs",
        _keywords(
            lambda: Optimizer_SGD_MomentumNotKept(learning_rate=1.0, decay=1e-3, momentum=0.9), "momentum"
        ),
        # the layer's momentums stay zero: every step is plain SGD's
        [Bug("optimizer", "momentum-velocity-not-stored", ALL)],
    ),
    Case(
        "tutorial_nnfs_adam_no_sqrt",
        "nnfs",
        _keywords(lambda: Optimizer_Adam_NoSqrt(learning_rate=0.05, decay=5e-7), "adam"),
        [Bug("optimizer", "adam-missing-sqrt", ALL)],
    ),
]
