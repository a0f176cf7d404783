"""Andrew Ng's ex4 ported from Octave: the network *is* one flat parameter vector ``nn_params``,
unrolled into ``Theta1`` (hidden, 1 + inputs) and ``Theta2`` (labels, 1 + hidden) by reshaping
(views), the bias folded in as a column of ones prepended to the activations (so a bias is column
0 of a Theta, never a separate array), sigmoid hidden and output units, the logistic cost summed
over the labels, ``nnCostFunction(...) -> (J, grad)`` with ``grad`` flat, plain gradient descent on
the vector in place. Regularisation skips column 0; ``lambda`` is divided by the training-set size
``m_train`` (a constant here, so the objective does not depend on the batch). Second, independent
collection.
"""

import numpy as np

from tests.doctor.networks import Bug, Case

INPUT_LAYER_SIZE = 20
HIDDEN_LAYER_SIZE = 12
NUM_LABELS = 4
M_TRAIN = 50
ALPHA = 1.0


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoidGradient(z):
    g = sigmoid(z)
    return g * (1 - g)


def randInitializeWeights(L_in, L_out, rng, epsilon_init=0.12):
    return rng.random((L_out, 1 + L_in)) * 2 * epsilon_init - epsilon_init


def initial_nn_params(seed=0):
    rng = np.random.default_rng(seed)
    initial_Theta1 = randInitializeWeights(INPUT_LAYER_SIZE, HIDDEN_LAYER_SIZE, rng)
    initial_Theta2 = randInitializeWeights(HIDDEN_LAYER_SIZE, NUM_LABELS, rng)
    return np.concatenate([initial_Theta1.ravel(), initial_Theta2.ravel()])


def zero_nn_params(seed=0):
    n = HIDDEN_LAYER_SIZE * (INPUT_LAYER_SIZE + 1) + NUM_LABELS * (HIDDEN_LAYER_SIZE + 1)
    return np.zeros(n)  # BUG: "initial_nn_params = zeros(...)": every hidden unit the same


def unroll(
    nn_params, input_layer_size=INPUT_LAYER_SIZE, hidden_layer_size=HIDDEN_LAYER_SIZE, num_labels=NUM_LABELS
):
    split = hidden_layer_size * (input_layer_size + 1)
    Theta1 = np.reshape(nn_params[:split], (hidden_layer_size, input_layer_size + 1))
    Theta2 = np.reshape(nn_params[split:], (num_labels, hidden_layer_size + 1))
    return Theta1, Theta2


def predict_proba(nn_params, X):
    Theta1, Theta2 = unroll(nn_params)
    m = X.shape[0]
    a1 = np.hstack([np.ones((m, 1)), X])
    a2 = np.hstack([np.ones((m, 1)), sigmoid(a1 @ Theta1.T)])
    return sigmoid(a2 @ Theta2.T)


def nnCostFunction(
    nn_params,
    input_layer_size,
    hidden_layer_size,
    num_labels,
    X,
    y_matrix,
    lambda_=0.0,
    m_train=M_TRAIN,
    variant=(),
):
    Theta1, Theta2 = unroll(nn_params, input_layer_size, hidden_layer_size, num_labels)
    m = X.shape[0]

    # Part 1: feedforward and cost
    a1 = np.hstack([np.ones((m, 1)), X])
    z2 = a1 @ Theta1.T
    a2 = np.hstack([np.ones((m, 1)), sigmoid(z2)])
    z3 = a2 @ Theta2.T
    a3 = sigmoid(z3)
    h = np.clip(a3, 1e-12, 1 - 1e-12)
    J = np.sum(-y_matrix * np.log(h) - (1 - y_matrix) * np.log(1 - h))
    if "cost_not_divided" not in variant:
        J = J / m
    J += lambda_ / (2 * m_train) * (np.sum(Theta1[:, 1:] ** 2) + np.sum(Theta2[:, 1:] ** 2))

    # Part 2: backpropagation
    d3 = a3 - y_matrix
    if "sigmoid_gradient_on_z" in variant:
        d2 = (d3 @ Theta2)[:, 1:] * (z2 * (1 - z2))  # BUG: g(z)(1 - g(z)) written on z itself
    else:
        d2 = (d3 @ Theta2)[:, 1:] * sigmoidGradient(z2)
    Delta1 = d2.T @ a1
    Delta2 = d3.T @ a2
    if "grad_not_divided" in variant:
        Theta1_grad, Theta2_grad = Delta1, Delta2  # BUG: J is divided by m, the gradient is not
    else:
        Theta1_grad, Theta2_grad = Delta1 / m, Delta2 / m

    # Part 3: regularisation (not the bias column)
    if "reg_in_cost_only" in variant:
        pass  # BUG: the penalty is in J only
    elif "reg_on_bias_column" in variant:
        Theta1_grad += lambda_ / m_train * Theta1  # BUG: column 0 (the bias) decays too
        Theta2_grad += lambda_ / m_train * Theta2
    else:
        Theta1_grad[:, 1:] += lambda_ / m_train * Theta1[:, 1:]
        Theta2_grad[:, 1:] += lambda_ / m_train * Theta2[:, 1:]

    grad = np.concatenate([Theta1_grad.ravel(), Theta2_grad.ravel()])
    return J, grad


