"""The summary of a finished sweep: one row per job, the parameters that varied, the best run.

Pure computation on MLflow ``Run`` objects; ``mlpx.sweeps.callback`` logs the result on the parent run
and ``mlpx.diagnostics.plots`` draws it.
"""

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

#: params that differ between jobs for reasons other than the sweep
_BOOKKEEPING_PARAMS = ("paths.output_dir",)


@dataclass
class SweepSummary:
    varied: List[str]  # param names whose values differ between jobs
    rows: List[Dict[str, Any]]  # run_name, run_id, status, seconds, each varied param, metrics
    metric: str
    best: Optional[Dict[str, Any]] = None  # the row with the best value of ``metric``
    metric_names: List[str] = field(default_factory=list)

    def to_csv(self) -> str:
        columns = ["run_name", "run_id", "status", "seconds", *self.varied, *self.metric_names]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()

    def to_markdown(self) -> str:
        columns = ["status", "seconds", *self.varied, *self.metric_names]
        lines = [
            "| run | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        for row in self.rows:
            cells = [_format(row.get(c, "")) for c in columns]
            marker = " (best)" if self.best is not None and row["run_id"] == self.best["run_id"] else ""
            lines.append(f"| {row['run_name']}{marker} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def summarize(
    runs: Sequence[Any], metric: str, mode: str, objectives: Optional[Mapping[str, float]] = None
) -> SweepSummary:
    """Rows for ``runs`` (MLflow child runs) and the best FINISHED run by ``metric`` (mode max|min).

    ``objectives`` (run id -> value) replaces a run's last ``metric`` by its value at the epoch
    whose weights the run ended with, where early stopping restored an earlier one."""
    names = sorted({k for r in runs for k in r.data.params} - set(_BOOKKEEPING_PARAMS))
    varied = [k for k in names if len({r.data.params.get(k) for r in runs}) > 1]
    metric_names = sorted({k for r in runs for k in r.data.metrics})
    rows = []
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        end = run.info.end_time or run.info.start_time
        row: Dict[str, Any] = {
            "run_name": run.info.run_name,
            "run_id": run.info.run_id,
            "status": run.info.status,
            "seconds": round(((end or 0) - (run.info.start_time or 0)) / 1000, 2),
        }
        row.update({k: run.data.params.get(k, "") for k in varied})
        row.update(run.data.metrics)
        if objectives and run.info.run_id in objectives:
            row[metric] = objectives[run.info.run_id]
        rows.append(row)
    candidates = [r for r in rows if r["status"] == "FINISHED" and metric in r]
    best = None
    if candidates:
        pick = max if mode == "max" else min
        best = pick(candidates, key=lambda r: r[metric])
    return SweepSummary(varied, rows, metric, best, metric_names)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
