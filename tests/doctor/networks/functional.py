"""Plain functions over a dict of arrays: ``init_params``, ``forward``, ``backward`` returning a
dict of gradients, ``sgd_step``. Row vectors, ReLU hidden layers, softmax output. Each variant is
the line a person gets wrong, in an otherwise correct program.
"""

import numpy as np

from tests.doctor.networks import Bug, Case


def init_params(sizes=(20, 16, 8, 4), seed=0, bias=0.0):
    rng = np.random.default_rng(seed)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{i}"] = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_out))
        params[f"b{i}"] = np.full(n_out, bias)
    return params


def softmax(z):
    z = z - np.max(z, axis=1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=1, keepdims=True)


def softmax_axis0(z):
    e = np.exp(z - np.max(z, axis=0))
    return e / np.sum(e, axis=0)  # BUG: normalises each column (class) over the batch


def softmax_no_shift(z):
    e = np.exp(z)  # BUG: no max subtraction, exp overflows for large logits
    return e / np.sum(e, axis=1, keepdims=True)


def softmax_whole_batch(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e)  # BUG: one sum over the whole batch


def forward(params, X, act_out=softmax):
    z1 = X @ params["W1"] + params["b1"]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ params["W2"] + params["b2"]
    a2 = np.maximum(z2, 0)
    z3 = a2 @ params["W3"] + params["b3"]
    p = act_out(z3)
    cache = {"X": X, "z1": z1, "a1": a1, "z2": z2, "a2": a2, "z3": z3, "p": p}
    return p, cache


def backward(params, cache, Y):
    n = Y.shape[0]
    dz3 = (cache["p"] - Y) / n
    grads = {"W3": cache["a2"].T @ dz3, "b3": dz3.sum(axis=0)}
    da2 = dz3 @ params["W3"].T
    dz2 = da2 * (cache["z2"] > 0)
    grads["W2"] = cache["a1"].T @ dz2
    grads["b2"] = dz2.sum(axis=0)
    da1 = dz2 @ params["W2"].T
    dz1 = da1 * (cache["z1"] > 0)
    grads["W1"] = cache["X"].T @ dz1
    grads["b1"] = dz1.sum(axis=0)
    return grads


def backward_transposed(params, cache, Y):
    n = Y.shape[0]
    dz3 = (cache["p"] - Y) / n
    grads = {"W3": cache["a2"].T @ dz3, "b3": dz3.sum(axis=0)}
    da2 = dz3 @ params["W3"].T
    dz2 = da2 * (cache["z2"] > 0)
    grads["W2"] = cache["a1"].T @ dz2
    grads["b2"] = dz2.sum(axis=0)
    da1 = dz2 @ params["W2"]  # BUG: W2 not transposed (runs: W2 is 16x16)
    dz1 = da1 * (cache["z1"] > 0)
    grads["W1"] = cache["X"].T @ dz1
    grads["b1"] = dz1.sum(axis=0)
    return grads


def backward_mse(params, cache, Y):
    """For a squared-error objective on the probabilities: but dL/dz3 taken as p - y."""
    n = Y.shape[0]
    dz3 = (cache["p"] - Y) / n  # BUG: dL/dp, the softmax Jacobian never applied
    grads = {"W3": cache["a2"].T @ dz3, "b3": dz3.sum(axis=0)}
    da2 = dz3 @ params["W3"].T
    dz2 = da2 * (cache["z2"] > 0)
    grads["W2"] = cache["a1"].T @ dz2
    grads["b2"] = dz2.sum(axis=0)
    da1 = dz2 @ params["W2"].T
    dz1 = da1 * (cache["z1"] > 0)
    grads["W1"] = cache["X"].T @ dz1
    grads["b1"] = dz1.sum(axis=0)
    return grads


def backward_summed(params, cache, Y):
    dz3 = cache["p"] - Y  # BUG: forgot / n
    grads = {"W3": cache["a2"].T @ dz3, "b3": dz3.sum(axis=0)}
    da2 = dz3 @ params["W3"].T
    dz2 = da2 * (cache["z2"] > 0)
    grads["W2"] = cache["a1"].T @ dz2
    grads["b2"] = dz2.sum(axis=0)
    da1 = dz2 @ params["W2"].T
    dz1 = da1 * (cache["z1"] > 0)
    grads["W1"] = cache["X"].T @ dz1
    grads["b1"] = dz1.sum(axis=0)
    return grads


