"""Figures as PNG bytes (matplotlib, Agg backend): computed data in, pictures out."""

import io
from typing import List


def warm_up() -> None:
    """Import matplotlib's figure, Agg canvas and font cache now, while there is time to spare."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def _new_figure(width: float, height: float):
    """A bare Agg figure: no pyplot, so no global state and no GUI backend to import."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def figure_row(n_panels: int):
    fig = _new_figure(4.2 * n_panels, 3.4)
    axes = fig.subplots(1, n_panels, squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.86, wspace=0.3)
    return fig, list(axes[0])


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def curves_plot(history: List[dict]) -> bytes:
    """Loss and accuracy per epoch: training against validation, training loss against val_ce."""
    fig, (ax_loss, ax_ce, ax_acc) = figure_row(3)
    epochs = list(range(1, len(history) + 1))
    series = lambda key: [m.get(key, float("nan")) for m in history]  # noqa: E731
    ax_loss.plot(epochs, series("train_loss"), label="train_loss")
    ax_loss.plot(epochs, series("val_loss"), label="val_loss")
    ax_loss.set_title("training loss (as trained)")
    ax_ce.plot(epochs, series("val_ce"), color="tab:red", label="val_ce")
    ax_ce.set_title("validation cross-entropy (honest)")
    best = min(range(len(history)), key=lambda i: history[i].get("val_ce", float("inf")))
    ax_ce.axvline(best + 1, color="grey", linestyle=":", label=f"min at epoch {best + 1}")
    ax_acc.plot(epochs, series("train_acc"), label="train_acc")
    ax_acc.plot(epochs, series("val_acc"), label="val_acc")
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_ce, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return png_bytes(fig)


def health_plot(history: List[dict]) -> bytes:
    """Per-layer gradient norms, update ratios and dead units, and calibration, per epoch."""
    from matplotlib.ticker import NullLocator

    groups = [
        ("grad_norm/", "gradient norm", True),
        ("update_ratio/", "update / weight", True),
        ("dead_units/", "dead units (share)", False),
    ]
    fig, axes = figure_row(4)
    epochs = list(range(1, len(history) + 1))
    for ax, (prefix, title, log_scale) in zip(axes, groups):
        keys = sorted({k for m in history for k in m if k.startswith(prefix)})
        for key in keys:
            ax.plot(epochs, [m.get(key, float("nan")) for m in history], label=key.split("/")[1])
        if log_scale and keys:
            ax.set_yscale("log")
            # no minor ticks: a log axis makes a dozen per decade, and laying out their labels
            # was most of the figure's drawing time
            ax.yaxis.set_minor_locator(NullLocator())
        if prefix == "update_ratio/":
            ax.axhline(1e-3, color="grey", linestyle=":", label="~1e-3 healthy")
        ax.set_title(title)
    for key in ("val_confidence", "val_ece", "val_ce_top1pct_share"):
        axes[3].plot(epochs, [m.get(key, float("nan")) for m in history], label=key)
    axes[3].set_title("calibration (validation)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return png_bytes(fig)


def confusion_plot(labels, predicted, n_classes: int) -> bytes:
    """Confusion matrix of the test set: rows true class, columns predicted class."""
    import numpy as np

    matrix = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    fig, (ax,) = figure_row(1)
    fig.set_size_inches(5.2, 4.6)
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for i in range(n_classes):
        for j in range(n_classes):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if i == j else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(n_classes))
    ax.set_yticks(range(n_classes))
    ax.set_title(f"test confusion matrix ({int(np.trace(matrix))}/{matrix.sum()} right)")
    return png_bytes(fig)


def confident_mistakes_plot(images, labels, probs, count: int = 16) -> bytes:
    """The test images misclassified with the highest confidence, with their probabilities.

    The images are tiled into one picture on one axes: sixteen axes of their own cost matplotlib
    three times as long to draw.
    """
    import numpy as np

    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:count]
    columns = 8
    rows = max(1, -(-len(order) // columns))
    side = int(round(np.sqrt(images.shape[1])))
    gap = side // 2  # room between tiles, and above each for its caption
    cell_w, cell_h = side + gap, side + 2 * gap
    mosaic = np.full((rows * cell_h + gap // 2, columns * cell_w), np.nan)
    width = 1.6 * columns  # inches; the mosaic fills it, with 0.4 inch above for the title
    height = width * mosaic.shape[0] / mosaic.shape[1] + 0.4
    fig = _new_figure(width, height)
    ax = fig.add_axes((0, 0, 1, 1 - 0.4 / height))
    ax.axis("off")
    for slot, index in enumerate(order):
        top, left = (slot // columns) * cell_h + 2 * gap, (slot % columns) * cell_w + gap // 2
        mosaic[top : top + side, left : left + side] = images[index].reshape(side, side)
        truth, guess = labels[index], predicted[index]
        caption = f"true {truth} p={probs[index, truth]:.2f}\nsaid {guess} p={probs[index, guess]:.2f}"
        ax.text(left + side / 2, top - 1, caption, fontsize=7, ha="center", va="bottom")
    ax.imshow(mosaic, cmap="gray_r", interpolation="nearest")
    fig.suptitle("most confident mistakes (test set)", fontsize=9)
    return png_bytes(fig)
