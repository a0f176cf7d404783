"""Probe ``optimizer``: the code's optimizer, fed its own gradients for a few steps, against the
independent references of ``mlpx.checks.references`` (every standard variant accepted: momentum
in either form, eps inside or outside the square root); a match with a classic mistake names it.
"""

from typing import Dict, List

import numpy as np

from mlpx.checks.numeric import fmt
from mlpx.checks.references import ADAM, MOMENTUM, SGD, Family
from mlpx.doctor.context import Context
from mlpx.doctor.report import Finding
from mlpx.doctor.spec import OPTIMIZER_KINDS, DoctorError
from mlpx.doctor.subject import CodeError, every_array_path

STEPS = 4
_FAMILIES: Dict[str, Family] = {"sgd": SGD, "momentum": MOMENTUM, "adam": ADAM}
_MISTAKE_KINDS = {
    "no square root of the second moment": "adam-missing-sqrt",
    "no bias correction": "adam-missing-bias-correction",
    "bias correction of the first moment only": "adam-missing-bias-correction",
    "bias correction of the second moment only": "adam-missing-bias-correction",
    "plain SGD: the velocity is not used": "momentum-velocity-not-stored",
}
_ASCENT = "the step goes up the gradient (+ lr instead of - lr)"
_EMA_FORGOTTEN = "the average v = mu v + (1 - mu) g is not kept: every step is lr (1 - mu) g"


def _ema_velocity_forgotten(p, grads, lr, hp):
    keep = 1 - hp.get("momentum", 0.9)
    return SGD.variants["v = mu v + g; p -= lr v"](p, [keep * g for g in grads], lr, {"momentum": 0.0})


#: mistakes of the doctor's own, beyond the plugin checks' families
_EXTRA_MISTAKES = {"momentum": {_EMA_FORGOTTEN: _ema_velocity_forgotten}}
_MISTAKE_KINDS[_EMA_FORGOTTEN] = "momentum-velocity-not-stored"
_MISTAKE_KINDS[_ASCENT] = "gradient-ascent-sign-error"


def probe_optimizer(ctx: Context) -> None:
    spec = ctx.subject.optimizer
    if spec is None:
        return
    kind = str(spec.get("kind", "")).lower()
    if kind not in OPTIMIZER_KINDS or not callable(spec.get("step")) or not callable(spec.get("gradients")):
        raise DoctorError(
            f"optimizer= needs kind ({', '.join(OPTIMIZER_KINDS)}), gradients and step; "
            f"got {sorted(spec)} with kind {kind!r}"
        )
    subject = ctx.subject
    net = subject.fresh()
    starts: Dict[str, np.ndarray] = {}
    grads: Dict[str, List[np.ndarray]] = {}
    after: Dict[str, List[np.ndarray]] = {}
    hyper = {}
    lrs: List[float] = []
    x, y = ctx.batch()
    before_paths = every_array_path(net)
    old_params = {id(a) for a in subject.arrays(net).values()}
    try:
        for t in range(STEPS):
            hyper = dict(subject.call("hyper", spec["hyper"], net)) if callable(spec.get("hyper")) else {}
            if "lr" in hyper:
                lrs.append(float(hyper["lr"]))  # read before every step: a schedule may change it
            g = subject.call("optimizer gradients", spec["gradients"], net, x.copy(), y.copy())
            g = {str(k): np.array(v, dtype=np.float64) for k, v in dict(g).items()}
            if t == 0:
                starts = subject.copies(net)
            subject.call("optimizer step", spec["step"], net)
            now = subject.copies(net)
            for name in starts:
                if name in g:
                    grads.setdefault(name, []).append(g[name].reshape(starts[name].shape))
                    after.setdefault(name, []).append(now[name])
    except CodeError as error:
        ctx.add(Finding("optimizer", "error", str(error), kind="code-raised", where=error.where))
        return
    ctx.facts["optimizer_ok"] = True
    _aliasing(ctx, net, before_paths, old_params)
    if "lr" not in hyper:
        raise DoctorError("optimizer['hyper'](net) must return at least {'lr': ...}")
    _compare(ctx, kind, starts, grads, after, hyper, lrs)


#: path segments that name optimizer state, never the parameters themselves
_STATE_WORDS = {
    "velocity",
    "velocities",
    "vel",
    "v",
    "m",
    "s",
    "r",
    "moment",
    "moments",
    "momentum",
    "momentums",
    "cache",
    "caches",
    "prev",
    "previous",
    "old",
    "accum",
    "accumulator",
    "first_moment",
    "second_moment",
}


