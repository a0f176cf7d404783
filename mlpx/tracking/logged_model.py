"""The MLflow pyfunc model of a trained mlpx MLP ("models from code"): weights, activation, softmax.

MLflow copies this file into every logged model and runs it when the model loads, so it imports
neither mlpx nor anything else of this repository: only NumPy, MLflow, the model's artifacts
(``weights.npz``, plain arrays loaded with ``allow_pickle=False``, and ``network.json``, the layer
count, dtype and activation) and the activation's own source file, shipped as ``code_paths``.
That file may ``import mlpx`` for ``@mlpx.hookimpl``: where mlpx is not installed, a stand-in
module offering only ``hookimpl`` takes its place.

``predict(x)``: ``x`` of shape (n_samples, 784), float32 in [0, 1]; returns the class
probabilities, of shape (n_samples, 10), each row summing to 1.
"""

import importlib
import json
import sys
import types

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


def _hookimpl(function=None, **options):
    """``@hookimpl`` and ``@hookimpl(optionalhook=True)``: leaves the function as it is."""
    return function if function is not None else (lambda f: f)


def _import_activation_module(module_name: str):
    try:
        import mlpx.hookspecs  # noqa: F401  the real one, where mlpx is installed
    except ImportError:
        stand_in = types.ModuleType("mlpx")
        stand_in.hookimpl = _hookimpl
        hookspecs = types.ModuleType("mlpx.hookspecs")
        hookspecs.hookimpl = _hookimpl
        stand_in.hookspecs = hookspecs
        sys.modules.setdefault("mlpx", stand_in)
        sys.modules.setdefault("mlpx.hookspecs", hookspecs)
    return importlib.import_module(module_name)  # the model's code/ folder is on sys.path


def build_activation(spec: dict):
    """The activation object ``spec`` names, built by its plugin's own ``register_activations``."""
    module = _import_activation_module(spec["module"])
    factories = {}

    def register(name, factory, config=None, *, version=None):
        factories[name] = factory

    module.register_activations(register)
    return factories[spec["name"]](**spec["hyperparameters"])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


class MlpxNetwork(PythonModel):
    """An MLP's forward pass: ``a = activation(a @ W + b)`` per hidden layer, softmax at the end."""

    def load_context(self, context) -> None:
        with open(context.artifacts["network"]) as spec_file:
            spec = json.load(spec_file)
        self.dtype = np.dtype(spec["dtype"])
        with np.load(context.artifacts["weights"], allow_pickle=False) as weights:
            self.layers = [
                (weights[f"W{layer}"], weights[f"b{layer}"]) for layer in range(1, spec["layers"] + 1)
            ]
        self.activation = build_activation(spec["activation"])

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:  # our signature
        a = np.asarray(model_input, dtype=self.dtype)
        if a.ndim != 2 or a.shape[1] != self.layers[0][0].shape[0]:
            raise ValueError(f"expected images of shape (n, {self.layers[0][0].shape[0]}), got {a.shape}")
        for layer, (weights, bias) in enumerate(self.layers, start=1):
            z = a @ weights + bias
            a = z if layer == len(self.layers) else self.activation.forward(z)
        return softmax(a.astype(np.float64))


set_model(MlpxNetwork())
