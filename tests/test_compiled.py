"""The compiled training step (mlpx.core.compiled) against the NumPy path it stands for."""

from pathlib import Path

import numpy as np
import pytest

from mlpx.builtins.activations import LeakyReLU, ReLU
from mlpx.builtins.initializers import HeNormal
from mlpx.builtins.losses import CrossEntropy, MSESoftmax
from mlpx.builtins.optimizers import SGD, Adam, Momentum
from mlpx.core.compiled import CompiledSteps, available, compiled_steps_for, declared_kernel
from mlpx.core.compiled.step import MAX_LAYERS
from mlpx.core.model import MLP
from mlpx.core.trainer import fit
from mlpx.errors import DivergenceError


def _data(sizes, n_samples=96, seed=0):
    rng = np.random.default_rng(seed)

    class Data:
        x_train = rng.random((n_samples, sizes[0]), dtype=np.float32)
        y_train = rng.integers(0, sizes[-1], n_samples)
        x_val, y_val, n_classes = x_train[:24], y_train[:24], sizes[-1]

    return Data


def _trained(sizes, optimizer, compiled=None, epochs=1, batch_size=32, data=None, **kwargs):
    model = MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(1))
    if compiled is not None:  # else fit's default
        kwargs["compiled"] = compiled
    result = fit(
        model, CrossEntropy(), optimizer, data or _data(sizes), epochs=epochs, batch_size=batch_size,
        rng=np.random.default_rng(2), blas_threads=1, **kwargs,
    )  # fmt: skip
    return model, result


def test_the_step_is_built():
    assert available(), (
        "mlpx/core/compiled/_step.c was not built (or NumPy's BLAS is out of reach): "
        "`pip install -e .` builds it, with a C compiler on the PATH"
    )


@pytest.mark.parametrize(
    "sizes", [[20, 16, 8, 5], [20, 5], [12, 10, 9, 8, 7, 6, 3]], ids=["2-hidden", "none", "5-hidden"]
)
@pytest.mark.parametrize(
    "make_optimizer", [lambda: SGD(lr=0.2), lambda: Momentum(lr=0.1, momentum=0.8)], ids=["sgd", "momentum"]
)
@pytest.mark.parametrize("batch_size", [32, 40], ids=["full-batches", "partial-last"])
def test_compiled_epochs_match_the_numpy_path(sizes, make_optimizer, batch_size):
    compiled, compiled_result = _trained(sizes, make_optimizer(), True, epochs=2, batch_size=batch_size)
    numpy_model, numpy_result = _trained(sizes, make_optimizer(), False, epochs=2, batch_size=batch_size)
    initial = MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(1)).params
    for key, param in numpy_model.params.items():
        np.testing.assert_allclose(compiled.params[key], param, rtol=1e-4, atol=1e-6, err_msg=key)
        assert np.abs(compiled.params[key] - initial[key]).max() > 1e-3, f"{key} was not trained"
    for ours, theirs in zip(compiled_result.history, numpy_result.history, strict=True):
        assert ours["train_acc"] == theirs["train_acc"]  # every row's arg max, in epoch order
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert ours["val_ce"] == pytest.approx(theirs["val_ce"], rel=1e-4)


def test_the_compiled_step_is_the_default_for_the_builtins_and_stays_reproducible(monkeypatch):
    sizes = [20, 16, 8, 5]
    calls = []
    run = CompiledSteps.run
    monkeypatch.setattr(CompiledSteps, "run", lambda self, *args: calls.append(args) or run(self, *args))
    first, _ = _trained(sizes, Momentum(lr=0.1))
    assert len(calls) == 3  # every step of the epoch's 96 rows
    again, _ = _trained(sizes, Momentum(lr=0.1))
    for key in first.params:
        np.testing.assert_array_equal(first.params[key], again.params[key])  # bit-identical at a fixed count


def test_one_compiled_step_updates_like_the_python_methods_to_float32_rounding():
    sizes = [30, 12, 6]
    data = _data(sizes, n_samples=16)
    for make in (lambda: SGD(lr=0.5), lambda: Momentum(lr=0.5, momentum=0.9)):
        models = [MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(3)) for _ in range(2)]
        optimizers = [make(), make()]
        predicted = np.empty(16, np.intp)
        steps = compiled_steps_for(
            models[0], CrossEntropy(), optimizers[0], data.x_train, data.y_train, predicted
        )
        order = np.arange(16)
        assert steps.begin_epoch(order)
        for _ in range(3):  # the velocity carries over between steps
            value = steps.run(0, 16, optimizers[0].lr, np.inf)
            logits = models[1].forward(data.x_train)
            targets = np.eye(sizes[-1], dtype=np.float32)[data.y_train]
            expected, d_logits = CrossEntropy().value_and_grad(logits, targets)
            np.testing.assert_array_equal(predicted, logits.argmax(axis=1))
            grads = models[1].backward(d_logits)
            optimizers[1].step(models[1].params, grads)
            assert value == pytest.approx(expected, rel=1e-6)
            for key, param in models[1].params.items():
                np.testing.assert_allclose(models[0].params[key], param, rtol=1e-5, atol=1e-7, err_msg=key)


