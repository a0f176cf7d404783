"""``examine``: run every probe that applies to the user's callables and gather one ``Report``.

Probes run in a fixed order, each independent of the others except for facts the earlier ones
learn (forward is batch-dependent: later probes call it per record; the gradients are right: a
diverging training run is the learning rate's fault). A probe that cannot run is skipped with
the reason; the user's code raising inside a probe is a finding naming the line.
"""

import copy
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from threadpoolctl import threadpool_limits

from mlpx.doctor.context import Context, make_context
from mlpx.doctor.probes.data import probe_data
from mlpx.doctor.probes.forward import probe_forward
from mlpx.doctor.probes.gradient import probe_gradient
from mlpx.doctor.probes.loss import probe_loss
from mlpx.doctor.probes.optimizer import probe_optimizer
from mlpx.doctor.probes.state import probe_state
from mlpx.doctor.probes.stress import probe_stress
from mlpx.doctor.probes.symmetry import probe_symmetry
from mlpx.doctor.probes.training import probe_training
from mlpx.doctor.report import Finding, Report
from mlpx.doctor.spec import DoctorError, Objective
from mlpx.doctor.subject import CodeError, Subject

#: (check, probe) in the order they run
PROBES: List[tuple] = [
    ("data", probe_data),
    ("forward", probe_forward),
    ("stress", probe_stress),
    ("loss", probe_loss),
    ("gradient", probe_gradient),
    ("optimizer", probe_optimizer),
    ("state", probe_state),
    ("symmetry", probe_symmetry),
    ("training", probe_training),
]


def examine(
    build: Callable[[], Any],
    forward: Callable[[Any, Any], Any],
    objective: Any = "cross_entropy",
    *,
    params: Optional[Callable[[Any], Dict[str, Any]]] = None,
    gradients: Optional[Callable[..., Any]] = None,
    update: Optional[Callable[..., Any]] = None,
    lr: Any = None,
    loss: Optional[Callable[..., Any]] = None,
    train_epoch: Optional[Callable[..., Any]] = None,
    optimizer: Optional[Dict[str, Any]] = None,
    prepare_inputs: Optional[Callable[[Any], Any]] = None,
    encode_labels: Optional[Callable[[Any, int], Any]] = None,
    seed: Optional[int] = None,
    check_batch: Optional[int] = None,
    data: Any = None,
    name: Optional[str] = None,
) -> Report:
    """Examine a hand-written network through its own callables; see ``mlpx.doctor`` and
    the README's "Debugging your own network" for every keyword."""
    started = time.perf_counter()
    subject = Subject(
        build=build,
        forward_fn=forward,
        objective=Objective.parse(objective),
        params_fn=params,
        gradients_fn=gradients,
        update_fn=update,
        lr=lr,
        loss_fn=loss,
        train_epoch=train_epoch,
        optimizer=dict(optimizer) if optimizer is not None else None,
        prepare_inputs=prepare_inputs,
        encode_labels=encode_labels,
        seed=seed,
        check_batch=check_batch,
    )
    if update is not None and lr is None:
        raise DoctorError("update= needs lr= (a float or (net) -> float): the gradient is (old - new) / lr")
    report = Report(name=name or "network")
    # probing calls are small matrix products: one BLAS thread is faster, and immune to a busy core
    with threadpool_limits(limits=1, user_api="blas"):
        _run_probes(subject, data, report)
    report.seconds = time.perf_counter() - started
    return report


def _run_probes(subject: Subject, data: Any, report: Report) -> None:
    try:
        ctx = _setup(subject, data, report)
    except CodeError as error:
        report.findings.append(
            Finding(
                "forward",
                "error",
                f"the network could not be set up: {error}",
                kind="code-raised",
                where=error.where,
            )
        )
        return
    for check, probe in PROBES:
        before = len(ctx.findings)
        reason = _skip_reason(ctx, check)
        if reason:
            report.skipped[check] = reason
            continue
        try:
            probe(ctx)
        except CodeError as error:
            ctx.add(Finding(check, "error", str(error), kind="code-raised", where=error.where))
        except DoctorError:
            raise
        except Exception as error:  # the doctor's own failure must not hide the other probes
            report.skipped[check] = f"the probe failed ({type(error).__name__}: {error}); please report it"
            continue
        new = ctx.findings[before:]
        skipped = ctx.facts.get("skipped", {}).pop(check, None)
        if skipped:
            report.skipped[check] = skipped
        elif not any(f.severity == "error" and f.check == check for f in new) and _ran(ctx, check):
            report.passed.append(check)
    report.findings = ctx.findings
    report.notes += ctx.facts.get("notes", [])


