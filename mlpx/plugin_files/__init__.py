"""The package plugin files are imported under: ``plugins/swish.py`` is ``mlpx.plugin_files.swish``.

A real package (its ``__path__`` is the plugin folders) lets classes defined in plugin files
pickle by reference: Hydra's joblib launcher ships the ConfigStore, which holds plugins'
hyperparameter dataclasses, to worker processes, and they import the same module by name.
"""

import os
from pathlib import Path
from typing import List

_CLONE = Path(__file__).resolve().parent.parent.parent
#: the project's plugins/ in a clone; the copy inside the package (``mlpx/example_plugins``) in a wheel
DEFAULT_PLUGINS_DIR = (
    _CLONE / "plugins"
    if (_CLONE / "conf" / "config.yaml").is_file()
    else Path(__file__).resolve().parent.parent / "example_plugins"
)


def plugin_dirs_from_environment() -> List[Path]:
    """``MLPX_PLUGINS_DIR`` (folders separated by ``os.pathsep``), else the project's ``plugins/``."""
    value = os.environ.get("MLPX_PLUGINS_DIR")
    if value is None:
        return [DEFAULT_PLUGINS_DIR]
    return [Path(p).resolve() for p in value.split(os.pathsep) if p]


__path__ = [str(folder) for folder in plugin_dirs_from_environment()]
