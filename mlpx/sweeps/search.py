"""Hyperparameter search with Optuna and pruning, driven by Hydra (``hparams_search=optuna``).

Hydra's published Optuna sweeper never hands the trial to the job, so it cannot prune. Here the
sweeper (``hydra_plugins.mlpx_optuna``) asks Optuna for a trial, launches the job with the
trial's overrides, and leaves the trial where the job finds it: the job's ``TrialReporter``
reports the monitored metric after every epoch, and stops the job as soon as the pruner says
so. Trials run one after another in the sweeper's process (Hydra's basic launcher), each one an
MLflow child run of the sweep tagged with its trial number and its final state.
"""

import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hydra.errors import CompactHydraException

from mlpx.hookspecs import hookimpl

#: the number of the trial the next job belongs to (set by the sweeper around each launch)
TRIAL_ENV = "MLPX_OPTUNA_TRIAL"

#: trials handed from the sweeper to the job running in the same process, by number
_open_trials: Dict[int, Any] = {}
#: what each job reported back: (state "COMPLETE" | "PRUNED", value of the monitored metric)
outcomes: Dict[int, tuple] = {}


#: where the space's entries written in the config live, for error messages
PARAMS_NODE = "hydra.sweeper.params"


class SearchSpaceError(ValueError, CompactHydraException):
    """A search-space entry that cannot become an Optuna distribution; names the parameter.

    A compact Hydra error: Hydra prints its message alone, without a traceback.
    """


def search_space(params: Mapping[str, Any], arguments: Sequence[str]) -> Tuple[Dict[str, Any], List[str]]:
    """The Optuna distributions to search and the fixed overrides every trial's job gets.

    The space is read in Hydra's override grammar, as hydra-optuna-sweeper reads it, first from
    ``hydra.sweeper.params`` (``optimizer.lr: tag(log, interval(1e-3, 0.3))``), then from the
    command line's sweep overrides (``'optimizer.lr=tag(log, interval(0.01, 0.2))'``,
    ``activation=relu,tanh``), which replace a config entry for the same key; a plain
    command-line override (``activation=tanh``) fixes that key and removes it from the space.

    - ``interval(a, b)``: a float in [a, b]; ``int(interval(a, b))``: an int in [a, b]
    - ``range(a, b[, step])``: an int (a float if any bound or step is) from a up to b, b excluded
      as in Hydra; ``shuffle(range(...))``: a categorical of those values
    - ``choice(x, y, ...)`` or ``x,y``: a categorical
    - ``tag(log, interval(a, b))`` or ``tag(log, range(a, b))``: the same on a log scale

    The older form of a config entry, ``{type: float|int|categorical, low, high, log, step,
    choices}``, is still accepted, and so is a YAML list (a categorical).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    space: Dict[str, Any] = {}
    for key, value in _flatten(params):
        where = f"{PARAMS_NODE}.{key}"
        if isinstance(value, Mapping):
            space[key] = _legacy_distribution(where, value)
            continue
        if isinstance(value, (list, tuple)):
            space[key] = _categorical(where, list(value))
            continue
        text = f"{key}={_text(value)}"
        try:
            (override,) = parser.parse_overrides([text])
        except Exception as error:  # OverrideParseException does not name the override
            raise SearchSpaceError(
                f"{where}: {value!r} is not in Hydra's override grammar "
                f"(interval(a, b), int(interval(a, b)), range(a, b[, step]), choice(x, y), "
                f"tag(log, interval(a, b)) or x,y): {error}"
            ) from None
        if override.is_sweep_override():
            space[key] = _distribution(where, override.value())
        else:
            raise SearchSpaceError(
                f"{where}: {value!r} is a single value, not a range to search; set it as "
                f"a plain override ({key}={_text(value)}) or write interval(), range() or choice()"
            )
    fixed: List[str] = []
    for override in parser.parse_overrides(list(arguments)):
        key = override.get_key_element()
        for known in [k for k in space if k.lstrip("+~") == override.key_or_group]:
            del space[known]
        if override.is_sweep_override():
            space[key] = _distribution(f"override {override.input_line!r}", override.value())
        else:
            fixed.append(override.input_line)
    return space, fixed


def overrides_for(params: Mapping[str, Any]) -> List[str]:
    """The Hydra overrides that give a job the values a trial drew (``trial.params``)."""
    return [f"{key}={_text(value)}" for key, value in params.items()]


def _flatten(params: Mapping[str, Any], prefix: str = ""):
    """``(dotted key, entry)`` pairs: ``hydra.sweeper.params.optimizer.lr=...`` nests a node."""
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and "type" not in value:
            yield from _flatten(value, f"{dotted}.")
        else:
            yield dotted, value


def _text(value: Any) -> str:
    """A value as override text: strings as written (``"[300,75]"`` becomes a list in the job)."""
    from hydra.core.override_parser.types import Override

    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return Override._get_value_element_as_str(value)


def _distribution(where: str, sweep: Any) -> Any:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import FloatDistribution, IntDistribution

    log = "log" in sweep.tags
    try:
        if isinstance(sweep, ChoiceSweep):
            if log:
                raise SearchSpaceError(f"{where}: tag(log, ...) needs interval() or range(), not choice()")
            return _categorical(where, list(sweep.list))
        if isinstance(sweep, RangeSweep):
            values = _range_values(where, sweep)
            if sweep.shuffle:
                return _categorical(where, values)
            step = abs(sweep.step)
            if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
                if log and step != 1:
                    raise SearchSpaceError(f"{where}: tag(log, range()) needs step 1, got {step}")
                return IntDistribution(min(values), max(values), log=log, step=step)
            if log:
                raise SearchSpaceError(f"{where}: tag(log, range()) needs int bounds and step 1")
            return FloatDistribution(float(min(values)), float(max(values)), step=float(step))
        if isinstance(sweep, IntervalSweep):
            low, high = sweep.start, sweep.end
            if low > high:
                raise SearchSpaceError(f"{where}: interval({low}, {high}) has its bounds the wrong way round")
            if isinstance(low, int) and isinstance(high, int):
                return IntDistribution(low, high, log=log)
            return FloatDistribution(float(low), float(high), log=log)
    except SearchSpaceError:
        raise
    except (ValueError, TypeError) as error:  # Optuna's own checks, e.g. a log scale from 0
        raise SearchSpaceError(f"{where}: {error}") from None
    raise SearchSpaceError(
        f"{where}: {type(sweep).__name__} cannot be searched; use interval(), range() or choice()"
    )


def _range_values(where: str, sweep: Any) -> List[Any]:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if step == 0:
        raise SearchSpaceError(f"{where}: range() step must not be 0")
    values, value = [], start
    while (value < stop) if step > 0 else (value > stop):
        values.append(value)
        value = start + len(values) * step
    if not values:
        raise SearchSpaceError(f"{where}: range({start}, {stop}, {step}) is empty (its end is excluded)")
    return values


def _categorical(where: str, choices: List[Any]) -> Any:
    from optuna.distributions import CategoricalDistribution

    if not choices:
        raise SearchSpaceError(f"{where}: choice() needs at least one value")
    # Optuna keeps str/int/float/bool/None; a list or dict choice is kept as its override text
    kept = [c if c is None or isinstance(c, (str, int, float, bool)) else _text(c) for c in choices]
    return CategoricalDistribution(kept)


def _legacy_distribution(where: str, spec: Mapping[str, Any]) -> Any:
    """``{type: float|int|categorical, ...}``, the space's format before the override grammar."""
    from optuna.distributions import FloatDistribution, IntDistribution

    kind = spec.get("type")
    try:
        if kind == "float":
            return FloatDistribution(
                spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step")
            )
        if kind == "int":
            return IntDistribution(
                spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step", 1)
            )
        if kind == "categorical":
            return _categorical(where, list(spec["choices"]))
    except KeyError as missing:
        raise SearchSpaceError(f"{where}: a {kind} entry needs {missing}") from None
    except (ValueError, TypeError) as error:
        raise SearchSpaceError(f"{where}: {error}") from None
    raise SearchSpaceError(
        f"{where}: write it in Hydra's override grammar (e.g. interval(0.01, 0.2)), "
        f"or give type float, int or categorical, got {kind!r}"
    )


