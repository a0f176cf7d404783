"""Independent reference optimizers for the trajectory check, and how to recognise each family.

Each reference follows one array through a sequence of gradients, out of place and in float64,
as the textbook formula reads; none shares code with ``mlpx.builtins``. A family lists the
hyperparameters it needs (under the names plugins use for them), the standard variants that
must all be accepted (eps inside or outside the square root or the bias correction, momentum in
the PyTorch or the classic form...), and classic mistakes, named when a plugin matches one.
"""

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from mlpx.checks.base import normalise_name

#: positions of one array after each step
Trajectory = List[np.ndarray]
#: one learning rate, or one per step (a schedule)
LearningRate = Union[float, Sequence[float]]
#: (initial array, gradients, lr, hyperparameters by role) -> trajectory
Reference = Callable[[np.ndarray, Sequence[np.ndarray], LearningRate, Mapping[str, float]], Trajectory]


def per_step(lr: LearningRate, steps: int) -> List[float]:
    """The learning rate of each of ``steps`` steps."""
    if isinstance(lr, (int, float, np.floating)):
        return [float(lr)] * steps
    return [float(v) for v in lr]


@dataclass(frozen=True)
class Role:
    """One hyperparameter of a family."""

    names: Tuple[str, ...]  # argument or attribute names; "betas[0]" is item 0 of a tuple
    default: float  # the standard default, assumed when the plugin has no such argument
    grid: Tuple[float, ...] = ()  # other common values tried when the plugin does not expose it
    perturbed: Optional[float] = None  # a second value to run with: catches an ignored argument


@dataclass(frozen=True)
class Family:
    name: str
    pattern: str  # matched against the normalised plugin name
    roles: Dict[str, Role]
    variants: Dict[str, Reference]
    mistakes: Dict[str, Reference] = field(default_factory=dict)


#: names that contain a family's name but are other algorithms: no reference for them
_OTHER_ALGORITHMS = re.compile(
    r"nadam|radam|adamax|amsgrad|adabelief|adadelta|adafactor|adabound|adamp|qhadam|lamb|lars|lion|"
    r"yogi|sign|lookahead|novograd|sophia|shampoo|sgdr|averag|polyak|clip|warm|schedul|nois|centered|"
    r"adan(_|$)|prodigy|muon|lbfgs|newton|(^|_)sam(_|$)"
)


#: arguments that, when set, select a non-standard form no reference covers
_SWITCHES = re.compile(r"amsgrad|centered|maximize|clip|max_norm|max_grad|noise|lookahead|nesterov_adam")


def nonstandard_switches(arguments: Mapping[str, object]) -> List[str]:
    """The arguments among ``arguments`` that switch on a form the references do not cover."""
    return [
        name for name, value in arguments.items() if _SWITCHES.search(name) and value not in (None, False, 0)
    ]


def identify(names: Sequence[str]) -> Optional[Family]:
    """The family the first recognisable name belongs to (e.g. 'BuggyAdam' -> adam)."""
    for name in names:
        if "AdamW" in name and not _OTHER_ALGORITHMS.search(name.lower()):
            return ADAMW  # 'AdamWL2' splits badly into words
        normalised = normalise_name(name)
        if not normalised or _OTHER_ALGORITHMS.search(normalised):
            continue
        for family in FAMILIES:
            if re.search(family.pattern, normalised):
                return family
    return None


# ---------------------------------------------------------------- SGD, momentum, Nesterov


