"""Broken networks called through the contract with ``params`` omitted: the labels' arrays are the
doctor's discovered names (``weights[1]``, ``layers[0].W``, ``hidden.b``, ``layer2[1]``, ``[2]``).

One mistake each, in the same containers and keyword variations as ``contract_correct`` (its twins):
the output bias gradient summed to a scalar, the hidden activation's derivative left out, the
gradient summed instead of averaged, the sign of one array's step flipped, L2 decay applied to
biases the objective leaves out, only the last record used, the dropout mask forgotten in backward
(seeded), momentum whose velocity is never stored, Adam without the square root, a loss divided by
the number of classes or summed, unscaled pixels, a shifted one-hot encoding, gradient buffers
never reset, all-zero initialisation in code driven only by ``train_epoch``.

Each was checked with a scratch script (not committed): central differences of the stated
objective against the code's gradients, and the wrong arrays are exactly the labelled ones
(relative error >= 1e-2 there, <= 1e-7 elsewhere).
"""

import numpy as np

from tests.doctor.networks import Bug, Case
from tests.doctor.networks.contract_core import STYLES
from tests.doctor.networks.contract_make import network

ADAM = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


def names(style, *canon):
    return tuple(STYLES[style][2][k] for k in canon)


ALL = ("W1", "b1", "W2", "b2")

SPECS = [
    (
        network("contract_bad_lists_b2_scalar", "lists", bug="collapse_b2", distractors=True),
        [Bug("gradient", "bias-grad-collapsed-to-scalar", names("lists", "b2"))],
    ),
    (
        network("contract_bad_layers_no_tanh_derivative", "layers", bug="no_act_deriv", distractors=True),
        [Bug("gradient", "missing-activation-derivative", names("layers", "W1", "b1"))],
    ),
    (
        network("contract_bad_attr_not_averaged", "attr", mode="gradients", bug="sum_not_mean"),
        [Bug("gradient", "gradient-not-averaged", names("attr", *ALL))],
    ),
    (
        network("contract_bad_objdict_sign_W2", "objdict", mode="both", bug="sign_W2"),
        [Bug("gradient", "gradient-ascent-sign-error", names("objdict", "W2"))],
    ),
    (
        network(
            "contract_bad_tuples_l2_on_biases",
            "tuples",
            {"loss": "cross_entropy", "l2": {"coef": 0.05, "params": ["layer1[0]", "layer2[0]"]}},
            bug="l2_biases",
        ),
        [Bug("gradient", "l2-applied-to-biases", names("tuples", "b1", "b2"))],
    ),
    (
        network("contract_bad_listnet_last_sample", "listnet", bug="last_sample"),
        [Bug("gradient", "only-last-sample-used", names("listnet", *ALL))],
    ),
    (
        network("contract_bad_dict_net_sigmoid_no_derivative", "dict", act="sigmoid", bug="no_act_deriv"),
        [Bug("gradient", "missing-activation-derivative", names("dict", "W1", "b1"))],
    ),
    (
        network(
            "contract_bad_attr_dropout_mask_backward",
            "attr",
            mode="both",
            keep=0.7,
            seed=7,
            bug="dropout_no_mask",
        ),
        [Bug("gradient", "dropout-mask-missing-in-backward", names("attr", "W1", "b1"))],
    ),
    (
        network(
            "contract_bad_lists_momentum_not_stored",
            "lists",
            mode="optimizer",
            kind="momentum",
            hyper={"lr": 0.05, "momentum": 0.9},
            opt_bug="velocity_not_stored",
        ),
        [Bug("optimizer", "momentum-velocity-not-stored", names("lists", *ALL))],
    ),
    (
        network(
            "contract_bad_layers_adam_no_sqrt",
            "layers",
            mode="optimizer",
            kind="adam",
            hyper=ADAM,
            opt_bug="missing_sqrt",
        ),
        [Bug("optimizer", "adam-missing-sqrt", names("layers", *ALL))],
    ),
    (
        network("contract_bad_params_attr_loss_per_class", "params_attr", loss_bug="per_class"),
        [Bug("loss", "loss-divided-by-num-classes")],
    ),
    (
        network(
            "contract_bad_attr_loss_summed_string", "attr", "cross_entropy", mode="gradients", loss_bug="sum"
        ),
        [Bug("loss", "loss-not-averaged")],
    ),
    (
        network(
            "contract_bad_attr_raw_pixels",
            "attr",
            prepare_inputs=lambda pixels: np.asarray(pixels, dtype=float),
            encode_labels=lambda labels, n: np.eye(n)[labels],
        ),
        [Bug("data", "inputs-not-normalized")],
    ),
    (
        network(
            "contract_bad_objdict_one_hot_shifted",
            "objdict",
            prepare_inputs=lambda pixels: np.asarray(pixels, dtype=float) / 255.0,
            encode_labels=lambda labels, n: np.eye(n)[(np.asarray(labels) + 1) % n],
        ),
        [Bug("data", "wrong-one-hot-encoding")],
    ),
    (
        network("contract_bad_tuples_grads_accumulate", "tuples", mode="both", accumulate=True),
        [Bug("state", "gradients-not-reset-between-steps")],
    ),
    (
        network("contract_bad_lists_zero_init_train_epoch", "lists", mode="train_epoch", zero=True, lr=0.3),
        [Bug("symmetry", "zero-init-symmetry")],
    ),
]

CASES = [Case(name, "contract (params omitted)", keywords, bugs) for (name, keywords), bugs in SPECS]
