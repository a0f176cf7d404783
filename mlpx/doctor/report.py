"""What the doctor found: ``Finding`` per observation, gathered in a ``Report`` (text and JSON).

Compute apart from render: probes return findings; only ``Report.__str__`` and ``as_dict`` render.
"""

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from mlpx.doctor.kinds import describe

#: the checks a finding can come from, in the order the report lists them
CHECKS = ("data", "forward", "stress", "loss", "gradient", "optimizer", "state", "symmetry", "training")


@dataclass
class Finding:
    """One thing a probe saw.

    ``check`` is the probe (one of ``CHECKS``), ``severity`` "error" or "warning", ``params`` the
    arrays concerned (empty when the finding is not about arrays), ``kind`` a slug of
    ``mlpx.doctor.kinds.KINDS`` or None when the evidence names no known mistake, ``message``
    the finding in plain words; ``measured`` holds the numbers (per-array relative errors, ...)
    and ``where`` the file:line in the user's code, when known.
    """

    check: str
    severity: str
    message: str
    params: Tuple[str, ...] = ()
    kind: Optional[str] = None
    measured: Dict[str, Any] = field(default_factory=dict)
    details: str = ""
    where: Optional[str] = None

    def __post_init__(self) -> None:
        self.params = tuple(self.params)

    @property
    def fix(self) -> str:
        return describe(self.kind).fix if self.kind else ""

    @property
    def explanation(self) -> str:
        return describe(self.kind).explanation if self.kind else ""

    def __str__(self) -> str:
        label = "ERROR" if self.severity == "error" else "warning"
        head = f"{label} [{self.check}]"
        if self.kind:
            head += f" {self.kind}"
        if self.params:
            head += f" ({', '.join(self.params)})"
        lines = [head, _indent(self.message, 4)]
        if self.kind:
            lines.append(_indent(f"why: {self.explanation}", 4))
            if self.fix:
                lines.append(_indent(f"fix: {self.fix}", 4))
        if self.where:
            lines.append(_indent(f"look at: {self.where}", 4))
        if self.details:
            lines.append(_indent(self.details, 6))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "check": self.check,
            "severity": self.severity,
            "kind": self.kind,
            "params": list(self.params),
            "message": self.message,
            "explanation": self.explanation,
            "fix": self.fix,
            "where": self.where,
            "measured": _jsonable(self.measured),
            "details": self.details,
        }


@dataclass
class Report:
    """Every finding of one ``examine`` call, the checks that ran clean, and notes."""

    name: str = "network"
    findings: List[Finding] = field(default_factory=list)
    passed: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)  # check -> why it did not run
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """False when any finding is an error."""
        return not self.errors

    @property
    def errors(self) -> List[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> List[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def kinds(self) -> List[str]:
        """The mistake kinds named, in finding order, without repeats."""
        return list(dict.fromkeys(f.kind for f in self.findings if f.kind))

    def by_check(self, check: str) -> List[Finding]:
        return [f for f in self.findings if f.check == check]

    def __str__(self) -> str:
        failed = sorted({f.check for f in self.errors}, key=_check_order)
        if self.ok:
            verdict = "no errors found" + (f" ({len(self.warnings)} warnings)" if self.warnings else "")
        else:
            verdict = f"{len(self.errors)} errors in {', '.join(failed)}"
        lines = [f"mlpx doctor: {self.name}: {verdict} ({self.seconds:.1f} s)"]
        ordered = sorted(self.findings, key=lambda f: (f.severity != "error", _check_order(f.check)))
        lines += [_indent(str(finding), 2) for finding in ordered]
        if self.passed:
            lines.append(f"  passed: {', '.join(self.passed)}")
        for check, why in self.skipped.items():
            lines.append(f"  skipped {check}: {why}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "findings": [f.as_dict() for f in self.findings],
            "passed": list(self.passed),
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.as_dict(), **{"indent": 2, **kwargs})


def _check_order(check: str) -> int:
    return CHECKS.index(check) if check in CHECKS else len(CHECKS)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else str(number)


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())
