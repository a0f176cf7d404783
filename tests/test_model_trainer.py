"""The network's backward pass, one SGD step worked by hand, and the trainer on real MNIST."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from mlpx.builtins.activations import ReLU, Tanh
from mlpx.builtins.initializers import HeNormal
from mlpx.builtins.losses import CrossEntropy, MSESoftmax
from mlpx.builtins.optimizers import SGD, Momentum
from mlpx.cli import CONF_DIR, plugin_host
from mlpx.core.model import MLP
from mlpx.core.trainer import fit, fused_targets_of
from mlpx.errors import ConfigError, PluginError
from mlpx.runs.runner import execute, prepare


def test_one_sgd_step_matches_the_hand_worked_example():
    # x = [1, 2], class 0.  z1 = x W1 + b1 = [0.7, -0.1] -> a1 = [0.7, 0]
    # logits = a1 W2 = [0.35, -0.35]; p0 = sigmoid(0.7) = 0.668187772; loss = -ln p0 = 0.403186
    # d_logits = p - y = [-d, d] with d = 0.331812228; dW2 = a1^T d_logits; da1 = [-d, d];
    # dz1 = [-d, 0]; dW1 = x^T dz1 = [[-d, 0], [-2d, 0]]; each param moves by -0.1 * grad.
    model = MLP([2, 2, 2], ReLU(), HeNormal(), np.random.default_rng(0), dtype=np.float64)
    model.params.update(
        W1=np.array([[0.1, -0.2], [0.3, 0.4]]),
        b1=np.array([0.0, -0.7]),
        W2=np.array([[0.5, -0.5], [1.0, 2.0]]),
        b2=np.array([0.0, 0.0]),
    )
    x, y = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0]])
    loss, optimizer = CrossEntropy(), SGD(lr=0.1)
    logits = model.forward(x)
    assert loss.value(logits, y) == pytest.approx(0.40318604888545784, rel=1e-12)
    optimizer.step(model.params, model.backward(loss.grad(logits, y)))
    expected = {
        "W1": [[0.1331812227831834, -0.2], [0.36636244556636677, 0.4]],
        "b1": [0.03318122278318338, -0.7],
        "W2": [[0.5232268559482284, -0.5232268559482284], [1.0, 2.0]],
        "b2": [0.03318122278318338, -0.03318122278318338],
    }
    for key, value in expected.items():
        np.testing.assert_allclose(model.params[key], value, rtol=1e-12, atol=1e-15, err_msg=key)


@pytest.mark.parametrize("activation", [ReLU(), Tanh()], ids=["relu", "tanh"])
@pytest.mark.parametrize("loss", [CrossEntropy(), MSESoftmax()], ids=["cross_entropy", "mse_softmax"])
def test_backward_matches_central_differences(activation, loss):
    rng = np.random.default_rng(3)
    model = MLP([6, 5, 4, 3], activation, HeNormal(), rng, dtype=np.float64)
    for key in model.params:
        model.params[key] += 0.1 * rng.standard_normal(model.params[key].shape)  # nonzero biases
    x = rng.standard_normal((7, 6))
    y = np.eye(3)[rng.integers(0, 3, 7)]
    grads = {k: g.copy() for k, g in model.backward(loss.grad(model.forward(x), y)).items()}
    eps = 1e-6
    for key, param in model.params.items():
        numeric = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            saved = param[index]
            param[index] = saved + eps
            up = loss.value(model.forward(x, keep=False), y)
            param[index] = saved - eps
            down = loss.value(model.forward(x, keep=False), y)
            param[index] = saved
            numeric[index] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-5, atol=1e-8, err_msg=key)


def _small_cfg(tmp_path, overrides=()):
    plugin_host()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                f"paths.output_dir={tmp_path}",
                f"data.cache_dir={tmp_path / 'cache'}",
                "data.train_size=3000",
                "data.val_size=1000",
                "data.test_size=2000",
                "trainer.epochs=3",
                "model.hidden=[64,32]",
                *overrides,
            ],
        )


def _train(cfg, tmp_path):
    host = plugin_host()
    return execute(prepare(cfg, host, tmp_path), host.pm.hook)


def test_trainer_learns_mnist_subset_and_reports_every_metric(tmp_path):
    result = _train(_small_cfg(tmp_path), tmp_path)
    assert len(result.history) == 3
    assert {"train_loss", "train_acc", "val_loss", "val_ce", "val_acc", "lr", "epoch_seconds"} <= set(
        result.history[0]
    )
    assert {"grad_norm/layer1", "update_ratio/layer3", "val_ece"} <= set(result.history[0])  # health
    assert result.history[-1]["val_acc"] > 0.85
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.test["test_acc"] > 0.85
    assert result.history[-1]["lr"] < result.history[0]["lr"]  # cosine decay
    assert all(w.dtype == np.float32 for w in result.weights.values())


def test_val_ce_is_cross_entropy_whatever_the_training_loss(tmp_path):
    result = _train(_small_cfg(tmp_path, ["loss=mse_softmax"]), tmp_path)
    last = result.history[-1]
    assert last["val_loss"] != pytest.approx(last["val_ce"])
    assert 0 < last["val_loss"] < 1 < 10 * last["val_ce"]


def test_same_seed_gives_identical_metrics_and_weights(tmp_path):
    fixed = ["trainer.blas_threads=2"]  # auto may pick another count, which changes the last bits
    first = _train(_small_cfg(tmp_path, fixed), tmp_path)
    second = _train(_small_cfg(tmp_path, fixed), tmp_path)
    other = _train(_small_cfg(tmp_path, [*fixed, "seed=1"]), tmp_path)
    strip = [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in first.history]
    assert strip == [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in second.history]
    for key in first.weights:
        np.testing.assert_array_equal(first.weights[key], second.weights[key])
    assert not np.array_equal(first.weights["W1"], other.weights["W1"])


def test_float64_model_trains_in_float64(tmp_path):
    result = _train(_small_cfg(tmp_path, ["model.dtype=float64", "trainer.epochs=1"]), tmp_path)
    assert all(w.dtype == np.float64 for w in result.weights.values())


def test_minibatches_are_vectorised_not_per_sample(tmp_path):
    calls = []

    class CountingLoss:  # value and grad only: the trainer calls both, once per minibatch
        def value(self, logits, y_onehot):
            return CrossEntropy().value(logits, y_onehot)

        def grad(self, logits, y_onehot):
            calls.append(len(logits))
            return CrossEntropy().grad(logits, y_onehot)

    cfg = _small_cfg(tmp_path, ["trainer.epochs=1", "trainer.batch_size=128"])
    run = prepare(cfg, plugin_host(), tmp_path)
    fit(
        run.model,
        CountingLoss(),
        run.instances["optimizer"],
        run.dataset,
        epochs=1,
        batch_size=128,
        rng=np.random.default_rng(0),
    )
    assert calls == [128] * 23 + [3000 - 128 * 23]


def test_invalid_values_and_rejected_hyperparameters_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match=r"model.hidden=\[64, 0\]"):
        prepare(_small_cfg(tmp_path, ["model.hidden=[64,0]"]), plugin_host(), tmp_path)
    with pytest.raises(PluginError, match="optimizer 'momentum'.*momentum must be in"):
        prepare(_small_cfg(tmp_path, ["optimizer.momentum=1.5"]), plugin_host(), tmp_path)
    with pytest.raises(PluginError, match="optimizer 'sgd'.*unexpected keyword argument 'beta1'"):
        prepare(_small_cfg(tmp_path, ["optimizer=sgd", "+optimizer.beta1=0.9"]), plugin_host(), tmp_path)


def _reference_grads(params64, x, y, loss):
    """Textbook backprop in float64 with fresh arrays: the oracle for the buffered fast path."""
    n_layers = len(params64) // 2
    activations, pre = [x], []
    for layer in range(1, n_layers + 1):
        z = activations[-1] @ params64[f"W{layer}"] + params64[f"b{layer}"]
        pre.append(z)
        activations.append(np.maximum(z, 0) if layer < n_layers else z)
    delta = loss.grad(activations[-1], y)
    grads = {}
    for layer in range(n_layers, 0, -1):
        grads[f"W{layer}"] = activations[layer - 1].T @ delta
        grads[f"b{layer}"] = delta.sum(axis=0)
        if layer > 1:
            delta = (delta @ params64[f"W{layer}"].T) * (pre[layer - 2] > 0)
    return grads


def test_float32_fast_path_matches_float64_reference_across_batch_sizes():
    rng = np.random.default_rng(7)
    model = MLP([784, 300, 75, 10], ReLU(), HeNormal(), rng)  # float32, buffered
    for key in model.params:
        model.params[key] += np.float32(0.05) * rng.standard_normal(model.params[key].shape, np.float32)
    params64 = {k: v.astype(np.float64) for k, v in model.params.items()}
    loss = CrossEntropy()
    for n_samples in (128, 37, 128, 1):  # a second buffer set, then the first again
        x = rng.random((n_samples, 784), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n_samples)]
        model.forward(rng.random((5, 784), dtype=np.float32))  # another size in between
        logits = model.forward(x)
        grads = model.backward(loss.grad(logits, y))
        expected = _reference_grads(params64, x.astype(np.float64), y.astype(np.float64), loss)
        for key, value in expected.items():
            assert grads[key].dtype == np.float32
            scale = np.abs(value).max()
            np.testing.assert_allclose(grads[key], value, rtol=0, atol=1e-5 * scale, err_msg=key)


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1), lambda: Momentum(lr=0.1, momentum=0.9)])
def test_fused_weight_updates_match_the_plain_step_and_the_float64_reference(make):
    # the trainer lets BLAS apply SGD's step (or momentum's velocity update) inside the GEMM
    # that makes each weight gradient and the GEMV that sums each bias gradient; that must be
    # the same arithmetic as step(params, grads)
    rng = np.random.default_rng(3)
    plain, fused = (MLP([784, 300, 75, 10], ReLU(), HeNormal(), np.random.default_rng(0)) for _ in range(2))
    params64 = {k: v.astype(np.float64) for k, v in plain.params.items()}
    velocity64 = {k: np.zeros_like(v) for k, v in params64.items()}
    plain_opt, fused_opt, loss = make(), make(), CrossEntropy()
    mu = getattr(plain_opt, "momentum", 0.0)
    for lr in (0.1, 0.05, 0.02):  # a schedule sets lr between steps
        x = rng.random((128, 784), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]
        plain_opt.lr = fused_opt.lr = lr
        plain_opt.step(plain.params, plain.backward(loss.grad(plain.forward(x), y)))
        offer = fused_opt.fused_targets(dict(fused.params))
        grads = fused.backward(loss.grad(fused.forward(x), y), offer)
        assert fused.fused_keys == ["W3", "b3", "W2", "b2", "W1", "b1"]  # NumPy's BLAS: the fast path ran
        fused_opt.step(fused.params, grads, fused=fused.fused_keys)
        g64 = _reference_grads(params64, x.astype(np.float64), y.astype(np.float64), loss)
        for key in params64:
            velocity64[key] = mu * velocity64[key] + g64[key]
            params64[key] -= lr * velocity64[key]
    for key, expected in params64.items():
        scale = np.abs(expected).max()
        got = fused.params[key]
        np.testing.assert_allclose(got, plain.params[key], rtol=0, atol=1e-6 * scale, err_msg=key)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale, err_msg=key)


def test_fused_path_falls_back_to_numpy_for_an_input_blas_cannot_take():
    model = MLP([784, 30, 10], ReLU(), HeNormal(), np.random.default_rng(0))
    twin = MLP([784, 30, 10], ReLU(), HeNormal(), np.random.default_rng(0))
    x = np.asfortranarray(np.random.default_rng(1).random((16, 784), dtype=np.float32))
    y = np.eye(10, dtype=np.float32)[np.arange(16) % 10]
    optimizer, reference = SGD(lr=0.5), SGD(lr=0.5)
    grads = model.backward(CrossEntropy().grad(model.forward(x), y), optimizer.fused_targets(model.params))
    assert model.fused_keys == ["W2", "b2", "b1"]  # W1's gradient needs x, which is not C-contiguous
    optimizer.step(model.params, grads, fused=model.fused_keys)
    reference.step(twin.params, twin.backward(CrossEntropy().grad(twin.forward(np.ascontiguousarray(x)), y)))
    for key in model.params:
        np.testing.assert_allclose(model.params[key], twin.params[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_a_subclass_that_rewrites_step_is_not_fused_behind_its_back():
    class LoggedSGD(SGD):  # a plugin written before fused updates existed
        def __init__(self, lr=0.1):
            super().__init__(lr)
            self.steps = 0

        def step(self, params, grads):
            self.steps += 1
            super().step(params, grads)

    optimizer = LoggedSGD(lr=0.1)
    assert fused_targets_of(optimizer) is None and fused_targets_of(SGD()) is not None
    rng = np.random.default_rng(0)

    class Data:
        x_train, y_train = rng.random((64, 784), dtype=np.float32), rng.integers(0, 10, 64)
        x_val, y_val, n_classes = x_train[:16], y_train[:16], 10

    model = MLP([784, 16, 10], ReLU(), HeNormal(), np.random.default_rng(0))
    fit(model, CrossEntropy(), optimizer, Data, epochs=1, batch_size=16, rng=rng)
    assert optimizer.steps == 4


def test_a_fused_target_of_the_wrong_shape_is_refused_not_written_past():
    model = MLP([784, 30, 10], ReLU(), HeNormal(), np.random.default_rng(0))
    x = np.random.default_rng(1).random((8, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(8)]
    small = np.zeros((10, 10), np.float32)  # W1 is (784, 30)
    model.backward(CrossEntropy().grad(model.forward(x), y), {"W1": (small, 1.0, 0.0)})
    assert model.fused_keys == [] and not small.any()


def test_bias_column_sums_through_blas_match_numpy_and_accumulate():
    from mlpx.core.blas import column_sums_for

    column_sums = column_sums_for(np.float32)
    assert column_sums is not None  # NumPy's BLAS was found and passed its self-test
    rng = np.random.default_rng(0)
    for rows, cols in ((1, 10), (32, 300), (129, 75)):
        delta = rng.standard_normal((rows, cols), dtype=np.float32)
        bias = rng.standard_normal(cols, dtype=np.float32)
        expected = -0.1 * delta.astype(np.float64).sum(axis=0) + 0.9 * bias
        column_sums(-0.1, delta, 0.9, bias)
        np.testing.assert_allclose(bias, expected, rtol=1e-5, atol=1e-5)


def test_a_bias_target_of_the_wrong_shape_falls_back_to_the_plain_gradient():
    model = MLP([784, 30, 10], ReLU(), HeNormal(), np.random.default_rng(0))
    x = np.random.default_rng(1).random((8, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(8)]
    wrong = np.zeros(7, np.float32)  # b1 is (30,)
    plain = model.backward(CrossEntropy().grad(model.forward(x), y))["b1"].copy()
    model.grads["b1"][:] = np.nan  # the plain path must write it again
    grads = model.backward(CrossEntropy().grad(model.forward(x), y), {"b1": (wrong, 1.0, 0.0)})
    assert model.fused_keys == [] and not wrong.any()
    np.testing.assert_array_equal(grads["b1"], plain)  # the gradient was made the plain way


def test_relu_training_path_equals_the_plain_maximum_and_keeps_nan():
    relu = ReLU()
    z = np.random.default_rng(0).standard_normal((16, 30), dtype=np.float32)
    z[3, 4] = np.nan
    out = np.empty_like(z)
    got = relu.forward(z, out=out)
    assert got is out
    np.testing.assert_array_equal(got, np.maximum(z, 0))  # nan where z is nan
    assert np.isnan(got[3, 4])


@pytest.mark.parametrize("rows", [1, 5, 300, 1024])
def test_row_max_and_row_sums_match_numpy_on_both_paths(rows):
    from mlpx.core.numerics import row_max, row_sums

    a = np.random.default_rng(rows).standard_normal((rows, 10), dtype=np.float32)
    np.testing.assert_array_equal(row_max(a), a.max(axis=1, keepdims=True))
    np.testing.assert_allclose(row_sums(a), a.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    a[0, 3] = np.nan
    assert np.isnan(row_max(a)[0, 0]) and not np.isnan(row_max(a)[1:]).any()


def test_a_weights_only_fused_optimizer_is_offered_weights_only():
    # a plugin written when fused_targets served weight matrices only: weight decay of W alone
    from mlpx.core.trainer import fused_params

    class DecayWeights(SGD):
        wd = 0.1

        def fused_targets(self, params):
            return {k: (p, -self.lr, 1 - self.lr * self.wd) for k, p in params.items()}

        def step(self, params, grads, fused=()):
            for key, p in params.items():
                if key in fused:
                    continue
                p *= 1 - self.lr * self.wd if key.startswith("W") else 1.0
                p -= self.lr * grads[key]

    model = MLP([784, 30, 10], ReLU(), HeNormal(), np.random.default_rng(0))
    assert sorted(fused_params(DecayWeights(), model.params, model.weight_keys)) == ["W1", "W2"]
    assert sorted(fused_params(SGD(), model.params, model.weight_keys)) == ["W1", "W2", "b1", "b2"]
    from mlpx.checks import check_plugin

    report = check_plugin("optimizer", DecayWeights)
    assert not [p for p in report.problems if p.check == "fused"], str(report)


def test_relu_subclass_with_its_own_init_keeps_the_fast_path():
    class Scaled(ReLU):
        def __init__(self, k=1.0):
            self.k = k

    z = np.random.default_rng(0).standard_normal((4, 5), dtype=np.float32)
    np.testing.assert_array_equal(Scaled().forward(z, out=np.empty_like(z)), np.maximum(z, 0))


def test_an_empty_batch_never_reaches_blas_for_a_bias():
    model = MLP([4, 3, 2], ReLU(), HeNormal(), np.random.default_rng(0))
    velocity = np.ones(2, np.float32)
    model.forward(np.zeros((0, 4), np.float32))
    model.backward(np.zeros((0, 2), np.float32), {"b2": (velocity, 1.0, 0.5)})
    assert "b2" not in model.fused_keys and (velocity == 1).all()


@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "compiled"])
def test_fit_gathers_batches_into_the_models_own_buffers_across_calls(compiled):
    rng = np.random.default_rng(0)

    class Data:
        x_train, y_train = rng.random((64, 784), dtype=np.float32), rng.integers(0, 10, 64)
        x_val, y_val, n_classes = x_train[:16], y_train[:16], 10

    model = MLP([784, 16, 10], ReLU(), HeNormal(), np.random.default_rng(0))
    inputs, targets = model.batch_buffers(16)
    for seed in (1, 2):  # a second call reuses them: no fresh buffers (and page faults) per call
        fit(
            model, CrossEntropy(), SGD(lr=0.1), Data, epochs=1, batch_size=16,
            rng=np.random.default_rng(seed), compiled=compiled,
        )  # fmt: skip
        assert model.batch_buffers(16)[0] is inputs and model.batch_buffers(16)[1] is targets
        assert compiled or model._x is inputs  # the NumPy path's forward read them
    last = np.random.default_rng(2).permutation(64)[48:]  # the last batch of the second call
    np.testing.assert_array_equal(inputs, Data.x_train[last])
    if not compiled:  # the compiled step reads the labels, it fills no one-hot targets
        np.testing.assert_array_equal(targets.argmax(axis=1), Data.y_train[last])