def _sgd(
    form: str, nesterov: Optional[bool] = None, ignore_momentum: bool = False, decoupled: bool = False
) -> Reference:
    """form: "heavy_ball" (v = mu v + (1 - dampening) g, the classic v = mu v - lr g is the same
    trajectory for a constant lr) or "ema" (v = mu v + (1 - mu) g); weight decay enters the
    gradient (L2) or, ``decoupled``, shrinks p by lr wd p (SGDW)."""

    def run(
        p: np.ndarray, grads: Sequence[np.ndarray], lr: LearningRate, hp: Mapping[str, float]
    ) -> Trajectory:
        mu = 0.0 if ignore_momentum else hp.get("momentum", 0.0)
        damp, wd = hp.get("dampening", 0.0), hp.get("weight_decay", 0.0)
        look_ahead = bool(hp.get("nesterov", 0.0)) if nesterov is None else nesterov
        v: Optional[np.ndarray] = None
        out = []
        for lr_t, g in zip(per_step(lr, len(grads)), grads, strict=True):
            shrink = lr_t * wd * p if decoupled else 0.0
            g = g if decoupled else g + wd * p
            if mu != 0.0 and form == "classic":  # v = mu v - lr g; p += v: lr inside the velocity
                v = -lr_t * g if v is None else mu * v - lr_t * (1 - damp) * g
                p = p + (mu * v - lr_t * g if look_ahead else v) - shrink
                out.append(p)
                continue
            if mu == 0.0:
                direction = g
            elif form == "ema":
                v = (1 - mu) * g if v is None else mu * v + (1 - mu) * g
                direction = (1 - mu) * g + mu * v if look_ahead else v
            else:
                v = g if v is None else mu * v + (1 - damp) * g
                direction = g + mu * v if look_ahead else v
            p = p - lr_t * direction - shrink
            out.append(p)
        return out

    return run


_MOMENTUM = Role(("momentum", "mu", "beta", "gamma"), 0.9, (0.9, 0.95, 0.99, 0.8, 0.5), 0.5)
_DAMPENING = Role(("dampening",), 0.0)
_WEIGHT_DECAY = Role(("weight_decay", "wd", "weight_decay_rate"), 0.0)

SGD = Family(
    "SGD",
    r"(^|_)sgd|sgd($|_)|gradient_?descent|(^|_)gd(_|$)",
    {
        "momentum": Role(("momentum", "mu"), 0.0, (), 0.5),
        "nesterov": Role(("nesterov",), 0.0),
        "dampening": _DAMPENING,
        "weight_decay": _WEIGHT_DECAY,
    },
    {
        "v = mu v + g; p -= lr v": _sgd("heavy_ball"),
        "v = mu v + (1 - mu) g; p -= lr v": _sgd("ema"),
        "v = mu v + g; p -= lr v, decoupled weight decay": _sgd("heavy_ball", decoupled=True),
    },
)
MOMENTUM = Family(
    "SGD with momentum",
    r"momentum|heavy_?ball",
    {
        "momentum": _MOMENTUM,
        "nesterov": Role(("nesterov",), 0.0),
        "dampening": _DAMPENING,
        "weight_decay": _WEIGHT_DECAY,
    },
    {
        "v = mu v + g; p -= lr v (or v = mu v - lr g; p += v)": _sgd("heavy_ball"),
        "v = mu v - lr g; p += v (the same for a constant lr)": _sgd("classic"),
        "v = mu v + (1 - mu) g; p -= lr v": _sgd("ema"),
        "v = mu v + g; p -= lr v, decoupled weight decay": _sgd("heavy_ball", decoupled=True),
    },
    {
        "plain SGD: the velocity is not used": _sgd("heavy_ball", ignore_momentum=True),
        "Nesterov's look-ahead, not classical momentum": _sgd("heavy_ball", nesterov=True),
    },
)
NESTEROV = Family(
    "Nesterov momentum",
    r"nesterov|(^|_)nag(_|$)",
    {"momentum": _MOMENTUM, "dampening": _DAMPENING, "weight_decay": _WEIGHT_DECAY},
    {
        "v = mu v + g; p -= lr (g + mu v)": _sgd("heavy_ball", nesterov=True),
        "v = mu v + (1 - mu) g; p -= lr ((1 - mu) g + mu v)": _sgd("ema", nesterov=True),
        "v = mu v + g; p -= lr (g + mu v), decoupled weight decay": _sgd(
            "heavy_ball", nesterov=True, decoupled=True
        ),
    },
    {
        "classical momentum: the look-ahead term is missing": _sgd("heavy_ball", nesterov=False),
        "plain SGD: the velocity is not used": _sgd("heavy_ball", ignore_momentum=True),
    },
)


# ---------------------------------------------------------------- Adam, AdamW


