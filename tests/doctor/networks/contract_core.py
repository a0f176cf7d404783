"""Shared code of the ``contract_*`` modules: one small MLP (D-H-C) stored in many containers.

Not a collection module itself (no ``CASES``). Each storage style is a ``build`` returning the net
and an accessor ``arrays(net) -> {"W1", "b1", "W2", "b2": live array}``; the user-facing callables
(``forward``, ``gradients``, ``update``, ...) are written over the accessor the way a person would
write them over their own container, and gradient dicts are keyed by the names the doctor reports
when ``params`` is omitted (``NAMES``; see ``contract_correct`` for how those were read).
"""

import numpy as np

D, H, C = 12, 7, 4
CANON = ("W1", "b1", "W2", "b2")


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def initial(seed=0, zero=False):
    rng = np.random.default_rng(seed)
    if zero:
        return {"W1": np.zeros((D, H)), "b1": np.zeros(H), "W2": np.zeros((H, C)), "b2": np.zeros(C)}
    return {
        "W1": rng.normal(0.0, 1.0 / np.sqrt(D), (D, H)),
        "b1": rng.normal(0.0, 0.1, H),
        "W2": rng.normal(0.0, 1.0 / np.sqrt(H), (H, C)),
        "b2": rng.normal(0.0, 0.1, C),
    }


class Obj:
    """A plain object to hang attributes on."""


class Layer:
    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None  # cache of the last forward pass
        self.dW = np.zeros_like(W)  # gradient buffers
        self.db = np.zeros_like(b)


# ------------------------------------------------------------------ storage styles
# each: build(**init) -> net, arrays(net) -> {canonical: live array}, names {canonical: doctor's name}


def build_attr(**init):
    p = initial(**init)
    net = Obj()
    net.W1, net.b1, net.W2, net.b2 = p["W1"], p["b1"], p["W2"], p["b2"]
    return net


def arrays_attr(net):
    return {"W1": net.W1, "b1": net.b1, "W2": net.W2, "b2": net.b2}


def build_lists(**init):
    p = initial(**init)
    net = Obj()
    net.weights = [p["W1"], p["W2"]]
    net.biases = [p["b1"], p["b2"]]
    return net


def arrays_lists(net):
    return {"W1": net.weights[0], "b1": net.biases[0], "W2": net.weights[1], "b2": net.biases[1]}


def build_dict(**init):
    return initial(**init)


def arrays_dict(net):
    return {k: net[k] for k in CANON}


def build_params_attr(**init):
    net = Obj()
    net.params = initial(**init)
    return net


def arrays_params_attr(net):
    return {k: net.params[k] for k in CANON}


def build_tuples(**init):
    p = initial(**init)
    net = Obj()
    net.layer1 = (p["W1"], p["b1"])
    net.layer2 = (p["W2"], p["b2"])
    return net


def arrays_tuples(net):
    return {"W1": net.layer1[0], "b1": net.layer1[1], "W2": net.layer2[0], "b2": net.layer2[1]}


def build_layers(**init):
    p = initial(**init)
    net = Obj()
    net.layers = [Layer(p["W1"], p["b1"]), Layer(p["W2"], p["b2"])]
    return net


def arrays_layers(net):
    (l1, l2) = net.layers
    return {"W1": l1.W, "b1": l1.b, "W2": l2.W, "b2": l2.b}


def build_objdict(**init):
    p = initial(**init)
    return {"hidden": Layer(p["W1"], p["b1"]), "out": Layer(p["W2"], p["b2"])}


def arrays_objdict(net):
    return {"W1": net["hidden"].W, "b1": net["hidden"].b, "W2": net["out"].W, "b2": net["out"].b}


def build_listnet(**init):
    p = initial(**init)
    return [p["W1"], p["b1"], p["W2"], p["b2"]]


def arrays_listnet(net):
    return dict(zip(CANON, net))


