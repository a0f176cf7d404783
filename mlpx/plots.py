"""Figures as PNG bytes (matplotlib, Agg backend): computed data in, pictures out."""

import io
from typing import List

from mlpx.sweep_summary import SweepSummary


def _figure(n_panels: int):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.4), squeeze=False)
    return plt, fig, list(axes[0])


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _as_numbers(values: List[str]):
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def sweep_plot(summary: SweepSummary) -> bytes:
    """The sweep's metric against each varied parameter, one panel per parameter; best in red."""
    params = summary.varied or ["run_name"]
    plt, fig, axes = _figure(len(params))
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
    return _png(plt, fig)
