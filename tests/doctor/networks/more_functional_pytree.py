"""A JAX/Flax-flavoured functional style without JAX: the parameters are a nested dict
``{"dense_0": {"kernel", "bias"}, ...}`` (a pytree), ``tree_map`` over it, ``apply(params, x)``,
a hand-written ``grad_fn(params, x, y)`` returning a pytree of the same shape, and an ``sgd`` that
returns a NEW pytree (``update`` returns the new net; nothing is mutated). The learning rate is
``eta`` and reaches the doctor as a callable. Leaky-ReLU and tanh hidden layers; an optax-like
momentum whose state is threaded through a train-state dict. Second, independent collection.
"""

import numpy as np

from tests.doctor.networks import Bug, Case

NEG_SLOPE = 0.1


def tree_map(f, tree, *rest):
    if isinstance(tree, dict):
        return {k: tree_map(f, tree[k], *(r[k] for r in rest)) for k in tree}
    return f(tree, *rest)


def flatten(tree, prefix=""):
    flat = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten(v, name + "/"))
        else:
            flat[name] = v
    return flat


def init(layer_sizes, key=0):
    rng = np.random.default_rng(key)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        params[f"dense_{i}"] = {
            "kernel": rng.normal(size=(fan_in, fan_out)) * np.sqrt(1.0 / fan_in),  # lecun_normal
            "bias": np.zeros(fan_out),
        }
    return params


def leaky_relu(z):
    return np.where(z > 0, z, NEG_SLOPE * z)


def leaky_relu_grad(z):
    return np.where(z > 0, 1.0, NEG_SLOPE)


def log_softmax(z, axis=-1):
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def n_layers(params):
    return len(params)


def apply(params, x, act=leaky_relu, log_softmax_axis=-1, return_trace=False):
    zs, hs = [], [x]
    h = x
    L = n_layers(params)
    for i in range(L):
        layer = params[f"dense_{i}"]
        z = h @ layer["kernel"] + layer["bias"]
        zs.append(z)
        if i < L - 1:
            h = act(z)
            hs.append(h)
    logp = log_softmax(zs[-1], axis=log_softmax_axis)
    if return_trace:
        return logp, zs, hs
    return logp


def predict(params, x, **kw):
    return np.exp(apply(params, x, **kw))


def loss_fn(params, x, y, **kw):
    return float(-np.mean(np.sum(y * apply(params, x, **kw), axis=1)))


def mse_loss_fn(params, x, y):
    return float(0.5 * np.mean(np.sum((predict(params, x) - y) ** 2, axis=1)))


def grad_fn(params, x, y, act="leaky", variant=(), axis=-1):
    """dloss/dparams by hand, the same pytree structure as ``params``."""
    L = n_layers(params)
    if act == "tanh":
        logp, zs, hs = apply(params, x, act=np.tanh, log_softmax_axis=axis, return_trace=True)
    else:
        logp, zs, hs = apply(params, x, log_softmax_axis=axis, return_trace=True)
    p = np.exp(logp)
    n = x.shape[0]
    if "error_target_minus_output" in variant:
        delta = (y - p) / n  # BUG: the negative gradient, then sgd subtracts it
    else:
        delta = (p - y) / n
    grads = {}
    for i in reversed(range(L)):
        grads[f"dense_{i}"] = {"kernel": hs[i].T @ delta, "bias": delta.sum(axis=0)}
        if i == 0:
            break
        upstream = delta @ params[f"dense_{i}"]["kernel"].T
        if act == "tanh":
            delta = upstream * (1.0 - hs[i] ** 2)
        elif "mask_from_upstream" in variant:
            delta = upstream * leaky_relu_grad(upstream)  # BUG: slope chosen by the gradient's sign
        elif "first_layer_no_derivative" in variant and i == 1:
            delta = upstream  # BUG: leaky_relu_grad(zs[0]) forgotten for the first hidden layer
        else:
            delta = upstream * leaky_relu_grad(zs[i - 1])
    return grads


def mse_grad_fn(params, x, y):
    """For 0.5 |softmax(z) - y|^2: but dz taken as p - y (cross-entropy's)."""
    logp, zs, hs = apply(params, x, return_trace=True)
    p = np.exp(logp)
    n = x.shape[0]
    delta = (p - y) / n  # BUG: dL/dp, the softmax Jacobian never applied
    grads = {}
    for i in reversed(range(n_layers(params))):
        grads[f"dense_{i}"] = {"kernel": hs[i].T @ delta, "bias": delta.sum(axis=0)}
        if i:
            delta = (delta @ params[f"dense_{i}"]["kernel"].T) * leaky_relu_grad(zs[i - 1])
    return grads


def sgd(params, grads, eta):
    return tree_map(lambda p, g: p - eta * g, params, grads)


