"""Correct networks called through the contract as a stranger reads it: every one must come back clean.

``params`` is omitted almost everywhere, so the doctor discovers the arrays: plain attributes,
lists (``weights[0]``), a dict that is the network, a dict attribute (``self.params``), tuples
(``layer1[0]``), layer objects in a list (``layers[0].W``), layer objects in a dict (``hidden.W``),
a list that is the network (``[0]``). Distractors that are not trainable sit beside them: an int
step counter, caches of the last forward pass, optimizer state (velocity, m, v), a gradient
buffer, the last dropout mask, a boolean mask that forward reads, stored gradients.

The names in gradient dicts and labels are the doctor's, as its note "trainable arrays found: ..."
printed them (the issue does not say how arrays in containers are named): ``layers[0].W``,
``hidden.W`` for objects in a dict, ``[0]`` for a list net, and for a lone ``self.params`` dict
its keys alone (``W1``; but see ``contract_params_dict_with_grads_dict``).

The keywords vary too: ``objective`` as a bare string ("cross_entropy", "mse", "bce") and as full
dicts (sum reduction, mse scale 1, L2 on the weights); ``lr`` as a float and as ``(net) -> float``;
``optimizer`` dicts (sgd, momentum, adam) whose ``step(net)`` reads the gradients the
``gradients`` callable stored on the net; ``train_epoch`` alone; ``prepare_inputs`` with
``encode_labels``; ``data`` as Python lists and as (X, integer labels); ``check_batch=1`` for
per-record code; ``seed`` for inverted dropout drawn from ``np.random`` in both forward and the
training step (forward is the training-mode pass, so the objective it defines is the one the
step descends, mask for mask).

Each case was checked with a scratch script (not committed): central differences of the stated
objective, computed from ``forward``, against ``gradients`` and against (old - new) / lr of
``update`` (max relative error per array <= 1e-7), and the optimizer steps against hand-written
references.
"""

import numpy as np

from tests.doctor.networks import Case
from tests.doctor.networks.contract_core import C, D, H, initial, softmax, task
from tests.doctor.networks.contract_make import ACCESS, network

ADAM = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
X_TASK, LABELS = task()
ONE_HOT = np.eye(C)[LABELS]


class PerRecord:
    """Per-record code: ``train(x, y)`` on one record at a time, x of shape (1, D)."""

    def __init__(self):
        p = initial(seed=5)
        self.w_ih, self.b_h, self.w_ho, self.b_o = p["W1"], p["b1"], p["W2"], p["b2"]
        self.lr = 0.2
        self.hidden_out = None  # cache

    def run(self, X):
        h = np.tanh(X @ self.w_ih + self.b_h)
        self.hidden_out = h
        return softmax(h @ self.w_ho + self.b_o)

    def train(self, X, Y):
        assert X.shape[0] == 1, "one record at a time"
        x, y = X[0], Y[0]
        h = np.tanh(x @ self.w_ih + self.b_h)
        z = h @ self.w_ho + self.b_o
        e = np.exp(z - z.max())
        p = e / e.sum()
        delta_o = p - y
        delta_h = (self.w_ho @ delta_o) * (1.0 - h**2)
        self.w_ho -= self.lr * np.outer(h, delta_o)
        self.b_o -= self.lr * delta_o
        self.w_ih -= self.lr * np.outer(x, delta_h)
        self.b_h -= self.lr * delta_h