class _OwnReLU(ReLU):
    """A subclass: it inherits ReLU's methods, yet mlpx cannot know it did not mean to change them."""


class _Nesterov(Momentum):
    """A variant of momentum written as a subclass that rewrites the step."""

    def step(self, params, grads, fused=()):
        super().step(params, grads, fused)


def _patched_relu():
    relu = ReLU()
    relu.forward = lambda z, out=None: np.maximum(z, 0, out=out)
    return relu


@pytest.mark.parametrize(
    "activation, loss, optimizer, dtype",
    [
        (_OwnReLU(), CrossEntropy(), SGD(), np.float32),
        (_patched_relu(), CrossEntropy(), SGD(), np.float32),
        (LeakyReLU(), CrossEntropy(), SGD(), np.float32),
        (ReLU(), MSESoftmax(), SGD(), np.float32),
        (ReLU(), CrossEntropy(), _Nesterov(), np.float32),
        (ReLU(), CrossEntropy(), Adam(), np.float32),
        (ReLU(), CrossEntropy(), SGD(), np.float64),
    ],
    ids=["subclass", "replaced-method", "leaky-relu", "mse-softmax", "nesterov", "adam", "float64"],
)
def test_only_the_exact_builtins_in_float32_take_the_compiled_step(activation, loss, optimizer, dtype):
    model = MLP([8, 4, 3], activation, HeNormal(), np.random.default_rng(0), dtype=dtype)
    x = np.zeros((6, 8), dtype)
    assert compiled_steps_for(model, loss, optimizer, x, np.zeros(6, np.int64), np.empty(6, np.intp)) is None
    reference = MLP([8, 4, 3], ReLU(), HeNormal(), np.random.default_rng(0))
    assert compiled_steps_for(
        reference, CrossEntropy(), SGD(), x.astype(np.float32), np.zeros(6, np.int64), np.empty(6, np.intp)
    )


def test_declared_kernel_reads_the_exact_class():
    assert declared_kernel(ReLU()) == "relu" and declared_kernel(Momentum()) == "momentum"
    assert declared_kernel(_OwnReLU()) is None and declared_kernel(_Nesterov()) is None


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_a_diverging_step_raises_before_it_updates(compiled):
    sizes = [20, 16, 8, 5]
    model = MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(1))
    model.params["W3"][0, 0] = np.nan
    before = model.weights()
    with pytest.raises(DivergenceError, match="step 1"):
        fit(model, CrossEntropy(), Momentum(), _data(sizes), epochs=1, batch_size=32,
            rng=np.random.default_rng(2), compiled=compiled, blas_threads=1)  # fmt: skip
    for key, param in before.items():
        np.testing.assert_array_equal(model.params[key], param)  # NaN included: nothing was stepped


def test_parameters_replaced_between_epochs_are_trained_from_then_on():
    sizes = [20, 16, 8, 5]
    results = {}
    for compiled in (True, False):
        model = MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(1))

        def restore(epoch, metrics, model=model):  # as a user's hook might: fresh arrays, not in place
            if epoch == 1:
                model.params["W1"] = model.params["W1"] * 0.5
                model.params["b2"] = model.params["b2"].copy()

        fit(model, CrossEntropy(), SGD(lr=0.2), _data(sizes), epochs=2, batch_size=32,
            rng=np.random.default_rng(2), compiled=compiled, blas_threads=1,
            on_epoch_end=restore)  # fmt: skip
        results[compiled] = model.params
    for key, param in results[False].items():
        np.testing.assert_allclose(results[True][key], param, rtol=1e-4, atol=1e-6, err_msg=key)


def test_health_metrics_measure_their_step_through_the_python_path():
    sizes = [20, 16, 8, 5]
    _, compiled = _trained(sizes, SGD(lr=0.2), True, epochs=2, health=True)
    _, numpy_path = _trained(sizes, SGD(lr=0.2), False, epochs=2, health=True)
    for ours, theirs in zip(compiled.history, numpy_path.history, strict=True):
        ratios = [key for key in theirs if key.startswith("update_ratio")]
        assert ratios and all(ours[key] == pytest.approx(theirs[key], rel=1e-3) for key in ratios)


def test_rows_outside_the_training_set_are_refused():
    sizes = [8, 4, 3]
    data = _data(sizes, n_samples=10)
    model = MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(0))
    steps = compiled_steps_for(
        model, CrossEntropy(), SGD(), data.x_train, data.y_train, np.empty(10, np.intp)
    )
    with pytest.raises(ValueError, match="an order of every one of the 10 rows"):
        steps.begin_epoch(np.arange(4))  # predicted has a row per training row, and no more
    assert steps.begin_epoch(np.array([0, 1, 2, 10, 4, 5, 6, 7, 8, 9]))
    with pytest.raises(IndexError, match="row 10 of a training set of 10 rows"):
        steps.run(0, 4, 0.1, np.inf)
    with pytest.raises(IndexError, match="rows 8 to 12 of an order of 10"):
        steps.run(8, 4, 0.1, np.inf)


