"""Example lifecycle plugin: each digit's validation accuracy every epoch, logged through ``run``.

Lifecycle plugins act on every run, so this folder is not loaded by default; add it to the
plugin folders: ``MLPX_PLUGINS_DIR=plugins:plugins/lifecycle python -m mlpx``. Each epoch it
logs ``val_acc/class_K`` (step = epoch) for every class K; at the end it tags the run with its
worst class (``mlpx.per_class.worst``, from ``on_run_end``: the tracker closes the run after it)
and logs the table ``per_class_accuracy.csv`` (epoch x class) as an artifact.
"""

import tempfile
from pathlib import Path

import numpy as np

import mlpx

_tables = {}  # id(run) -> one row of per-class accuracies per epoch


@mlpx.hookimpl
def on_epoch_end(run, epoch):
    if not hasattr(run.model, "logits"):  # a hand-written network (network=NAME): nothing to score
        return
    data = run.dataset
    predicted = run.model.logits(data.x_val.astype(run.model.dtype, copy=False)).argmax(axis=1)
    hits = np.bincount(data.y_val[predicted == data.y_val], minlength=data.n_classes)
    counts = np.bincount(data.y_val, minlength=data.n_classes)
    accuracy = hits / np.maximum(counts, 1)
    _tables.setdefault(id(run), []).append(accuracy)
    for label, value in enumerate(accuracy):
        run.log_metric(f"val_acc/class_{label}", float(value), step=epoch)


@mlpx.hookimpl
def on_run_end(run):
    table = _tables.pop(id(run), None)
    if not table:
        return
    last = table[-1]
    worst = int(np.argmin(last))
    run.set_tag("mlpx.per_class.worst", f"class {worst}: val_acc {last[worst]:.4f}")
    with tempfile.TemporaryDirectory() as folder:  # run.log_artifact has sent it when it returns
        path = Path(folder) / "per_class_accuracy.csv"
        header = "epoch," + ",".join(f"class_{k}" for k in range(len(last)))
        rows = [f"{epoch}," + ",".join(f"{v:.4f}" for v in row) for epoch, row in enumerate(table, 1)]
        path.write_text("\n".join([header, *rows]) + "\n")
        run.log_artifact(str(path))
