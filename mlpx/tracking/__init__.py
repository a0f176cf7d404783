"""MLflow tracking: the tracker plugin (main process), the helper process and its recorder,
the spool for a dead server, the store lock, stale runs and the logged model.
"""
