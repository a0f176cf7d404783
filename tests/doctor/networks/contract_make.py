"""The factory of the ``contract_*`` cases: one network in a chosen container, called through the
contract as a stranger reads issue 10 (``params`` omitted unless asked for). Not a collection
module itself (no ``CASES``)."""

import numpy as np

from tests.doctor.networks.contract_core import CANON, STYLES, backward, objective_value, run

#: case name -> (arrays(net) accessor, {canonical: doctor's name}) for scratch verification
ACCESS = {}


def _objective_parts(objective):
    if isinstance(objective, str):
        return {"loss": objective, "reduction": "mean", "scale": 0.5, "l2": None}
    l2 = objective.get("l2")
    return {
        "loss": objective["loss"],
        "reduction": objective.get("reduction", "mean"),
        "scale": objective.get("scale", 0.5),
        "l2": l2,
    }


def network(
    name,
    style,
    objective="cross_entropy",
    *,
    act="tanh",
    out="softmax",
    mode="update",  # "gradients" | "update" | "both" | "optimizer" | "train_epoch"
    lr=0.1,
    lr_callable=False,
    kind="sgd",  # optimizer kind
    hyper=None,
    bug=None,
    opt_bug=None,
    keep=None,
    distractors=False,
    normalise=False,
    accumulate=False,
    loss_bug=None,
    with_loss=False,
    zero=False,
    gradient_keys="names",  # "names" | "canonical"
    **extra,
):
    """(name, keywords) for one network; ``extra`` are passed on as contract keywords."""
    build_store, arrays, names = STYLES[style]
    parts = _objective_parts(objective)
    l2 = None
    if parts["l2"] is not None:
        inverse = {v: k for k, v in names.items()}
        l2 = (parts["l2"]["coef"], [inverse[n] for n in parts["l2"]["params"]])
    config = dict(act=act, out=out, loss=parts["loss"], reduction=parts["reduction"], scale=parts["scale"])
    is_dict = style in ("dict", "objdict")

    def slot(net, key, default):
        """Where bookkeeping lives: an attribute of an object net, a key of a dict net."""
        if is_dict:
            return net.setdefault(key, default)
        if not hasattr(net, key):
            setattr(net, key, default)
        return getattr(net, key)

    def put(net, key, value):
        if is_dict:
            net[key] = value
        else:
            setattr(net, key, value)

    def build():
        net = build_store(zero=zero)
        if not is_dict and style != "listnet":
            net.lr = lr
        if distractors and style != "listnet":
            p = arrays(net)
            put(net, "t", 0)  # an int step counter
            put(net, "cache", {"h": np.zeros((1, p["W1"].shape[1])), "P": np.zeros((1, p["W2"].shape[1]))})
            put(net, "velocity", {k: np.zeros_like(v) for k, v in p.items()})
            put(net, "m", [np.zeros_like(v) for v in p.values()])
            put(net, "v", [np.zeros_like(v) for v in p.values()])
            put(net, "grad_W1", np.zeros_like(p["W1"]))
            put(net, "last_mask", np.ones((1, p["W1"].shape[1])))
            put(net, "active", np.ones(p["W1"].shape[1], dtype=bool))  # a boolean mask forward reads
        if normalise:
            put(net, "mean", np.full(arrays(net)["W1"].shape[0], 0.25))  # constant input statistics
            put(net, "std", np.full(arrays(net)["W1"].shape[0], 1.5))
        return net

    def inputs(net, X):
        X = np.asarray(X, dtype=float)
        if normalise:
            X = (X - (net["mean"] if is_dict else net.mean)) / (net["std"] if is_dict else net.std)
        return X

    def masked(net, p):
        if distractors and style != "listnet":
            active = net["active"] if is_dict else net.active
            return {**p, "W2": p["W2"] * active[:, None]}  # all True: the same network
        return p

    def forward(net, X):
        p = masked(net, arrays(net))
        h, hd, mask, P = run(p, inputs(net, X), act, out, keep)
        if distractors and style != "listnet":
            put(net, "cache", {"h": hd, "P": P})
            if mask is not None:
                put(net, "last_mask", mask)
        return P

    def keyed(g):
        if gradient_keys == "canonical":
            return dict(g)
        return {names[k]: v for k, v in g.items()}

    def gradients(net, X, Y):
        p = masked(net, arrays(net))
        g, P = backward(p, inputs(net, X), np.asarray(Y, dtype=float), keep=keep, bug=bug, l2=l2, **config)
        if accumulate:  # buffers that are added to and never reset
            buf = slot(net, "grad_buffer", {k: np.zeros_like(v) for k, v in g.items()})
            for k in g:
                buf[k] += g[k]
            g = {k: buf[k].copy() for k in g}
        return g

    def current_lr(net):
        return net["lr"] if is_dict and "lr" in net else (lr if is_dict or style == "listnet" else net.lr)

    def update(net, X, Y):
        g = gradients(net, X, Y)
        step = current_lr(net)
        live = arrays(net)
        for k in CANON:
            live[k] -= step * g[k]  # in place: tuples and lists keep their arrays
        if distractors and style != "listnet":
            put(net, "t", (net["t"] if is_dict else net.t) + 1)

    def train_epoch(net, X, Y, epoch):
        X, Y = np.asarray(X, dtype=float), np.asarray(Y, dtype=float)
        for start in range(0, len(X), 8):
            update(net, X[start : start + 8], Y[start : start + 8])

    def loss(net, X, Y):
        P = forward(net, X)
        Y = np.asarray(Y, dtype=float)
        value = objective_value(P, Y, parts["loss"], parts["reduction"], parts["scale"])
        if l2 is not None:
            p = arrays(net)
            value += parts["l2"].get("scale", 0.5) * l2[0] * sum(np.sum(p[k] ** 2) for k in l2[1])
        if loss_bug == "per_class":
            value /= Y.shape[1]
        if loss_bug == "sum":
            value *= len(Y)
        return value

    # optimizer: gradients stored on the net, step(net) reads them
    def opt_gradients(net, X, Y):
        g = gradients(net, X, Y)
        put(net, "stored_grads", {k: v.copy() for k, v in g.items()})
        return keyed(g)

    hyper_values = dict(hyper or {})
    hyper_values.setdefault("lr", lr)

    def step(net):
        g = net["stored_grads"] if is_dict else net.stored_grads
        live = arrays(net)
        h = hyper_values
        if kind == "sgd":
            for k in CANON:
                live[k] -= h["lr"] * g[k]
        elif kind == "momentum":
            vel = slot(net, "opt_velocity", {k: np.zeros_like(v) for k, v in live.items()})
            for k in CANON:
                v = h["momentum"] * vel[k] - h["lr"] * g[k]
                if opt_bug != "velocity_not_stored":
                    vel[k] = v
                live[k] += v
        else:
            state = slot(net, "opt_adam", {"t": 0, "m": {}, "v": {}})
            state["t"] += 1
            t = state["t"]
            for k in CANON:
                m = state["m"].get(k, np.zeros_like(g[k]))
                v = state["v"].get(k, np.zeros_like(g[k]))
                m = h["beta1"] * m + (1 - h["beta1"]) * g[k]
                v = h["beta2"] * v + (1 - h["beta2"]) * g[k] ** 2
                state["m"][k], state["v"][k] = m, v
                mhat, vhat = m / (1 - h["beta1"] ** t), v / (1 - h["beta2"] ** t)
                denom = vhat if opt_bug == "missing_sqrt" else np.sqrt(vhat)
                live[k] -= h["lr"] * mhat / (denom + h["eps"])

    keywords = dict(build=build, forward=forward, objective=objective)
    if mode in ("gradients", "both"):
        keywords["gradients"] = lambda net, X, Y: keyed(gradients(net, X, Y))
    if mode in ("update", "both"):
        keywords["update"] = update
        keywords["lr"] = current_lr if lr_callable else lr
    if mode == "train_epoch":
        keywords["train_epoch"] = train_epoch
    if mode == "optimizer":
        keywords["optimizer"] = {
            "kind": kind,
            "gradients": opt_gradients,
            "step": step,
            "hyper": lambda net: dict(hyper_values),
        }
    if with_loss or loss_bug:
        keywords["loss"] = loss
    keywords.update(extra)
    ACCESS[name] = (arrays, names)
    return name, keywords