def _setup(subject: Subject, data: Any, report: Report) -> Context:
    net = subject.fresh()
    if report.name == "network":
        report.name = _name_of(subject.build, net)
    if subject.params_fn is None:
        names = subject.discover(net)
        live = _live_arrays(subject, net, names)
        subject.keep(live)
        if not subject.paths:
            raise DoctorError(
                "no trainable arrays found in the network: pass params=lambda net: {name: array}"
            )
        ignored = [n for n in names if n not in live]
        report.notes.append(
            f"trainable arrays found: {', '.join(subject.paths)}"
            + (f" (ignored, forward does not read them: {', '.join(ignored)})" if ignored else "")
        )
    arrays = subject.arrays(net)
    bad = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise DoctorError(f"params(net) must map names to NumPy arrays; {', '.join(bad)} are not arrays")
    ctx = make_context(subject, net, arrays, data, subject.seed or 0)
    if subject.params_fn is None:
        _drop_constants(ctx, net, report)
    ctx.unsaturate(net)
    return ctx


#: names of arrays that hold preprocessing constants, not weights
_CONSTANT_WORDS = ("mean", "std", "mu", "sigma", "var", "variance", "scale", "norm", "min", "max", "avg")


def _drop_constants(ctx: Context, net: Any, report: Report) -> None:
    """Discovered arrays forward reads but the code never trains (an input mean and std): those
    its own gradients leave out, or, with only an update, those it leaves unchanged and that are
    named like constants."""
    subject = ctx.subject
    x, y = ctx.batch()
    names = list(subject.paths)
    try:
        if subject.gradients_fn is not None:
            got = subject.call("gradients", subject.gradients_fn, copy.deepcopy(net), x.copy(), y.copy())
            if isinstance(got, (list, tuple)):
                got = next((part for part in got if isinstance(part, dict)), {})
            keys = {str(k) for k in dict(got)} if isinstance(got, dict) else set()
            trained = {n for n in names if n in keys or any(k.endswith(n) for k in keys)}
            constants = [n for n in names if n not in trained] if trained else []
        elif subject.update_fn is not None:
            twin = copy.deepcopy(net)
            before = subject.copies(twin)
            twin = subject.step(twin, "update", subject.update_fn, x.copy(), y.copy())
            after = subject.copies(twin)
            constants = [
                n
                for n in names
                if np.array_equal(before[n], after[n])
                and n.split(".")[-1].strip("[]'").lower() in _CONSTANT_WORDS
            ]
        else:
            return
    except (CodeError, TypeError, ValueError):
        return
    if constants and len(constants) < len(names):
        subject.paths = {k: v for k, v in subject.paths.items() if k not in constants}
        report.notes.append(f"not trained by the code, so not checked: {', '.join(constants)}")


def _live_arrays(subject: Subject, net: Any, names: List[str]) -> List[str]:
    """The discovered arrays whose perturbation changes forward's output (the rest are caches,
    optimizer state or gradient buffers)."""
    from mlpx.doctor.context import infer_sizes

    arrays = subject.arrays(net)
    try:
        width, _ = infer_sizes(subject, net, arrays)
    except DoctorError:
        return names
    x = np.random.default_rng(1).random((4, width))
    rng = np.random.default_rng(2)
    saved = {name: arrays[name].copy() for name in names}
    live = []
    try:
        # at a generic point: with zero-initialised layers, one array alone would not show
        for name in names:
            arrays[name][...] = saved[name] + _nudge(saved[name], rng, 0.3)
        base = subject.forward(net, x)
        for name in names:
            array = arrays[name]
            here = array.copy()
            try:
                array[...] = here + _nudge(here, rng, 0.1)
                moved = subject.forward(net, x)
            except CodeError:
                moved = base
            finally:
                array[...] = here
            if moved.shape != base.shape or not np.array_equal(moved, base):
                live.append(name)
    finally:
        for name in names:
            arrays[name][...] = saved[name]
    return live


def _nudge(array: np.ndarray, rng: np.random.Generator, size: float) -> np.ndarray:
    return size * max(1.0, float(np.abs(array).max())) * rng.standard_normal(array.shape)


def _skip_reason(ctx: Context, check: str) -> Optional[str]:
    if ctx.facts.get("forward_broken") and check not in ("data", "forward"):
        return "forward does not return usable probabilities"
    if check == "gradient" and ctx.facts.get("skip_gradient"):
        return ctx.facts["skip_gradient"]
    if check in ("gradient", "loss") and ctx.facts.get("saturated"):
        return "the outputs saturate (a probability under 1e-4 is logged) at every input scale tried"
    if check == "optimizer" and ctx.subject.optimizer is None:
        return "no optimizer= given"
    return None


def _ran(ctx: Context, check: str) -> bool:
    s = ctx.subject
    return {
        "data": s.prepare_inputs is not None or s.encode_labels is not None or ctx.user_data,
        "loss": s.loss_fn is not None,
        "state": s.gradients_fn is not None or s.update_fn is not None,
    }.get(check, True)


def _name_of(build: Callable[[], Any], net: Any = None) -> str:
    """The network's class name, else the build function's, else 'network'."""
    if net is not None and not isinstance(net, (dict, list, tuple)):
        return type(net).__name__
    name = getattr(build, "__qualname__", "") or getattr(build, "__name__", "")
    return name if name and "<" not in name else "network"
