"""Multiruns: the Hydra callback that groups a sweep under one parent run, its summary and
plot, and the Optuna search.
"""
