"""Diagnostics that explain a run: health metrics per epoch, and rules that turn curves into words.

Compute only: ``health`` and ``calibration`` return numbers, ``rules`` returns sentences; the
tracking and plotting layers log and draw them.
"""