def open_trial(trial: Any, metric: str) -> None:
    """Leave ``trial`` for the job launched next in this process, which reports ``metric``."""
    _open_trials[trial.number] = (trial, metric)
    os.environ[TRIAL_ENV] = str(trial.number)


def close_trial(trial: Any) -> Optional[tuple]:
    """Take the trial back; return what its job reported, or None if it failed first."""
    os.environ.pop(TRIAL_ENV, None)
    _open_trials.pop(trial.number, None)
    return outcomes.pop(trial.number, None)


def reporter_for_this_job() -> Optional["TrialReporter"]:
    """The reporter of the trial this job belongs to, when a search launched it."""
    number = os.environ.get(TRIAL_ENV)
    if number is None or int(number) not in _open_trials:
        return None
    trial, metric = _open_trials[int(number)]
    return TrialReporter(trial, metric)


class TrialReporter:
    """Lifecycle plugin: reports ``metric`` to the Optuna trial each epoch and stops when pruned."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.last: Optional[float] = None

    @hookimpl
    def on_run_start(self, run) -> None:
        run.tags["mlpx.optuna.trial"] = str(self.trial.number)
        run.tags["mlpx.optuna.state"] = "RUNNING"

    @hookimpl
    def on_epoch_end(self, run, epoch: int, metrics) -> Optional[str]:
        self.last = float(metrics[self.metric])
        if not math.isfinite(self.last):
            return None  # the divergence guard stops the run
        self.trial.report(self.last, step=epoch)
        if self.trial.should_prune():
            run.tags["mlpx.optuna.state"] = "PRUNED"
            outcomes[self.trial.number] = ("PRUNED", self.last)
            return (
                f"pruned by Optuna at epoch {epoch}: {self.metric} {self.last:.4g} is worse than other trials"
            )
        return None

    @hookimpl
    def on_run_end(self, run, result, error) -> None:
        if error is None and self.trial.number not in outcomes:
            run.tags["mlpx.optuna.state"] = "COMPLETE"
            # the value at the epoch whose weights the run ends with (early stopping may restore one)
            outcomes[self.trial.number] = ("COMPLETE", result.objective(self.metric))
