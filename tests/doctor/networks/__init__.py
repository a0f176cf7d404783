"""A held-out collection of hand-written NumPy networks for ``mlpx.doctor.examine``.

Written independently of ``mlpx/doctor/`` as an oracle: each module holds networks in one style
(the way people write them), correct and broken, and a list ``CASES``. A ``Case`` carries the
keywords of the doctor's contract exactly (``examine(**case.keywords)``) and the labelled bugs:
``Bug(check, kind, params)`` with ``params`` the exact names of the arrays that are wrong
(gradient and optimizer bugs) or empty. A correct network has ``bugs=[]``.
"""

import importlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np

CHECKS = ("gradient", "loss", "forward", "stress", "symmetry", "optimizer", "data", "training", "state")

#: every slug of the vocabulary in issue 10 ("Names the mistake")
VOCABULARY = (
    "mse-gradient-through-softmax-with-ce-loss",
    "missing-softmax-derivative",
    "missing-activation-derivative",
    "relu-derivative-wrong-tensor",
    "sigmoid-derivative-on-preactivation",
    "off-by-one-layer-activation",
    "transposed-weight-in-backward",
    "bias-grad-collapsed-to-scalar",
    "bias-grad-overwritten",
    "bias-grad-wrong-axis",
    "only-last-sample-used",
    "gradient-not-averaged",
    "gradient-ascent-sign-error",
    "gradients-not-reset-between-steps",
    "in-place-update-aliasing",
    "dropout-mask-missing-in-backward",
    "l2-missing-from-gradient",
    "l2-gradient-wrong-factor",
    "l2-applied-to-biases",
    "loss-divided-by-num-classes",
    "loss-not-averaged",
    "log-of-zero",
    "softmax-overflow-no-max-subtraction",
    "softmax-wrong-axis",
    "softmax-wrong-for-batch",
    "zero-init-symmetry",
    "inputs-not-normalized",
    "wrong-one-hot-encoding",
    "learning-rate-too-large",
    "adam-missing-sqrt",
    "momentum-velocity-not-stored",
)

#: checks whose findings must name exactly the labelled arrays
LOCALISED_CHECKS = ("gradient", "optimizer")

CONTRACT_KEYWORDS = (
    "build",
    "forward",
    "objective",
    "params",
    "gradients",
    "update",
    "lr",
    "loss",
    "train_epoch",
    "optimizer",
    "prepare_inputs",
    "encode_labels",
    "seed",
    "check_batch",
    "data",
)


@dataclass(frozen=True)
class Bug:
    check: str
    kind: str
    params: Tuple[str, ...] = ()
    #: no vocabulary slug names this mistake and ``kind`` is only the closest: the doctor is held
    #: to the check and the arrays, not to the name
    closest_kind: bool = False

    def __post_init__(self):
        assert self.check in CHECKS, self.check
        assert self.kind in VOCABULARY, self.kind
        if self.check in LOCALISED_CHECKS:
            assert self.params, f"{self.kind}: a {self.check} bug names its arrays"


@dataclass
class Case:
    name: str
    style: str
    keywords: Dict[str, Any]
    bugs: List[Bug] = field(default_factory=list)
    note: str = ""

    def __post_init__(self):
        unknown = set(self.keywords) - set(CONTRACT_KEYWORDS)
        assert not unknown, f"{self.name}: not contract keywords: {unknown}"
        assert {"build", "forward", "objective"} <= set(self.keywords), self.name

    @property
    def broken(self) -> bool:
        return bool(self.bugs)

    def expected_params(self, check: str) -> set:
        """Every array the labels say is wrong under ``check``."""
        return {name for bug in self.bugs if bug.check == check for name in bug.params}


MODULES = (
    "per_record",
    "seed",
    "nielsen",
    "rashid",
    "layers",
    "functional",
    "vectorised",
    "optimizers",
    "column_vectors",
    "more_sklearn_style",
    "more_flat_theta",
    "more_functional_pytree",
    "more_nielsen_softmax",
    "more_float32_transposed",
    "more_torchlike_modules",
    "more_sigmoid_outputs",
    "tricky_correct",
    "tricky_broken",
    "edge_correct",
    "edge_broken",
    "tutorial_cs231n",
    "tutorial_nnfs",
    "tutorial_deeplearning_ai",
    "tutorial_nielsen",
    "tutorial_rashid",
    "tutorial_keras_like",
    "tutorial_micrograd",
    "numerics_correct",
    "numerics_broken",
    "posted_mnist",
    "posted_forums",
    "posted_optim",
    "contract_correct",
    "contract_broken",
)


def all_cases() -> List[Case]:
    cases = []
    for module in MODULES:
        cases.extend(importlib.import_module(f"{__name__}.{module}").CASES)
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), "case names are unique"
    return cases


# ------------------------------------------------------------------ helpers shared by the test data


def one_hot(labels, n_classes):
    """What the doctor passes as Y: one-hot float (n, C)."""
    return np.eye(n_classes)[np.asarray(labels)]
