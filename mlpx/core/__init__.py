"""The NumPy core: the network, the trainer, the numerics and the BLAS thread policy.

Imports nothing of mlpx above it (only ``mlpx.errors``, the datasets and the diagnostics' numerics).
"""
