"""Every hook mlpx calls, in one place: the contract between mlpx and its plugins.

Plugins are modules or objects with functions decorated by ``mlpx.hookimpl`` whose names
match the specs below. They load from three sources, in this order:

1. the built-ins in ``mlpx.builtins`` (registered through these same hooks);
2. ``.py`` files in the project's ``plugins/`` folder (or the folders in ``MLPX_PLUGINS_DIR``);
3. installed packages exposing an entry point in the group ``mlpx``.

Registration hooks receive a ``register`` callable::

    register(name, factory, config=None, *, version=None)

``factory(**hyperparameters)`` builds the component; ``config`` is a dataclass holding those
hyperparameters with their defaults (it becomes the Hydra config group option
``<kind>=<name>``, so ``optimizer=adam optimizer.beta1=0.95`` is type-checked). A plugin
without hyperparameters passes ``config=None``. Networks are the exception: their factory takes
no arguments (see ``register_networks``).

Lifecycle hooks are called by the trainer on every registered plugin that implements them; an
implementation may accept any subset of a hook's arguments. Their ``run`` (the
``mlpx.runs.runner.RunContext``) logs to the run's MLflow run, through the MLflow helper process (so
a tracking server that died mid-run gets them later from ``mlpx sync``)::

    run.log_metric(key, value, step=None)     # step: e.g. the epoch; None is MLflow's step 0
    run.log_param(key, value)                 # params cannot change once logged
    run.set_tag(key, value)                   # at once; ``run.tags[key] = value`` at the run's end
    run.log_artifact(local_path, artifact_path=None)   # sent when it returns: may be a temp file

They work in ``on_run_start``, ``on_epoch_end`` and ``on_run_end``: mlpx's tracker attaches
itself first (``tryfirst``) and closes the MLflow run last (``trylast``), after every other
plugin's ``on_run_end``. ``plugins/lifecycle/per_class_accuracy.py`` is an example.

A plugin name that matches no hook here is an error that unloads the plugin (a typo), unless
the implementation is marked ``@mlpx.hookimpl(optionalhook=True)``: a hook that only some mlpx
versions call.
"""

import pluggy

PROJECT_NAME = "mlpx"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------- registration hooks


@hookspec
def register_activations(register):
    """Register activation functions.

    An activation is an object with::

        forward(z) -> a                       # z, a of shape (n_samples, n_units)
        backward(z, a, grad_a) -> grad_z      # vector-Jacobian product, shape of z

    ``backward`` receives both the pre-activation ``z`` and the output ``a`` so either can be
    used; it must not modify its inputs, and must keep the dtype of ``z``.

    Optional fast path: when ``forward`` and ``backward`` accept a keyword ``out``, the model
    passes a preallocated array of the result's shape to write into (``backward`` may then
    receive ``out=grad_a``, which it may overwrite) and uses the returned array.
    """


@hookspec
def register_losses(register):
    """Register losses on the output layer's logits.

    A loss is an object with::

        value(logits, y_onehot) -> float          # mean over the batch
        grad(logits, y_onehot) -> d_logits        # dL/dlogits, already divided by the batch
        probs(logits) -> probabilities            # rows sum to 1, used for predictions

    ``logits`` and ``y_onehot`` are of shape (n_samples, n_classes).

    Optional fast path: ``value_and_grad(logits, y_onehot) -> (value, d_logits)``, equal to
    calling both, lets the trainer compute the softmax once per step.
    """


@hookspec
def register_initializers(register):
    """Register weight initializers.

    An initializer is an object with::

        init(shape, fan_in, fan_out, rng) -> ndarray   # float64 array of the given shape

    All randomness must come from ``rng``, a ``numpy.random.Generator``. Optionally
    ``std(fan_in, fan_out) -> float`` states the scheme's standard deviation, which
    ``mlpx check`` then verifies on samples.
    """


