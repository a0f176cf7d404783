"""Rules that read a run's curves and say, in sentences, what is going on and what to try.

``diagnose(history, ...)`` takes the per-epoch metrics of a finished run (with the health
metrics of ``mlpx.core.health`` and ``calibration`` when they were measured) and returns
findings; each rule needs only the metrics it names and stays silent when they are missing.
"""

from dataclasses import dataclass
from statistics import median
from typing import Dict, List, Optional, Sequence

Metrics = Dict[str, float]

#: losses whose value is cross-entropy (or a smoothed version of it) on the softmax
CROSS_ENTROPY_LOSSES = ("cross_entropy", "label_smoothing")

#: thresholds of the rules, in one place
RISE = 0.05  # relative rise of validation cross-entropy above its minimum that counts
OVERFIT_RISE = 0.10  # relative rise of validation loss above its minimum, for overfitting
OVERFIT_ACC_DROP = 0.01  # absolute drop of validation accuracy below its best, for overfitting
HEALTHY_UPDATE_RATIO = 1e-3
HIGH_UPDATE_RATIO = 1e-2
LOW_UPDATE_RATIO = 1e-4
CHANCE_ACCURACY = 0.2  # at or below it a classifier of 5 or more classes has learnt next to nothing
DEAD_SHARE = 0.25
VANISHING_RATIO = 1e-3  # first layer's gradient norm over the last layer's
EXPLODING_GRAD_NORM = 1e3


@dataclass(frozen=True)
class Finding:
    rule: str  # short identifier, e.g. "overconfidence"
    message: str  # one or two plain sentences, with the numbers

    def __str__(self) -> str:
        return f"- **{self.rule}**: {self.message}"


def diagnose(history: Sequence[Metrics], loss_name: str, stop_reason: Optional[str] = None) -> List[Finding]:
    """Findings for a run whose epoch ``e`` (1-based) has metrics ``history[e - 1]``."""
    if not history:
        return []
    findings: List[Finding] = []
    for rule in (_ce_rising, _overfitting, _lr_too_high, _lr_too_low, _dead_units, _gradients):
        finding = rule(history, loss_name)
        if finding is not None:
            findings.append(finding)
    rules = {f.rule for f in findings}
    if "learning rate too low" in rules and rules & {"learning rate too high", "dead units"}:
        # tiny updates of a network whose units died, or whose loss jumps, are no call for more
        findings = [f for f in findings if f.rule != "learning rate too low"]
    if stop_reason:
        findings.append(Finding("early stop", stop_reason))
    return findings


def render(findings: Sequence[Finding], history: Sequence[Metrics]) -> str:
    """The diagnosis as Markdown (the ``diagnosis.md`` artifact)."""
    last = history[-1] if history else {}
    head = (
        f"# Diagnosis\n\nAfter {len(history)} epochs: val_acc {last.get('val_acc', float('nan')):.4f}, "
        f"val_ce {last.get('val_ce', float('nan')):.4f}.\n\n"
    )
    if not findings:
        return head + "No problem found: losses fell, the updates were of a healthy size and no rule fired.\n"
    return head + "\n".join(str(f) for f in findings) + "\n"


def summary(findings: Sequence[Finding]) -> str:
    """One line for the ``mlpx.diagnosis`` tag."""
    if not findings:
        return "healthy: no rule fired"
    return " | ".join(f"{f.rule}: {f.message}" for f in findings)


def _series(history: Sequence[Metrics], key: str) -> List[float]:
    return [m[key] for m in history if key in m]


def _ce_rising(history: Sequence[Metrics], loss_name: str) -> Optional[Finding]:
    """Validation cross-entropy rising while validation accuracy holds or rises."""
    ce, acc = _series(history, "val_ce"), _series(history, "val_acc")
    if len(ce) < 3 or len(acc) != len(ce):
        return None
    best = min(range(len(ce)), key=ce.__getitem__)
    rise = ce[-1] / ce[best] - 1 if ce[best] > 0 else 0.0
    if best == len(ce) - 1 or rise < RISE or acc[-1] < acc[best] - 0.002:
        return None
    parts = [
        f"validation cross-entropy was lowest at epoch {best + 1} ({ce[best]:.4f}) and rose "
        f"{rise:.0%} to {ce[-1]:.4f} by epoch {len(ce)}, while validation accuracy went from "
        f"{acc[best]:.2%} to {acc[-1]:.2%}."
    ]
    confidence, ece = _series(history, "val_confidence"), _series(history, "val_ece")
    if len(confidence) == len(ce) and len(ece) == len(ce):
        parts.append(
            f"Mean confidence went from {confidence[best]:.3f} to {confidence[-1]:.3f} and "
            f"calibration error (ECE) from {ece[best]:.3f} to {ece[-1]:.3f}."
        )
    share = _series(history, "val_ce_top1pct_share")
    if len(share) == len(ce):
        parts.append(
            f"The 1 % most confidently wrong validation examples make {share[-1]:.0%} of the "
            "cross-entropy: a few confident mistakes, not worse classification."
        )
    if loss_name not in CROSS_ENTROPY_LOSSES:
        parts.append(
            f"Your training loss is {loss_name}; it does not penalise confident mistakes, so "
            "cross-entropy can rise while accuracy improves. Train with loss=cross_entropy to "
            "optimise the quantity you monitor."
        )
        return Finding("training loss is not cross-entropy", " ".join(parts))
    parts.append(
        "The model is growing overconfident: stop at the minimum (early stopping on val_ce), "
        "decay the learning rate, or use loss=label_smoothing."
    )
    return Finding("overconfidence", " ".join(parts))