class _ClippedMLP(MLP):
    """A model that changes its backward pass: the C step must not stand for it."""

    def backward(self, d_logits, fused=None):
        return super().backward(np.clip(d_logits, -1e-3, 1e-3), fused)


def test_a_changed_model_or_a_method_patched_on_a_builtin_class_trains_in_python(monkeypatch):
    sizes = [8, 4, 3]
    data = _data(sizes, n_samples=12)
    args = (CrossEntropy(), SGD(), data.x_train, data.y_train, np.empty(12, np.intp))
    assert compiled_steps_for(_ClippedMLP(sizes, ReLU(), HeNormal(), np.random.default_rng(0)), *args) is None
    wrapped = MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(0))
    wrapped.forward = lambda x, keep=True: MLP.forward(wrapped, x, keep)  # a plugin's hook may wrap it
    assert compiled_steps_for(wrapped, *args) is None
    monkeypatch.setattr(ReLU, "backward", lambda self, z, a, grad_a, out=None: grad_a * 0)
    assert declared_kernel(ReLU()) is None
    assert compiled_steps_for(MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(0)), *args) is None


def test_deeper_networks_than_the_step_takes_train_in_python():
    sizes = [6] * (MAX_LAYERS + 1) + [3]  # one layer more than the C step's limit
    model, result = _trained(sizes, SGD(lr=0.1))
    assert np.isfinite(result.history[0]["train_loss"])
    args = (CrossEntropy(), SGD(), np.zeros((4, 6), np.float32), np.zeros(4, np.int64), np.empty(4, np.intp))
    assert compiled_steps_for(model, *args) is None


def test_labels_changed_by_a_hook_during_fit_change_neither_path():
    sizes = [20, 16, 8, 5]
    results = {}
    for compiled in (True, False):
        data = _data(sizes)

        def noisy(epoch, metrics, labels=data.y_train):  # in place, as a label-noise hook might
            labels[:] = (labels + 1) % sizes[-1]

        model = MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(1))
        fit(model, CrossEntropy(), SGD(lr=0.2), data, epochs=2, batch_size=32, rng=np.random.default_rng(2),
            compiled=compiled, blas_threads=1, on_epoch_end=noisy)  # fmt: skip
        results[compiled] = model.params  # both train on the labels as fit was given them
    for key, param in results[False].items():
        np.testing.assert_allclose(results[True][key], param, rtol=1e-4, atol=1e-6, err_msg=key)


def test_the_built_step_is_not_older_than_its_source():
    import mlpx.core.compiled.step as step

    built = Path(step._step.__file__)
    source = Path(step.__file__).with_name("_step.c")
    if built.parent == source.parent:  # an editable install builds next to the source
        assert built.stat().st_mtime >= source.stat().st_mtime, (
            f"{built.name} was built before _step.c last changed: `pip install -e .` rebuilds it"
        )


@pytest.mark.parametrize("setting, tag", [("true", "2 of 2 epochs"), ("false", "0 of 2 epochs")])
def test_a_run_records_which_path_trained_and_trainer_compiled_switches_it(run_mlpx, workdir, setting, tag):
    from mlflow import MlflowClient

    from tests.conftest import SMALL, store_uri

    completed = run_mlpx([*SMALL, f"trainer.compiled={setting}", "tracking.plots=false"], cwd=workdir)
    assert completed.returncode == 0, completed.stderr
    client = MlflowClient(store_uri(workdir))
    (run,) = client.search_runs([client.get_experiment_by_name("mlpx").experiment_id])
    assert run.data.tags["mlpx.compiled_step"] == tag
    assert run.data.params["trainer.compiled"] == ("True" if setting == "true" else "False")
    assert run.data.metrics["test_acc"] > 0.5


def test_a_method_patched_by_a_hook_during_fit_sends_the_next_epochs_to_python():
    sizes = [20, 16, 8, 5]
    model = MLP(sizes, ReLU(), HeNormal(), np.random.default_rng(1))
    frozen = {}

    def freeze(epoch, metrics):  # from epoch 2 on, a backward pass that moves nothing
        if epoch == 1:
            model.backward = lambda d_logits, fused=None: {
                k: np.zeros_like(p) for k, p in model.params.items()
            }
            frozen.update(model.weights())

    result = fit(model, CrossEntropy(), SGD(lr=0.2), _data(sizes), epochs=3, batch_size=32,
                 rng=np.random.default_rng(2), blas_threads=1, on_epoch_end=freeze)  # fmt: skip
    assert result.compiled_epochs == 1
    for key, param in frozen.items():
        np.testing.assert_array_equal(model.params[key], param, err_msg=key)  # the patch was obeyed