SPECS = [
    network("contract_attr_update_string_ce", "attr"),
    network("contract_attr_gradients_distractors", "attr", mode="gradients", distractors=True),
    network("contract_lists_update_lr_callable", "lists", lr_callable=True, distractors=True),
    network("contract_dict_net_gradients_mse_string", "dict", "mse", mode="gradients"),
    network("contract_dict_net_update_distractors", "dict", distractors=True),
    network("contract_params_attr_update", "params_attr", "cross_entropy", with_loss=True),
    network(
        "contract_tuples_both_sum",
        "tuples",
        {"loss": "cross_entropy", "reduction": "sum"},
        mode="both",
        lr=0.01,
    ),
    network("contract_layers_update_distractors", "layers", distractors=True, with_loss=True),
    network("contract_objdict_gradients", "objdict", mode="gradients"),
    network("contract_listnet_update", "listnet", act="sigmoid"),
    network(
        "contract_attr_bce_string_sigmoid",
        "attr",
        "bce",
        out="sigmoid",
        mode="both",
        with_loss=True,
    ),
    network(
        "contract_lists_mse_scale1_dict",
        "lists",
        {"loss": "mse", "reduction": "mean", "scale": 1.0},
        mode="both",
        lr=0.5,
    ),
    network(
        "contract_attr_l2_weights",
        "attr",
        {"loss": "cross_entropy", "l2": {"coef": 1e-2, "params": ["W1", "W2"], "scale": 0.5}},
        mode="both",
        with_loss=True,
    ),
    network(
        "contract_layers_l2_discovered_names",
        "layers",
        {"loss": "cross_entropy", "l2": {"coef": 5e-3, "params": ["layers[0].W", "layers[1].W"]}},
        mode="update",
    ),
    network("contract_attr_optimizer_sgd", "attr", mode="optimizer", kind="sgd", distractors=True),
    network(
        "contract_lists_optimizer_momentum",
        "lists",
        mode="optimizer",
        kind="momentum",
        hyper={"lr": 0.05, "momentum": 0.9},
    ),
    network("contract_layers_optimizer_adam", "layers", mode="optimizer", kind="adam", hyper=ADAM),
    network("contract_tuples_train_epoch_only", "tuples", mode="train_epoch", lr=0.3),
    network(
        "contract_attr_pixels_and_labels",
        "attr",
        mode="update",
        prepare_inputs=lambda pixels: np.asarray(pixels, dtype=float) / 255.0,
        encode_labels=lambda labels, n: np.eye(n)[labels],
    ),
    network(
        "contract_objdict_data_lists",
        "objdict",
        mode="both",
        data=(X_TASK.tolist(), ONE_HOT.tolist()),
    ),
    network("contract_lists_data_int_labels", "lists", mode="update", data=(X_TASK, LABELS)),
    network("contract_attr_dropout_seed", "attr", mode="both", keep=0.8, seed=123, distractors=True),
    network("contract_lists_dropout_seed_update", "lists", mode="update", keep=0.8, seed=11),
]

CASES = [Case(name, "contract (params omitted)", keywords) for name, keywords in SPECS]

CASES.append(
    Case(
        "contract_per_record_check_batch_1",
        "contract (params omitted)",
        dict(
            build=PerRecord,
            forward=lambda net, X: net.run(np.asarray(X, dtype=float)),
            objective="cross_entropy",
            update=lambda net, X, Y: net.train(X, Y),
            lr=lambda net: net.lr,
            check_batch=1,
        ),
    )
)

# The doctor's naming is unstable here: with a second dict attribute (the gradient buffers the code
# keeps) the arrays are named params['W1'], ... instead of W1, ..., so gradients keyed by the dict's
# own keys are refused. A stranger keys them W1; the keys match exactly one trainable array each.
_name, _keywords = network(
    "contract_params_dict_with_grads_dict", "params_attr", mode="gradients", gradient_keys="canonical"
)
_build = _keywords["build"]


def _build_with_grads():
    net = _build()
    net.grads = {k: np.zeros_like(v) for k, v in net.params.items()}
    return net


_keywords["build"] = _build_with_grads
CASES.append(Case(_name, "contract (params omitted)", _keywords, note="params['W1'] vs W1 naming"))

# Constant input statistics that forward reads: not trainable (gradients() never returns them, the
# update never moves them), yet a stranger cannot tell the doctor so without writing params=.
_name, _keywords = network("contract_attr_constant_normalisation", "attr", mode="both", normalise=True)
CASES.append(Case(_name, "contract (params omitted)", _keywords, note="mean/std are constants"))
assert len({H, D}) == 2 and ACCESS
