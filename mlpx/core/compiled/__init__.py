"""A compiled training step for the built-in plugins: the whole minibatch step of mlpx's MLP with
ReLU, softmax cross-entropy and SGD or momentum in one C call (``_step.c``), on NumPy's own BLAS.

The plugins stay the definition: the step does their arithmetic in their order, and a plugin
takes part only when its exact class declares the kernel it is (``compiled_kernel``, naming
the functions it stands for), so a subclass, or a method replaced on the class or an instance,
trains through its Python methods. Built by ``pip install`` where
a C compiler is present; without one, or for any other plugin, dtype or layout, the trainer runs
the NumPy path, which gives the same results to float32 rounding.
"""

from mlpx.core.compiled.step import (
    CompiledSteps,
    Kernel,
    available,
    compiled_steps_for,
    declared_kernel,
    kernel,
)

__all__ = ["CompiledSteps", "Kernel", "available", "compiled_steps_for", "declared_kernel", "kernel"]
