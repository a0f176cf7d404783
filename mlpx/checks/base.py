"""Running a plugin's checks one by one: an exception in the plugin becomes a Problem, not a crash."""

import re
from typing import Callable, List, Sequence, Tuple

from mlpx.checks.numeric import quiet
from mlpx.checks.report import CheckReport, Problem

#: a check: its name and a function returning the problems it found (empty when it passed)
Check = Tuple[str, Callable[[], List[Problem]]]


def run_checks(report: CheckReport, checks: Sequence[Check]) -> None:
    """Run ``checks`` in order, recording each as passed or as its problems in ``report``."""
    for name, check in checks:
        try:
            with quiet():
                problems = check()
        except Exception as exc:  # the plugin's own error is the finding
            problems = [raised(name, exc)]
        if problems:
            report.problems.extend(problems)
        else:
            report.passed.append(name)


def raised(check: str, exc: BaseException) -> Problem:
    return Problem(
        check,
        measured=f"{type(exc).__name__}: {exc}",
        allowed="no exception",
        explanation=(
            "The plugin raised an exception while being checked with ordinary, valid arguments "
            "(see the hookspec of its kind for the exact contract)."
        ),
    )


def missing_methods(obj: object, methods: Sequence[str]) -> List[str]:
    return [m for m in methods if not callable(getattr(obj, m, None))]


def normalise_name(name: str) -> str:
    """'HeNormal', 'he-normal' and 'He Normal' -> 'he_normal': how names are matched to schemes."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", snake.lower()).strip("_")
