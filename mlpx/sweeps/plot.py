"""The sweep's picture: its metric against each varied parameter (PNG bytes)."""

from typing import List

from mlpx.diagnostics.plots import figure_row, png_bytes
from mlpx.sweeps.summary import SweepSummary


def _as_numbers(values: List[str]):
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def sweep_plot(summary: SweepSummary) -> bytes:
    """The sweep's metric against each varied parameter, one panel per parameter; best in red."""
    params = summary.varied or ["run_name"]
    fig, axes = figure_row(len(params))
    rows = [r for r in summary.rows if summary.metric in r]
    for ax, param in zip(axes, params):
        labels = [str(r.get(param, "")) for r in rows]
        numbers = _as_numbers(labels)
        if numbers is not None:
            xs = numbers
            positive = all(x > 0 for x in xs)
            if positive and max(xs) / min(xs) >= 10:
                ax.set_xscale("log")
        else:
            categories = sorted(set(labels))
            xs = [categories.index(label) for label in labels]
            ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        ys = [r[summary.metric] for r in rows]
        colors = ["tab:red" if summary.best is not None and r is summary.best else "tab:blue" for r in rows]
        ax.scatter(xs, ys, c=colors)
        ax.set_xlabel(param)
        ax.set_ylabel(summary.metric)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{summary.metric} across the sweep ({len(rows)} runs)")
    return png_bytes(fig)