def theta_views(nn_params):
    Theta1, Theta2 = unroll(nn_params)
    return {"Theta1": Theta1, "Theta2": Theta2}


def theta_views_split(nn_params):
    """The regularised arrays apart from the bias columns (all views into ``nn_params``)."""
    Theta1, Theta2 = unroll(nn_params)
    return {
        "Theta1[:, 0]": Theta1[:, 0],
        "Theta1[:, 1:]": Theta1[:, 1:],
        "Theta2[:, 0]": Theta2[:, 0],
        "Theta2[:, 1:]": Theta2[:, 1:],
    }


def recode_labels(labels, num_labels):
    return np.eye(num_labels)[np.asarray(labels)]


def recode_labels_octave(labels, num_labels):
    # BUG: ex4's y is 1..10 ("y == 1:num_labels"); here the labels are 0..9: 0 -> all zeros,
    # every other label one class off
    return (np.asarray(labels)[:, None] == np.arange(1, num_labels + 1)).astype(float)


def scale_pixels(pixels):
    return np.asarray(pixels, dtype=float) / 255.0


def _keywords(lambda_=0.0, variant=(), split=None, build=initial_nn_params, **extra):
    split = lambda_ > 0 if split is None else split
    views = theta_views_split if split else theta_views

    def cost(nn_params, X, Y):
        return nnCostFunction(
            nn_params, INPUT_LAYER_SIZE, HIDDEN_LAYER_SIZE, NUM_LABELS, X, Y, lambda_, M_TRAIN, variant
        )

    def gradients(nn_params, X, Y):
        _, grad = cost(nn_params, X, Y)
        return views(grad)

    def gradient_descent_step(nn_params, X, Y):
        _, grad = cost(nn_params, X, Y)
        nn_params -= ALPHA * grad

    objective = {"loss": "bce", "reduction": "mean"}
    if lambda_:
        objective["l2"] = {
            "coef": lambda_ / M_TRAIN,
            "params": ["Theta1[:, 1:]", "Theta2[:, 1:]"],
            "scale": 0.5,
        }
    keywords = dict(
        build=build,
        forward=predict_proba,
        objective=objective,
        params=views,
        gradients=gradients,
        update=gradient_descent_step,
        lr=ALPHA,
        loss=lambda nn_params, X, Y: float(cost(nn_params, X, Y)[0]),
        prepare_inputs=scale_pixels,
        encode_labels=recode_labels,
    )
    keywords.update(extra)
    return keywords


LAMBDA = 10.0

CASES = [
    Case("more_ng_ex4_correct", "flat-theta", _keywords()),
    Case("more_ng_ex4_regularised_correct", "flat-theta", _keywords(lambda_=LAMBDA)),
    Case(
        "more_ng_ex4_reg_on_bias_column",
        "flat-theta",
        _keywords(lambda_=LAMBDA, variant=("reg_on_bias_column",)),
        # randInitializeWeights gives the bias column U(-0.12, 0.12) too, so lambda/m * Theta[:, 0] shows
        [Bug("gradient", "l2-applied-to-biases", ("Theta1[:, 0]", "Theta2[:, 0]"))],
    ),
    Case(
        "more_ng_ex4_reg_in_cost_only",
        "flat-theta",
        _keywords(lambda_=LAMBDA, variant=("reg_in_cost_only",)),
        [Bug("gradient", "l2-missing-from-gradient", ("Theta1[:, 1:]", "Theta2[:, 1:]"))],
    ),
    Case(
        "more_ng_ex4_sigmoid_gradient_on_z",
        "flat-theta",
        _keywords(variant=("sigmoid_gradient_on_z",)),
        [Bug("gradient", "sigmoid-derivative-on-preactivation", ("Theta1",))],
    ),
    Case(
        "more_ng_ex4_grad_not_divided_by_m",
        "flat-theta",
        _keywords(variant=("grad_not_divided",)),
        [Bug("gradient", "gradient-not-averaged", ("Theta1", "Theta2"))],
    ),
    Case(
        "more_ng_ex4_cost_not_divided_by_m",
        "flat-theta",
        _keywords(variant=("cost_not_divided",)),
        [Bug("loss", "loss-not-averaged")],
    ),
    Case(
        "more_ng_ex4_zero_init",
        "flat-theta",
        _keywords(build=zero_nn_params),
        [Bug("symmetry", "zero-init-symmetry")],
    ),
    Case(
        "more_ng_ex4_octave_labels",
        "flat-theta",
        _keywords(encode_labels=recode_labels_octave),
        [Bug("data", "wrong-one-hot-encoding")],
    ),
]