def _adam(
    eps_at: str = "outside",
    decay: str = "none",
    correct_m: bool = True,
    correct_v: bool = True,
    root: bool = True,
    frozen_t: bool = False,
    swap: bool = False,
) -> Reference:
    """eps_at: "outside" sqrt(v_hat) + eps; "inside" sqrt(v_hat + eps); "outside_raw" and
    "inside_raw" add eps to the uncorrected sqrt(v) (v), folding the corrections into the step.
    decay: "none", "l2" (wd p added to g), "decoupled" (p -= lr wd p_old), "after" (decay after)."""

    def run(
        p: np.ndarray, grads: Sequence[np.ndarray], lr: LearningRate, hp: Mapping[str, float]
    ) -> Trajectory:
        b1, b2 = hp["beta1"], hp["beta2"]
        if swap:
            b1, b2 = b2, b1
        eps, wd = hp["eps"], hp.get("weight_decay", 0.0)
        m, v = np.zeros_like(p), np.zeros_like(p)
        out = []
        for t, (lr_t, g) in enumerate(zip(per_step(lr, len(grads)), grads, strict=True), start=1):
            t = 1 if frozen_t else t
            if decay == "l2":
                g = g + wd * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            c1 = 1 - b1**t if correct_m else 1.0
            c2 = 1 - b2**t if correct_v else 1.0
            root_of = np.sqrt if root else (lambda x: x)
            if eps_at == "outside":
                update = (m / c1) / (root_of(v / c2) + eps)
            elif eps_at == "inside":
                update = (m / c1) / root_of(v / c2 + eps)
            elif eps_at == "outside_raw":
                update = (m / c1) * root_of(c2) / (root_of(v) + eps)
            else:
                update = (m / c1) * root_of(c2) / root_of(v + eps)
            new = p - lr_t * update
            if decay == "decoupled":
                new = new - lr_t * wd * p
            elif decay == "after":
                new = new * (1 - lr_t * wd)
            p = new
            out.append(p)
        return out

    return run


_EPS_FORMS = ("outside", "inside", "outside_raw", "inside_raw")
_ADAM_ROLES = {
    "beta1": Role(("beta1", "b1", "beta_1", "betas[0]"), 0.9, (0.9,), 0.8),
    "beta2": Role(("beta2", "b2", "beta_2", "betas[1]"), 0.999, (0.999, 0.99, 0.98), 0.95),
    "eps": Role(("eps", "epsilon"), 1e-8, (1e-8, 1e-7)),
}
_ADAM_MISTAKES = {
    "no bias correction": _adam(correct_m=False, correct_v=False),
    "bias correction of the first moment only": _adam(correct_v=False),
    "bias correction of the second moment only": _adam(correct_m=False),
    "beta1 and beta2 swapped": _adam(swap=True),
    "no square root of the second moment": _adam(root=False),
    "a step counter that never advances (t stays 1)": _adam(frozen_t=True),
}

ADAM = Family(
    "Adam",
    r"adam",
    {**_ADAM_ROLES, "weight_decay": Role(("weight_decay", "wd", "weight_decay_rate"), 0.0, (), 0.1)},
    {
        **{f"eps {form.replace('_raw', ' the uncorrected')} sqrt": _adam(form) for form in _EPS_FORMS},
        **{f"eps {form}, L2 weight decay": _adam(form, decay="l2") for form in _EPS_FORMS},
        **{f"eps {form}, decoupled weight decay": _adam(form, decay="decoupled") for form in _EPS_FORMS},
    },
    _ADAM_MISTAKES,
)
ADAMW = Family(
    "AdamW",
    r"adam_?w(_|$)|adamw|adam_weight_decay|decoupled",
    {
        **_ADAM_ROLES,
        "weight_decay": Role(
            ("weight_decay", "wd", "weight_decay_rate", "decay"), 0.01, (0.01, 0.004, 1e-4, 0.05, 0.1), 0.1
        ),
    },
    {
        **{f"eps {form}, p -= lr wd p": _adam(form, decay="decoupled") for form in _EPS_FORMS},
        **{f"eps {form}, decay after the step": _adam(form, decay="after") for form in _EPS_FORMS},
    },
    {
        "Adam with an L2 penalty added to the gradient, not AdamW's decoupled weight decay": _adam(
            decay="l2"
        ),
        "Adam without any weight decay": _adam(),
        **_ADAM_MISTAKES,
    },
)