def _aliasing(ctx: Context, net, before: Dict[str, np.ndarray], old_params: set) -> None:
    """State that shares memory with a parameter only after stepping (``previous = p``), or one
    state array under two names (``m = v``): an in-place step then changes both."""
    params = ctx.subject.arrays(net)
    after = every_array_path(net)
    owners = {id(a): name for name, a in params.items()}
    shapes = {a.shape for a in params.values()}
    hit: Dict[str, str] = {}
    for path, array in after.items():
        # a path that held a copy and now holds a parameter (a functional update that returns
        # new parameters replaces them all, which is not aliasing: their old values were parameters)
        if (
            id(array) in owners
            and path in before
            and before[path] is not array
            and id(before[path]) not in old_params
        ):
            hit.setdefault(owners[id(array)], f"{path} became the parameter {owners[id(array)]} itself")
    for path, array in after.items():
        # state named like state (velocity, m, v, cache, previous, ...) that is a parameter itself
        if id(array) in owners and _STATE_WORDS & set(path.lower().split(".")[:-1]):
            hit.setdefault(owners[id(array)], f"{path} is the parameter {owners[id(array)]} itself")
    by_id: Dict[int, List[str]] = {}
    for path, array in after.items():
        if id(array) not in owners and array.shape in shapes:
            by_id.setdefault(id(array), []).append(path)
    for paths in by_id.values():
        # one container reached from two owners (net.grads is optimizer.grads) is sharing, not
        # aliasing; two names for one array (m and v) are
        if len({tuple(p.split(".")[-2:]) for p in paths}) > 1:
            shape = after[paths[0]].shape
            for name, p in params.items():
                if p.shape == shape and name not in hit:
                    hit[name] = f"{' and '.join(paths[:2])} are one array"
                    break
    if hit:
        notes = sorted(set(hit.values()))
        ctx.add(
            Finding(
                "optimizer",
                "error",
                "the optimizer's state aliases arrays it updates in place: "
                + "; ".join(notes[:3])
                + (" ..." if len(notes) > 3 else ""),
                params=tuple(sorted(hit)),
                kind="in-place-update-aliasing",
            )
        )


def _roles(kind: str, hyper: dict) -> dict:
    if kind == "sgd":
        return {"momentum": 0.0}
    if kind == "momentum":
        return {"momentum": float(hyper.get("momentum", hyper.get("mu", 0.9)))}
    return {
        "beta1": float(hyper.get("beta1", 0.9)),
        "beta2": float(hyper.get("beta2", 0.999)),
        "eps": float(hyper.get("eps", 1e-8)),
    }


def _compare(ctx, kind, starts, grads, after, hyper, lrs: List[float]) -> None:
    family = _FAMILIES[kind]
    lr, roles = lrs[0], _roles(kind, hyper)
    schedule = lrs if len(set(lrs)) > 1 else lr
    descend = [-v for v in lrs] if len(set(lrs)) > 1 else -lr
    wrong: Dict[str, tuple] = {}
    for name, p0 in starts.items():
        if name not in grads:
            continue
        user = after[name]
        errors = {
            label: _distance(ref(p0, grads[name], schedule, roles), user, p0)
            for label, ref in family.variants.items()
        }
        best = min(errors.values())
        if best <= max(ctx.tol.trajectory, 1e-6):
            continue
        mistakes = {
            label: _distance(ref(p0, grads[name], schedule, roles), user, p0)
            for label, ref in {**family.mistakes, **_EXTRA_MISTAKES.get(kind, {})}.items()
        }
        named = [label for label, e in mistakes.items() if e <= max(ctx.tol.trajectory, 1e-6) * 10]
        ascent = min(
            _distance(ref(p0, grads[name], descend, roles), user, p0) for ref in family.variants.values()
        )
        if not named and ascent <= max(ctx.tol.trajectory, 1e-6) * 10:
            named = [_ASCENT]
        shape = _step_shape(p0, grads[name], user, lr) if kind != "adam" else "its trajectory is not Adam's"
        wrong[name] = (best, named[0] if named else None, shape)
    if not wrong:
        return
    ctx.facts["optimizer_ok"] = False
    groups: Dict[object, List[str]] = {}
    for name, (_, mistake, _) in wrong.items():
        groups.setdefault(mistake, []).append(name)
    settings = ", ".join(f"{k} {fmt(v)}" for k, v in {"lr": lr, **roles}.items())
    for mistake, names in groups.items():
        kind_slug = _MISTAKE_KINDS.get(mistake, "optimizer-wrong-rule") if mistake else "optimizer-wrong-rule"
        lines = [
            f"the {family.name} steps of {', '.join(names)} differ from the reference fed the same "
            f"gradients over {STEPS} steps ({settings}):"
        ]
        for name in names:
            error, _, shape = wrong[name]
            lines.append(f"  {name}: relative error {fmt(error)}; {shape}")
        if mistake:
            lines.append(f"the steps match {family.name} with this mistake: {mistake}")
        ctx.add(
            Finding(
                "optimizer",
                "error",
                "\n".join(lines),
                params=tuple(names),
                kind=kind_slug,
                measured={"relative_error": {n: wrong[n][0] for n in names}},
            )
        )
        if kind_slug == "momentum-velocity-not-stored":
            ctx.add(
                Finding(
                    "state",
                    "error",
                    f"the velocity of {', '.join(names)} does not survive between "
                    "steps: every step is plain SGD",
                    params=tuple(names),
                    kind=kind_slug,
                )
            )


def _distance(reference: List[np.ndarray], user: List[np.ndarray], start: np.ndarray) -> float:
    travelled = max(float(np.abs(user[-1] - start).max()), float(np.abs(reference[-1] - start).max()), 1e-300)
    return max(float(np.abs(r - u).max()) for r, u in zip(reference, user, strict=True)) / travelled


def _step_shape(p0, grads, user, lr) -> str:
    first = p0 - user[0]
    g = grads[0]
    if not np.any(first):
        return "the first step changes nothing"
    ratio = float(np.vdot(first, g) / max(np.vdot(g, g), 1e-300)) / lr
    if np.linalg.norm(first - ratio * lr * g) <= 1e-3 * np.linalg.norm(first):
        return f"the first step is {fmt(ratio)} x lr x gradient"
    return "the first step is not a multiple of the gradient"
