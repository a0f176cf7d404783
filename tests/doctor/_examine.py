"""Runs ``examine`` once per case (cached) and reads its findings, for the tests and the bench."""

import functools
import time
from typing import Dict, List, Tuple

from tests.doctor.networks import LOCALISED_CHECKS, Bug, Case, all_cases

CASES: List[Case] = all_cases()
BY_NAME: Dict[str, Case] = {case.name: case for case in CASES}


@functools.cache
def examined(name: str) -> Tuple[object, float]:
    """(report, seconds) of ``examine(**keywords)`` for the named case."""
    from mlpx.doctor import examine

    start = time.perf_counter()
    report = examine(**BY_NAME[name].keywords)
    return report, time.perf_counter() - start


def errors(report, check=None) -> list:
    return [f for f in report.findings if f.severity == "error" and (check is None or f.check == check)]


def flagged_params(report, check: str) -> set:
    return {name for f in errors(report, check) for name in (f.params or ())}


def localised(case: Case, bug: Bug, report) -> bool:
    """An error finding of the bug's check; for gradient / optimizer bugs, exactly the labelled arrays
    (the union of every labelled bug of that check in the case) among that check's error findings."""
    if not errors(report, bug.check):
        return False
    if bug.check in LOCALISED_CHECKS:
        return flagged_params(report, bug.check) == case.expected_params(bug.check)
    return True


def kind_named(bug: Bug, report) -> bool:
    return any(f.kind == bug.kind for f in report.findings)


def describe(report, check=None) -> str:
    found = [f for f in report.findings if check is None or f.check == check]
    return "; ".join(f"{f.severity} {f.check}/{f.kind} {sorted(f.params or ())}" for f in found) or "nothing"