# ------------------------------------------------------------------ losses as the code reports them


def loss_clipped(p, Y):
    return -np.mean(np.sum(Y * np.log(np.clip(p, 1e-12, 1.0)), axis=1))


def loss_unclipped(p, Y):
    return -np.mean(np.sum(Y * np.log(p), axis=1))  # BUG: log(0) = -inf, and 0 * -inf = nan


def loss_over_all_entries(p, Y):
    return np.mean(-Y * np.log(np.clip(p, 1e-12, 1.0)))  # BUG: mean over n * C entries


def loss_summed(p, Y):
    return -np.sum(Y * np.log(np.clip(p, 1e-12, 1.0)))  # BUG: sum over the batch, not mean


def logsumexp_cross_entropy(z, Y):
    m = np.max(z, axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.sum(np.exp(z - m), axis=1))
    return np.mean(lse - np.sum(Y * z, axis=1))


def sgd_step(params, grads, lr):
    for k in params:
        params[k] -= lr * grads[k]


# ------------------------------------------------------------------ L2 variants

LAMBDA = 0.05
WEIGHTS = ("W1", "W2", "W3")


def l2_loss(params, X, Y):
    p, _ = forward(params, X)
    return loss_clipped(p, Y) + 0.5 * LAMBDA * sum(np.sum(params[k] ** 2) for k in WEIGHTS)


def l2_gradients(params, X, Y):
    p, cache = forward(params, X)
    grads = backward(params, cache, Y)
    for k in WEIGHTS:
        grads[k] += LAMBDA * params[k]
    return grads


def l2_gradients_missing(params, X, Y):
    p, cache = forward(params, X)
    return backward(params, cache, Y)  # BUG: the penalty is in the loss only


def l2_loss_no_half(params, X, Y):
    p, _ = forward(params, X)
    return loss_clipped(p, Y) + LAMBDA * sum(np.sum(params[k] ** 2) for k in WEIGHTS)


def l2_gradients_no_two(params, X, Y):
    p, cache = forward(params, X)
    grads = backward(params, cache, Y)
    for k in WEIGHTS:
        grads[k] += LAMBDA * params[k]  # BUG: d/dW of lambda |W|^2 is 2 lambda W
    return grads


def l2_gradients_every_key(params, X, Y):
    p, cache = forward(params, X)
    grads = backward(params, cache, Y)
    for k in params:  # BUG: decays the biases too; the loss regularises the weights only
        grads[k] += LAMBDA * params[k]
    return grads


def l2_objective(scale=0.5):
    return {
        "loss": "cross_entropy",
        "reduction": "mean",
        "l2": {"coef": LAMBDA, "params": list(WEIGHTS), "scale": scale},
    }


# ------------------------------------------------------------------ adapters


def _keywords(
    act_out=softmax,
    backward_fn=backward,
    loss_fn=loss_clipped,
    sizes=(20, 16, 8, 4),
    objective="cross_entropy",
):
    def grads(params, X, Y):
        p, cache = forward(params, X, act_out)
        return backward_fn(params, cache, Y)

    def update(params, X, Y):
        sgd_step(params, grads(params, X, Y), 0.1)

    return dict(
        build=lambda: init_params(sizes),
        forward=lambda params, X: forward(params, X, act_out)[0],
        objective=objective,
        params=lambda params: params,
        gradients=grads,
        update=update,
        lr=0.1,
        loss=lambda params, X, Y: float(loss_fn(forward(params, X, act_out)[0], Y)),
    )


def _l2_keywords(grads_fn, loss_fn, scale=0.5, bias=0.0):
    def update(params, X, Y):
        sgd_step(params, grads_fn(params, X, Y), 0.1)

    return dict(
        build=lambda: init_params(bias=bias),
        forward=lambda params, X: forward(params, X)[0],
        objective=l2_objective(scale),
        params=lambda params: dict(params),
        gradients=grads_fn,
        update=update,
        lr=0.1,
        loss=lambda params, X, Y: float(loss_fn(params, X, Y)),
    )