@hookspec
def register_optimizers(register):
    """Register optimizers.

    ``factory(**hyperparameters)`` returns an object with a mutable attribute ``lr`` and::

        step(params, grads) -> None   # updates the arrays in ``params`` in place

    ``params`` and ``grads`` are dicts with the same keys (``"W1"``, ``"b1"``, ...); an
    optimizer keeps its own state per key and must not modify ``grads``.

    Optionally, for speed, it may also offer its first pass over each weight matrix to the GEMM
    that computes the gradient ``g`` (and, with ``fused_biases = True`` set on the class that
    defines ``fused_targets``, over each bias to the GEMV that sums its gradient)::

        fused_targets(weights) -> {key: (target, alpha, beta)}   # target <- alpha g + beta target
        step(params, grads, fused=keys) -> None   # finish; grads[key] of fused keys is stale

    SGD offers ``(W, -lr, 1)``, momentum ``(velocity, 1, mu)``. ``mlpx check`` verifies that
    both paths give the same trajectory.
    """


@hookspec
def register_datasets(register):
    """Register datasets.

    ``factory(**hyperparameters)`` returns an object with ``load() -> mlpx.datasets.Dataset``:
    train, validation and test arrays, the validation split taken from the training data.
    """


@hookspec
def register_networks(register):
    """Register hand-written networks, for ``mlpx doctor NAME`` and ``python -m mlpx network=NAME``.

    ``register(name, factory)``: ``factory()`` takes no arguments and returns a
    ``mlpx.doctor.Network``, the keywords of ``mlpx.doctor.examine`` around the user's own code::

        Network(
            build,                 # () -> net: a fresh network (object, dict of arrays, ...)
            forward,               # (net, X (n_samples, n_features)) -> probabilities (n_samples, n_classes)
            objective,             # "cross_entropy" | "bce" | "mse", or {"loss": ..., "reduction": ...}
            params=None,           # (net) -> {name: ndarray}: the live trainable arrays
            gradients=None,        # (net, X, Y) -> {name: gradient}, Y one-hot (n_samples, n_classes)
            update=None,           # (net, X, Y) -> None or net: one training step of the code's own
            lr=None, loss=None, train_epoch=None, optimizer=None,
            prepare_inputs=None,   # (pixels: 0..255 uint8 (n_samples, n_features)) -> X
            encode_labels=None,    # (labels (n_samples,), n_classes) -> Y
            seed=None, check_batch=None, data=None,
        )

    ``python -m mlpx network=NAME`` trains the network on MNIST through its own ``update``, else
    its ``optimizer``, else its ``gradients`` stepped by the configured mlpx optimizer, else its
    ``train_epoch``; the doctor (``mlpx.doctor.examine``) runs first and stops a run whose
    report has errors. The built-in ``mlp`` (the default, ``network=mlp``) is mlpx's own MLP,
    built from the ``model``, ``activation``, ``initializer`` and ``loss`` groups.
    """


# ---------------------------------------------------------------- lifecycle hooks


@hookspec
def on_run_start(run):
    """A run is about to train: ``run`` is the ``mlpx.runs.runner.RunContext`` (config, model,
    components, dataset). Plugins may add MLflow tags to ``run.tags``; they are logged when the
    run ends. ``run.log_metric``, ``run.log_param``, ``run.set_tag`` and ``run.log_artifact``
    log at once (see the module docstring)."""


@hookspec
def on_epoch_end(run, epoch, metrics):
    """An epoch finished. ``epoch`` counts from 1; ``metrics`` maps metric names
    (``train_loss``, ``val_loss``, ``val_ce``, ``val_acc``, ``epoch_seconds``, ...) to floats.

    Return a sentence saying why to stop training now (early stopping), or None to go on.
    ``run.log_metric(key, value, step=epoch)`` adds a curve beside mlpx's own."""


@hookspec
def on_run_end(run, result, error):
    """A run ended. On success ``result`` is the ``mlpx.runs.runner.RunResult`` and ``error`` is
    None; on failure ``result`` is None and ``error`` is the exception, re-raised afterwards.
    Implementations must not raise: close what ``on_run_start`` opened. The MLflow run is still
    open: the tracker ends it after every other implementation, so ``run.tags`` set and
    ``run.log_*`` calls made here are recorded."""
