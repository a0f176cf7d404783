"""The mistake vocabulary: each kind a slug, a one-line explanation and a one-line fix.

Findings name a kind only when the evidence matches it; an unrecognised wrong gradient keeps
``kind=None`` and is described by its shape instead (constant ratio, sign, one row, zeros).
"""

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class Kind:
    slug: str
    explanation: str
    fix: str


_TABLE = [
    (
        "mse-gradient-through-softmax-with-ce-loss",
        "the output delta is squared error's gradient pushed through the softmax Jacobian, "
        "not cross-entropy's: it vanishes on confident mistakes, so the loss you report can rise "
        "while accuracy climbs",
        "for softmax + cross-entropy the output delta is simply (probs - onehot) (divided by the batch "
        "size for a mean loss); drop the Jacobian product",
    ),
    (
        "missing-softmax-derivative",
        "the squared-error gradient skips the softmax Jacobian: (probs - onehot) is cross-entropy's "
        "delta, not squared error's",
        "multiply (probs - onehot) by the softmax Jacobian, or train with cross-entropy, whose delta this is",
    ),
    (
        "missing-activation-derivative",
        "a hidden layer's error is passed back without multiplying by its activation's derivative",
        "multiply the back-propagated error by f'(z) of that layer (for ReLU: (z > 0))",
    ),
    (
        "relu-derivative-wrong-tensor",
        "the ReLU derivative mask is taken from the wrong array (the error, the weights, or "
        "another layer) instead of that layer's pre-activation or activation",
        "use (z > 0) of the same layer, computed in the forward pass",
    ),
    (
        "sigmoid-derivative-on-preactivation",
        "the sigmoid derivative a(1 - a) is evaluated on the pre-activation z (or sigmoid applied "
        "twice): z(1 - z) is not sigmoid'(z)",
        "use s * (1 - s) with s = sigmoid(z), the activation the forward pass kept",
    ),
    (
        "activation-derivative-wrong-tensor",
        "an activation's derivative is evaluated on the wrong tensor (its output instead of its input, or "
        "the reverse)",
        "evaluate f' on the pre-activation z, or in terms of the activation a where that is the formula",
    ),
    (
        "off-by-one-layer-activation",
        "a weight gradient or derivative uses the activation of the neighbouring layer",
        "dW of layer l is a[l-1].T @ delta[l]: the input of that layer, not its output or the one before",
    ),
    (
        "transposed-weight-in-backward",
        "the error is propagated through W instead of W.T (or the weight gradient is transposed)",
        "delta[l-1] = (delta[l] @ W[l].T) * f'(z[l-1]) for rows (W[l].T @ delta[l] for column vectors)",
    ),
    (
        "bias-grad-collapsed-to-scalar",
        "the bias gradient is summed over every axis into one number, so every bias entry gets the same step",
        "sum over the batch axis only: delta.sum(axis=0) for rows (n, units); in a per-record loop "
        "the record's delta is already the bias gradient: delta_bias += delta",
    ),
    (
        "bias-grad-overwritten",
        "in a per-record loop the bias gradient is assigned (=) rather than accumulated (+=): only the "
        "last record counts",
        "accumulate: delta_bias += ..., like the weights",
    ),
    (
        "bias-grad-wrong-axis",
        "the bias gradient is summed over the units axis instead of the batch axis",
        "sum over the batch axis: axis=0 for (n, units) rows, axis=1 for (units, n) columns",
    ),
    (
        "only-last-sample-used",
        "the gradient comes from the last record of the batch only (the accumulator is overwritten, or "
        "the loop variable leaks out of the loop)",
        "accumulate every record's gradient (+=) and divide by the batch size once",
    ),
    (
        "gradient-not-averaged",
        "the gradient is the batch sum while the loss is the batch mean: the step grows with the batch size",
        "divide the gradient by the batch size (or state reduction='sum')",
    ),
    (
        "gradient-ascent-sign-error",
        "the step goes up the gradient: the parameter change has the wrong sign",
        "subtract lr * gradient (or compute error as (probs - onehot) before adding lr * delta)",
    ),
    (
        "gradients-not-reset-between-steps",
        "gradients accumulate across calls and are never reset, so every step adds all earlier gradients",
        "zero the accumulators at the start of every step (np.zeros_like, or g[...] = 0)",
    ),
    (
        "in-place-update-aliasing",
        "two names share one array: an in-place operation changes a value that is read again later "
        "(a saved copy, a returned gradient, the inputs)",
        "take a real copy (.copy()) where the old value is needed, or write 'x = x - ...', not 'x -= ...'",
    ),
    (
        "dropout-mask-missing-in-backward",
        "the forward pass drops units but the backward pass lets gradient flow through the dropped ones",
        "multiply the back-propagated error by the same mask (and scale) the forward pass used",
    ),
    (
        "l2-missing-from-gradient",
        "the objective has an L2 penalty but the gradient omits its term coef * W",
        "add the penalty's derivative (coef * scale * 2 * W) to each penalised weight's gradient",
    ),
    (
        "l2-gradient-wrong-factor",
        "the L2 term of the gradient has the wrong factor (the 2 of the square, the 1/2, or 1/n)",
        "the derivative of coef * scale * sum(W ** 2) is 2 * coef * scale * W",
    ),
    (
        "l2-applied-to-biases",
        "the L2 penalty is applied to biases that the objective does not penalise",
        "add the weight-decay term to the weight matrices only",
    ),
    (
        "loss-divided-by-num-classes",
        "the reported loss is divided by the number of classes (len(pred) of one record is the class count)",
        "divide by the number of records, not len of a probability vector",
    ),
    (
        "loss-not-averaged",
        "the reported loss is the batch sum where the objective is the mean (or the reverse)",
        "divide the summed loss by the number of records",
    ),
    (
        "log-of-zero",
        "log is taken of a probability that can be exactly 0: the loss becomes inf/nan",
        "clip probabilities (np.clip(p, 1e-12, 1)) or compute log-softmax with log-sum-exp",
    ),
    (
        "softmax-overflow-no-max-subtraction",
        "softmax exponentiates raw logits: large logits overflow to inf and give nan",
        "subtract the row's max before exp: z - z.max(axis=1, keepdims=True)",
    ),
    (
        "softmax-wrong-axis",
        "softmax normalises over the batch axis instead of the classes",
        "normalise each record over its classes: sum(axis=1, keepdims=True) for (n, classes)",
    ),
    (
        "softmax-wrong-for-batch",
        "softmax uses one max or one sum over the whole batch, so one record's probabilities depend "
        "on the others (written for a single vector)",
        "take max and sum per row: axis=1, keepdims=True",
    ),
    (
        "zero-init-symmetry",
        "hidden units start identical (zero or constant weights), get identical gradients and stay identical",
        "initialise weights randomly (He: normal * sqrt(2 / fan_in) for ReLU)",
    ),
    (
        "inputs-not-normalized",
        "pixels go in as 0..255: activations and gradients are 255 times too large",
        "scale the inputs: X = pixels / 255.0 (or standardise them)",
    ),
    (
        "wrong-one-hot-encoding",
        "the target encoding does not put a single 1 at each record's class",
        "Y = np.eye(n_classes)[labels]",
    ),
    (
        "learning-rate-too-large",
        "the learning rate is so large that the loss explodes or the units die in the first steps",
        "divide the learning rate by 10 until the loss falls steadily",
    ),
    (
        "adam-missing-sqrt",
        "Adam divides by v_hat instead of sqrt(v_hat)",
        "p -= lr * m_hat / (np.sqrt(v_hat) + eps)",
    ),
    (
        "adam-missing-bias-correction",
        "Adam's moments are used without bias correction (1 - beta ** t)",
        "m_hat = m / (1 - beta1 ** t), v_hat = v / (1 - beta2 ** t), with t counting from 1",
    ),
    (
        "momentum-velocity-not-stored",
        "the velocity is computed but not kept between steps: momentum does nothing",
        "store it on the object (self.v[key] = ...) or update it in place (v *= mu; v += g)",
    ),
    (
        "optimizer-wrong-rule",
        "the optimizer's step differs from the reference rule fed the same gradients",
        "compare the step with the textbook rule for this optimizer, line by line",
    ),
    (
        "probabilities-not-normalized",
        "the outputs are not probabilities: rows do not sum to 1 or leave [0, 1]",
        "end the forward pass with a softmax over the classes (or a sigmoid per unit for bce)",
    ),
    (
        "rows-depend-on-each-other",
        "a record's output depends on the other records of the batch",
        "compute per-record statistics along the feature axis only",
    ),
    (
        "inputs-modified-in-place",
        "the code modifies the arrays it is given (X or Y) in place",
        "work on a copy, or avoid in-place operators on inputs",
    ),
    (
        "loss-wrong-value",
        "the reported loss differs from the stated objective",
        "compute the stated objective exactly (see the measured ratio)",
    ),
    (
        "stuck-at-chance",
        "the code's own training loop does not learn a task that is easy to learn",
        "check the gradient findings first; then the learning rate and the initialisation",
    ),
    (
        "dead-relu-units",
        "hidden units that never activate: they get no gradient and never recover",
        "lower the learning rate, or initialise with He scaling and small positive biases",
    ),
    (
        "non-finite-at-large-inputs",
        "large inputs make the outputs or the gradients inf or nan",
        "use a stable formulation (max-subtracted softmax, clipped logs, log-sum-exp)",
    ),
    (
        "shape-mismatch",
        "a gradient or update has another shape than its parameter",
        "the gradient of an array has that array's shape; check the axes of the sums and products",
    ),
    (
        "code-raised",
        "the code raised an exception when mlpx called it",
        "see the traceback's last frame in your code",
    ),
]

KINDS: Dict[str, Kind] = {slug: Kind(slug, explanation, fix) for slug, explanation, fix in _TABLE}


def describe(slug: str) -> Kind:
    """The vocabulary entry of ``slug`` (a generic one for an unknown slug)."""
    return KINDS.get(slug, Kind(slug, slug.replace("-", " "), ""))