ALL = ("W1", "b1", "W2", "b2", "W3", "b3")
BIASES = ("b1", "b2", "b3")

CASES = [
    Case("functional_clipped_log", "functional", _keywords()),
    Case(
        "functional_logsumexp",
        "functional",
        dict(
            _keywords(),
            loss=lambda params, X, Y: float(logsumexp_cross_entropy(forward(params, X)[1]["z3"], Y)),
        ),
    ),
    Case("functional_l2_correct", "functional", _l2_keywords(l2_gradients, l2_loss)),
    Case(
        "functional_l2_missing_from_gradient",
        "functional",
        _l2_keywords(l2_gradients_missing, l2_loss),
        # lambda W missing from every weight's gradient; biases are not regularised, so right
        [Bug("gradient", "l2-missing-from-gradient", WEIGHTS)],
    ),
    Case(
        "functional_l2_wrong_factor",
        "functional",
        _l2_keywords(l2_gradients_no_two, l2_loss_no_half, scale=1.0),
        # penalty lambda |W|^2 (scale 1) with gradient lambda W: half the penalty's gradient
        [Bug("gradient", "l2-gradient-wrong-factor", WEIGHTS)],
    ),
    Case(
        "functional_l2_on_biases",
        "functional",
        _l2_keywords(l2_gradients_every_key, l2_loss, bias=0.1),
        # biases start at 0.1 (CS231n's "small positive bias" for ReLU), so lambda b shows at once
        [Bug("gradient", "l2-applied-to-biases", BIASES)],
    ),
    Case(
        "functional_transposed_weight",
        "functional",
        _keywords(backward_fn=backward_transposed, sizes=(20, 16, 16, 4)),
        # da1 = dz2 @ W2 (not W2.T): only the first layer's arrays are downstream of it
        [Bug("gradient", "transposed-weight-in-backward", ("W1", "b1"))],
    ),
    Case(
        "functional_softmax_axis0",
        "functional",
        _keywords(act_out=softmax_axis0),
        [Bug("forward", "softmax-wrong-axis")],
    ),
    Case(
        "functional_softmax_no_max_shift",
        "functional",
        _keywords(act_out=softmax_no_shift),
        # exact at ordinary inputs; exp overflows to inf / nan at inputs x1000
        [Bug("stress", "softmax-overflow-no-max-subtraction")],
    ),
    Case(
        "functional_softmax_whole_batch",
        "functional",
        _keywords(act_out=softmax_whole_batch),
        [Bug("forward", "softmax-wrong-for-batch")],
    ),
    Case(
        "functional_loss_over_classes",
        "functional",
        _keywords(loss_fn=loss_over_all_entries),
        [Bug("loss", "loss-divided-by-num-classes")],
    ),
    Case(
        "functional_loss_summed",
        "functional",
        _keywords(loss_fn=loss_summed),
        [Bug("loss", "loss-not-averaged")],
    ),
    Case(
        "functional_log_of_zero",
        "functional",
        _keywords(loss_fn=loss_unclipped),
        # the reported loss is inf / nan once a probability underflows to 0 (large logits)
        [Bug("loss", "log-of-zero")],
    ),
    Case(
        "functional_mse_missing_softmax_derivative",
        "functional",
        _keywords(
            backward_fn=backward_mse,
            loss_fn=lambda p, Y: 0.5 * np.mean(np.sum((p - Y) ** 2, axis=1)),
            objective={"loss": "mse", "reduction": "mean", "scale": 0.5},
        ),
        [Bug("gradient", "missing-softmax-derivative", ALL)],
    ),
    Case(
        "functional_loss_over_classes_and_sum_gradient",
        "functional",
        _keywords(loss_fn=loss_over_all_entries, backward_fn=backward_summed),
        # two bugs: the printed loss / C, and a summed (not averaged) gradient in every array
        [Bug("loss", "loss-divided-by-num-classes"), Bug("gradient", "gradient-not-averaged", ALL)],
    ),
]
