"""Built-in network: ``mlp``, mlpx's own MLP, the default of ``python -m mlpx`` (``network=mlp``).

A run with ``network=mlp`` trains the MLP the ``model``, ``activation``, ``initializer``,
``loss`` and ``optimizer`` groups describe, through ``mlpx.core.trainer``. For ``mlpx doctor mlp``
the same network in its default shape (784-300-75-10, ReLU, He-normal, softmax and
cross-entropy, float64) is handed to the doctor as a ``Network``, like any user network.
"""

from typing import Dict

import numpy as np

from mlpx.builtins.activations import ReLU
from mlpx.builtins.initializers import HeNormal
from mlpx.builtins.losses import CrossEntropy
from mlpx.core.model import MLP
from mlpx.core.numerics import softmax
from mlpx.hookspecs import hookimpl

#: layer sizes of the default network (``model.hidden=[300,75]`` on MNIST)
DEFAULT_SIZES = (784, 300, 75, 10)

_LOSS = CrossEntropy()


def _build() -> MLP:
    return MLP(DEFAULT_SIZES, ReLU(), HeNormal(), np.random.default_rng(0), dtype=np.float64)


def _forward(model: MLP, x: np.ndarray) -> np.ndarray:
    """Softmax probabilities (n_samples, 10) of ``x`` (n_samples, 784)."""
    return softmax(model.logits(np.asarray(x, dtype=np.float64)))


def _gradients(model: MLP, x: np.ndarray, y_onehot: np.ndarray) -> Dict[str, np.ndarray]:
    """Gradients of the mean cross-entropy of a batch, copied (``backward`` reuses its arrays)."""
    logits = model.forward(np.ascontiguousarray(x, dtype=np.float64))
    grads = model.backward(_LOSS.grad(logits, np.asarray(y_onehot, dtype=np.float64)))
    return {key: g.copy() for key, g in grads.items()}


def _loss(model: MLP, x: np.ndarray, y_onehot: np.ndarray) -> float:
    return _LOSS.value(model.logits(np.asarray(x, dtype=np.float64)), np.asarray(y_onehot, dtype=np.float64))


def mlp_network():
    """The default MLP as a ``mlpx.doctor.Network`` (its gradients, stepped by mlpx's optimizer)."""
    from mlpx.doctor.network import Network

    return Network(
        build=_build,
        forward=_forward,
        objective={"loss": "cross_entropy", "reduction": "mean"},
        params=lambda model: model.params,
        gradients=_gradients,
        loss=_loss,
        description="mlpx's own MLP, 784-300-75-10 (ReLU, He-normal, softmax + cross-entropy)",
    )


@hookimpl
def register_networks(register):
    register("mlp", mlp_network)
