"""The plugin system: the pluggy manager that loads built-ins, ``plugins/`` files and entry
points, the registry of components by kind, and their Hydra config schema.
"""