# ---------------------------------------------------------------- RMSprop, Adagrad


def _rmsprop(eps_at: str = "outside", v0: float = 0.0, root: bool = True, swap: bool = False) -> Reference:
    def run(p: np.ndarray, grads: Sequence[np.ndarray], lr: float, hp: Mapping[str, float]) -> Trajectory:
        alpha = 1 - hp["alpha"] if swap else hp["alpha"]
        eps, mu, wd = hp["eps"], hp.get("momentum", 0.0), hp.get("weight_decay", 0.0)
        v = np.full_like(p, v0)
        buffer = np.zeros_like(p)
        out = []
        for g in grads:
            g = g + wd * p
            v = alpha * v + (1 - alpha) * g * g
            scale = (np.sqrt(v) if root else v) + eps if eps_at == "outside" else np.sqrt(v + eps)
            step = g / scale
            if mu:
                buffer = mu * buffer + step
                step = buffer
            p = p - lr * step
            out.append(p)
        return out

    return run


RMSPROP = Family(
    "RMSprop",
    r"rms_?prop",
    {
        "alpha": Role(
            ("alpha", "rho", "decay", "beta", "beta2", "gamma", "decay_rate", "smoothing"),
            0.99,
            (0.99, 0.9, 0.95, 0.999),
            0.8,
        ),
        "eps": Role(("eps", "epsilon"), 1e-8, (1e-8, 1e-7, 1e-6)),
        "momentum": Role(("momentum",), 0.0, (), 0.5),
        "weight_decay": _WEIGHT_DECAY,
    },
    {
        "eps outside sqrt": _rmsprop("outside"),
        "eps inside sqrt": _rmsprop("inside"),
        "eps outside sqrt, average started at 1": _rmsprop("outside", v0=1.0),
        "eps inside sqrt, average started at 1": _rmsprop("inside", v0=1.0),
    },
    {
        "no square root of the average of g^2": _rmsprop(root=False),
        "alpha and 1 - alpha swapped: the average forgets almost at once": _rmsprop(swap=True),
    },
)


def _adagrad(eps_at: str = "outside", accumulate: str = "sum", root: bool = True) -> Reference:
    def run(p: np.ndarray, grads: Sequence[np.ndarray], lr: float, hp: Mapping[str, float]) -> Trajectory:
        eps, decay, wd = hp["eps"], hp.get("lr_decay", 0.0), hp.get("weight_decay", 0.0)
        total = np.full_like(p, hp["initial_accumulator_value"])
        out = []
        for t, g in enumerate(grads, start=1):
            g = g + wd * p
            if accumulate == "sum":
                total = total + g * g
            elif accumulate == "last":
                total = g * g
            else:
                total = 0.9 * total + 0.1 * g * g
            scale = (np.sqrt(total) if root else total) + eps if eps_at == "outside" else np.sqrt(total + eps)
            p = p - lr / (1 + (t - 1) * decay) * g / scale
            out.append(p)
        return out

    return run


ADAGRAD = Family(
    "Adagrad",
    r"ada_?grad",
    {
        "eps": Role(("eps", "epsilon"), 1e-10, (1e-10, 1e-8, 1e-7, 1e-6)),
        "initial_accumulator_value": Role(
            ("initial_accumulator_value", "initial_accumulator", "init_acc", "initial_value"),
            0.0,
            (0.0, 0.1),
            0.5,
        ),
        "lr_decay": Role(("lr_decay",), 0.0),
        "weight_decay": _WEIGHT_DECAY,
    },
    {"eps outside sqrt": _adagrad("outside"), "eps inside sqrt": _adagrad("inside")},
    {
        "the accumulator is overwritten with g^2 each step instead of summed": _adagrad(accumulate="last"),
        "a running average of g^2 (that is RMSprop), not a sum": _adagrad(accumulate="average"),
        "no square root of the accumulated g^2": _adagrad(root=False),
    },
)

#: in matching order: the more specific names first
FAMILIES: Tuple[Family, ...] = (ADAMW, ADAM, RMSPROP, ADAGRAD, NESTEROV, MOMENTUM, SGD)
