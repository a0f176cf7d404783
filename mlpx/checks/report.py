"""What a check found: one ``Problem`` per failed check, gathered in a ``CheckReport``."""

import math
from dataclasses import dataclass, field
from typing import Any, List, Optional


@dataclass(frozen=True)
class Problem:
    """One failed check: its name, what was measured, what is allowed, and why it matters.

    ``details`` holds optional evidence (the worst entries, aligned), shown under the explanation.
    """

    check: str
    measured: Any
    allowed: Any
    explanation: str
    details: str = ""

    def __str__(self) -> str:
        text = f"{self.check}: measured {_show(self.measured)}, allowed {_show(self.allowed)}\n"
        text += _indent(self.explanation, 4)
        if self.details:
            text += "\n" + _indent(self.details, 6)
        return text


@dataclass
class CheckReport:
    """Every check run on one plugin: the problems found, the checks passed, and notes."""

    kind: str
    name: str
    source: Optional[str] = None
    problems: List[Problem] = field(default_factory=list)
    passed: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        """`"loss 'seed_backprop' (plugins/seed_backprop.py)"`."""
        where = f" ({self.source})" if self.source else ""
        return f"{self.kind} '{self.name}'{where}"

    def __str__(self) -> str:
        failed = sorted({p.check for p in self.problems})
        total = len(failed) + len(self.passed)
        verdict = "passed all checks" if self.ok else f"FAILED {len(failed)} of {total} checks"
        lines = [f"{self.label}: {verdict}"]
        lines += [_indent(str(problem), 2) for problem in self.problems]
        if self.passed:
            lines.append(f"  passed: {', '.join(self.passed)}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """A JSON-ready summary (measured and allowed values as strings when not plain numbers)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "source": self.source,
            "ok": self.ok,
            "passed": list(self.passed),
            "notes": list(self.notes),
            "problems": [
                {
                    "check": p.check,
                    "measured": _jsonable(p.measured),
                    "allowed": _jsonable(p.allowed),
                    "explanation": p.explanation,
                    "details": p.details,
                }
                for p in self.problems
            ],
        }


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return value
    return _show(value)


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())