STYLES = {
    "attr": (build_attr, arrays_attr, {k: k for k in CANON}),
    "lists": (
        build_lists,
        arrays_lists,
        {"W1": "weights[0]", "b1": "biases[0]", "W2": "weights[1]", "b2": "biases[1]"},
    ),
    "dict": (build_dict, arrays_dict, {k: k for k in CANON}),
    # the doctor's naming: a lone dict attribute's arrays are named by their keys alone
    "params_attr": (build_params_attr, arrays_params_attr, {k: k for k in CANON}),
    "tuples": (
        build_tuples,
        arrays_tuples,
        {"W1": "layer1[0]", "b1": "layer1[1]", "W2": "layer2[0]", "b2": "layer2[1]"},
    ),
    "layers": (
        build_layers,
        arrays_layers,
        {"W1": "layers[0].W", "b1": "layers[0].b", "W2": "layers[1].W", "b2": "layers[1].b"},
    ),
    "objdict": (
        build_objdict,
        arrays_objdict,
        {"W1": "hidden.W", "b1": "hidden.b", "W2": "out.W", "b2": "out.b"},
    ),
    "listnet": (build_listnet, arrays_listnet, {"W1": "[0]", "b1": "[1]", "W2": "[2]", "b2": "[3]"}),
}


# ------------------------------------------------------------------ the maths, over canonical arrays


def run(p, X, act="tanh", out="softmax", keep=None):
    """(hidden, outputs, mask): forward pass; ``keep`` draws an inverted-dropout mask from np.random."""
    z1 = X @ p["W1"] + p["b1"]
    h = np.tanh(z1) if act == "tanh" else sigmoid(z1)
    mask = None
    hd = h
    if keep is not None:
        mask = (np.random.rand(*h.shape) < keep) / keep
        hd = h * mask
    z2 = hd @ p["W2"] + p["b2"]
    P = softmax(z2) if out == "softmax" else sigmoid(z2)
    return h, hd, mask, P


def objective_value(P, Y, loss="cross_entropy", reduction="mean", scale=0.5):
    n = len(Y)
    if loss == "cross_entropy":
        total = -np.sum(Y * np.log(np.clip(P, 1e-300, None)))
    elif loss == "bce":
        total = -np.sum(Y * np.log(P) + (1 - Y) * np.log(1 - P))
    else:
        total = scale * np.sum((P - Y) ** 2)
    return total / n if reduction == "mean" else total


def backward(
    p,
    X,
    Y,
    act="tanh",
    out="softmax",
    loss="cross_entropy",
    reduction="mean",
    scale=0.5,
    keep=None,
    bug=None,
    l2=None,
):
    """Canonical gradients of the objective (``bug`` injects one mistake; ``l2`` = (coef, canon names))."""
    h, hd, mask, P = run(p, X, act, out, keep)
    n = len(X)
    if bug == "last_sample":
        X, Y, h, hd, P = X[-1:], Y[-1:], h[-1:], hd[-1:], P[-1:]
        mask = None if mask is None else mask[-1:]
    if loss == "cross_entropy" or loss == "bce":
        dz2 = P - Y
    else:
        g = 2.0 * scale * (P - Y)
        if out == "softmax":
            dz2 = P * (g - np.sum(g * P, axis=1, keepdims=True))
        else:
            dz2 = g * P * (1 - P)
    if reduction == "mean" and bug != "sum_not_mean":
        dz2 = dz2 / n
    dhd = dz2 @ p["W2"].T
    dh = dhd if (mask is None or bug == "dropout_no_mask") else dhd * mask
    if bug != "no_act_deriv":
        dh = dh * ((1.0 - h**2) if act == "tanh" else h * (1.0 - h))
    grads = {"W1": X.T @ dh, "b1": dh.sum(axis=0), "W2": hd.T @ dz2, "b2": dz2.sum(axis=0)}
    if bug == "collapse_b2":
        grads["b2"] = np.full_like(grads["b2"], dz2.sum())
    if bug == "sign_W2":
        grads["W2"] = -grads["W2"]
    if l2 is not None:
        coef, names = l2
        for k in names:
            grads[k] = grads[k] + coef * p[k]
        if bug == "l2_biases":
            for k in ("b1", "b2"):
                grads[k] = grads[k] + coef * p[k]
    return grads, P


def one_hot(labels, n_classes=C):
    return np.eye(n_classes)[np.asarray(labels)]


def task(n=24, seed=3):
    """A small learnable task: (X (n, D), integer labels (n,))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.5, (C, D))
    labels = np.arange(n) % C
    X = centres[labels] + rng.normal(0.0, 0.5, (n, D))
    return X, labels