ETA = 0.2


def _keywords(sizes=(20, 16, 8, 4), act="leaky", variant=(), axis=-1, loss="cross_entropy"):
    act_fn = np.tanh if act == "tanh" else leaky_relu
    grad = mse_grad_fn if loss == "mse" else (lambda params, x, y: grad_fn(params, x, y, act, variant, axis))

    def update(params, x, y):
        return sgd(params, grad(params, x, y), ETA)  # a new pytree

    def reported_loss(params, x, y):
        if loss == "mse":
            return mse_loss_fn(params, x, y)
        return loss_fn(params, x, y, act=act_fn, log_softmax_axis=axis)

    return dict(
        build=lambda: init(sizes),
        forward=lambda params, x: predict(params, x, act=act_fn, log_softmax_axis=axis),
        objective={"loss": "mse", "reduction": "mean", "scale": 0.5} if loss == "mse" else "cross_entropy",
        params=flatten,
        gradients=lambda params, x, y: flatten(grad(params, x, y)),
        update=update,
        lr=lambda params: ETA,
        loss=reported_loss,
    )


# ------------------------------------------------------------------ optax-like momentum, train state


def momentum_init(params):
    return tree_map(np.zeros_like, params)


def momentum_update(grads, state, params, eta, mu):
    velocity = tree_map(lambda v, g: mu * v + g, state, grads)
    new_params = tree_map(lambda p, v: p - eta * v, params, velocity)
    return new_params, velocity


def create_train_state(sizes=(20, 16, 8, 4)):
    params = init(sizes)
    return {"params": params, "opt_state": momentum_init(params), "grads": None, "eta": 0.05, "mu": 0.9}


def state_gradients(state, x, y):
    state["grads"] = grad_fn(state["params"], x, y)
    return flatten(state["grads"])


def apply_gradients(state):
    state["params"], state["opt_state"] = momentum_update(
        state["grads"], state["opt_state"], state["params"], state["eta"], state["mu"]
    )


def apply_gradients_state_dropped(state):
    # BUG: the new momentum state is thrown away; opt_state stays zeros, every step is plain SGD
    state["params"], _ = momentum_update(
        state["grads"], state["opt_state"], state["params"], state["eta"], state["mu"]
    )


def _state_keywords(step):
    return dict(
        build=create_train_state,
        forward=lambda state, x: predict(state["params"], x),
        objective="cross_entropy",
        params=lambda state: flatten(state["params"]),
        gradients=state_gradients,
        loss=lambda state, x, y: loss_fn(state["params"], x, y),
        optimizer={
            "kind": "momentum",
            "gradients": state_gradients,
            "step": step,
            "hyper": lambda state: {"lr": state["eta"], "momentum": state["mu"]},
        },
    )


def names(layers, which=("kernel", "bias")):
    return tuple(f"dense_{i}/{w}" for i in layers for w in which)


ALL3 = names(range(3))

CASES = [
    Case("more_fn_leaky_relu_correct", "functional-pytree", _keywords()),
    Case(
        "more_fn_tanh_three_hidden_correct",
        "functional-pytree",
        _keywords(sizes=(20, 16, 12, 8, 4), act="tanh"),
    ),
    Case("more_fn_momentum_train_state_correct", "functional-pytree", _state_keywords(apply_gradients)),
    Case(
        "more_fn_leaky_slope_from_gradient",
        "functional-pytree",
        _keywords(variant=("mask_from_upstream",)),
        # both hidden deltas pick the slope by the upstream gradient's sign; dense_2 is right
        [Bug("gradient", "relu-derivative-wrong-tensor", names((0, 1)))],
    ),
    Case(
        "more_fn_first_layer_no_derivative",
        "functional-pytree",
        _keywords(variant=("first_layer_no_derivative",)),
        [Bug("gradient", "missing-activation-derivative", names((0,)))],
    ),
    Case(
        "more_fn_target_minus_output",
        "functional-pytree",
        _keywords(variant=("error_target_minus_output",)),
        [Bug("gradient", "gradient-ascent-sign-error", ALL3)],
    ),
    Case(
        "more_fn_log_softmax_axis0",
        "functional-pytree",
        # log_softmax(z, axis=0): normalised over the batch; loss and forward both use it
        _keywords(axis=0),
        [Bug("forward", "softmax-wrong-axis")],
    ),
    Case(
        "more_fn_mse_no_softmax_jacobian",
        "functional-pytree",
        _keywords(loss="mse"),
        [Bug("gradient", "missing-softmax-derivative", ALL3)],
    ),
    Case(
        "more_fn_momentum_state_dropped",
        "functional-pytree",
        _state_keywords(apply_gradients_state_dropped),
        [Bug("optimizer", "momentum-velocity-not-stored", ALL3)],
    ),
]
