"""Diagnostics that explain a run: rules that turn its curves into words, and its figures.

``rules`` returns sentences (the diagnosis of a rising loss), ``plots`` PNG bytes; the numbers they
read (health and calibration per epoch) are computed by the core's trainer (``mlpx.core.health``,
``mlpx.core.calibration``), and the tracking layer logs them.
"""
