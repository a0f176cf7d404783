"""Training the user's network with its own code: one minibatch step, or one epoch.

The code's own ``train_epoch`` when given, else its ``update`` per minibatch, else its
optimizer (``gradients`` then ``step``), else plain SGD on its ``gradients`` with ``lr``.
"""

from typing import Any, Optional

import numpy as np

from mlpx.doctor.subject import Subject

#: records per minibatch when the code takes batches
MINIBATCH = 16


def can_train(subject: Subject) -> bool:
    return any(
        (
            subject.train_epoch,
            subject.update_fn,
            subject.optimizer,
            subject.gradients_fn is not None and subject.lr is not None,
        )
    )


def step(subject: Subject, net: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """One training step on (x, y) with the code's own update, optimizer or gradients."""
    if subject.update_fn is not None:
        return subject.step(net, "update", subject.update_fn, x, y)
    if subject.optimizer is not None:
        subject.call("optimizer gradients", subject.optimizer["gradients"], net, x, y)  # stored on net
        subject.call("optimizer step", subject.optimizer["step"], net)
        return net
    grads = subject.call("gradients", subject.gradients_fn, net, x, y)
    lr = subject.learning_rate(net)
    arrays = subject.arrays(net)
    for name, g in dict(grads).items():
        if name in arrays:
            arrays[name] -= lr * np.asarray(g, dtype=arrays[name].dtype).reshape(arrays[name].shape)
    return net


def epoch(
    subject: Subject,
    net: Any,
    x: np.ndarray,
    y: np.ndarray,
    number: int,
    rng: np.random.Generator,
    batch: Optional[int] = None,
) -> Any:
    """One epoch of the code's own loop (``train_epoch``), else shuffled minibatch steps."""
    if subject.train_epoch is not None:
        result = subject.call("train_epoch", subject.train_epoch, net, x, y, number)
        return net if result is None else result
    size = subject.check_batch or batch or MINIBATCH
    order = rng.permutation(len(x))
    for start in range(0, len(x), size):
        index = order[start : start + size]
        net = step(subject, net, x[index], y[index])
    return net
