"""Terminal progress: one line per epoch on the ``mlpx`` logger (Hydra sends it to stderr)."""

import logging

from mlpx.hookspecs import hookimpl

log = logging.getLogger("mlpx")


class ProgressReporter:
    """Lifecycle plugin that logs each epoch's losses, accuracy and duration."""

    @hookimpl
    def on_run_start(self, run) -> None:
        sizes = run.dataset.sizes()
        describe = getattr(run.model, "describe", None)  # a user network (mlpx.runs.network_run)
        if describe is not None:
            log.info(
                "training %s on %s (train %d, val %d, test %d)",
                describe(),
                run.components["dataset"].name,
                sizes["train"],
                sizes["val"],
                sizes["test"],
            )
            return
        names = {kind: component.name for kind, component in run.components.items()}
        log.info(
            "training %s on %s (train %d, val %d, test %d): %s, %s, %s, %s",
            "-".join(map(str, run.model.sizes)),
            names["dataset"],
            sizes["train"],
            sizes["val"],
            sizes["test"],
            names["activation"],
            names["loss"],
            names["initializer"],
            names["optimizer"],
        )

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics) -> None:
        log.info(
            "epoch %*d/%d  train_loss %.4f  val_loss %.4f  val_ce %.4f  val_acc %6.2f%%  %.2fs",
            len(str(run.cfg.trainer.epochs)),
            epoch,
            run.cfg.trainer.epochs,
            metrics["train_loss"],
            metrics["val_loss"],
            metrics["val_ce"],
            100 * metrics["val_acc"],
            metrics["epoch_seconds"],
        )