def _overfitting(history: Sequence[Metrics], loss_name: str) -> Optional[Finding]:
    """Training loss falling while validation loss and accuracy both get worse."""
    train, val, acc = (_series(history, k) for k in ("train_loss", "val_loss", "val_acc"))
    if len(val) < 3 or len(train) != len(val) or len(acc) != len(val):
        return None
    best = min(range(len(val)), key=val.__getitem__)
    best_acc = max(acc)
    if best == len(val) - 1 or train[-1] >= train[best] or acc[-1] > best_acc - OVERFIT_ACC_DROP:
        return None
    if val[-1] < val[best] * (1 + OVERFIT_RISE):
        return None
    return Finding(
        "overfitting",
        f"training loss kept falling ({train[best]:.4f} -> {train[-1]:.4f}) after epoch {best + 1}, "
        f"while validation loss rose ({val[best]:.4f} -> {val[-1]:.4f}) and validation accuracy "
        f"fell from its best {best_acc:.2%} to {acc[-1]:.2%}. Use more data, regularisation, a "
        "smaller network, or stop at the best epoch.",
    )


def _max_update_ratios(history: Sequence[Metrics]) -> List[float]:
    return [
        max(v for k, v in m.items() if k.startswith("update_ratio/"))
        for m in history
        if any(k.startswith("update_ratio/") for k in m)
    ]


def _collapsed(history: Sequence[Metrics], train: List[float], ratios: List[float]) -> bool:
    """Huge first steps, then a flat loss at chance accuracy: the steps wrecked the network."""
    if not ratios or ratios[0] <= HIGH_UPDATE_RATIO or "val_acc" not in history[-1]:
        return False
    tail = train[len(train) // 2 :]
    flat = max(tail) - min(tail) <= 0.01 * max(tail)
    return flat and history[-1]["val_acc"] < CHANCE_ACCURACY


def _lr_too_high(history: Sequence[Metrics], loss_name: str) -> Optional[Finding]:
    """Training loss oscillating or climbing, update ratios far above ~1e-3, or a network the
    first epoch's huge steps left stuck at chance."""
    train = _series(history, "train_loss")
    if len(train) < 3:
        return None
    ups = sum(b > a * 1.01 for a, b in zip(train, train[1:]))
    climbing = train[-1] > train[0]
    oscillating = ups >= max(2, (len(train) - 1) // 3)
    ratios = _max_update_ratios(history)
    large = bool(ratios) and median(ratios) > HIGH_UPDATE_RATIO
    collapsed = _collapsed(history, train, ratios)
    if not (climbing or oscillating or large or collapsed):
        return None
    facts = []
    if climbing:
        facts.append(f"the training loss climbed from {train[0]:.4f} to {train[-1]:.4f}")
    elif oscillating:
        facts.append(f"the training loss went up in {ups} of {len(train) - 1} epochs")
    if collapsed:
        facts.append(
            f"the first epoch's steps changed the weights by {ratios[0]:.1e} of their size, then "
            f"training stalled at a training loss of {train[-1]:.4f} and validation accuracy "
            f"{history[-1]['val_acc']:.3f}, about chance"
        )
    if large:
        facts.append(
            f"one optimizer step changed the weights by {median(ratios):.1e} of their size (healthy: ~1e-3)"
        )
    return Finding("learning rate too high", "; ".join(facts) + ". Lower optimizer.lr (try 3-10x lower).")


def _lr_too_low(history: Sequence[Metrics], loss_name: str) -> Optional[Finding]:
    """Update ratios far below ~1e-3 and little progress."""
    ratios, train = _max_update_ratios(history), _series(history, "train_loss")
    if not ratios or len(train) < 2:
        return None
    progress = 1 - train[-1] / train[0] if train[0] > 0 else 1.0
    if median(ratios) > LOW_UPDATE_RATIO or progress > 0.5:
        return None
    return Finding(
        "learning rate too low",
        f"one optimizer step changed the weights by only {median(ratios):.1e} of their size "
        f"(healthy: ~{HEALTHY_UPDATE_RATIO:g}) and the training loss fell just {progress:.0%}. "
        "Raise optimizer.lr (try 10x).",
    )


def _dead_units(history: Sequence[Metrics], loss_name: str) -> Optional[Finding]:
    last = history[-1]
    dead = {k.split("/")[1]: v for k, v in last.items() if k.startswith("dead_units/") and v >= DEAD_SHARE}
    if not dead:
        return None
    layers = ", ".join(f"{share:.0%} of {layer}" for layer, share in sorted(dead.items()))
    return Finding(
        "dead units",
        f"{layers} never activate on the validation set: those ReLU units get no gradient and "
        "never recover. Lower the learning rate, or use activation=leaky_relu.",
    )


def _gradients(history: Sequence[Metrics], loss_name: str) -> Optional[Finding]:
    norms = {k.split("/")[1]: v for k, v in history[-1].items() if k.startswith("grad_norm/")}
    if len(norms) < 2:
        return None
    layers = sorted(norms, key=lambda name: int(name.removeprefix("layer")))
    first, last = norms[layers[0]], norms[layers[-1]]
    if max(norms.values()) > EXPLODING_GRAD_NORM:
        worst = max(norms, key=norms.get)
        return Finding(
            "exploding gradients",
            f"the gradient norm of {worst} reached {norms[worst]:.3g}. Lower the learning rate, "
            "check the initializer's scale, or clip gradients.",
        )
    if last > 0 and first / last < VANISHING_RATIO:
        return Finding(
            "vanishing gradients",
            f"the first layer's gradient norm ({first:.2e}) is {first / last:.1e} of the last "
            f"layer's ({last:.2e}): early layers barely learn. Try activation=relu or "
            "leaky_relu and he_normal initialisation.",
        )
    return None
