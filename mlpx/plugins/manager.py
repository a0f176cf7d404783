"""Loading plugins from the three sources into one pluggy manager, reporting broken ones by name.

Environment variables:

- ``MLPX_PLUGINS_DIR``: folders of ``.py`` plugin files, separated by ``os.pathsep``
  (default: the project's ``plugins/`` folder).
- ``MLPX_LOAD_PLUGINS``: comma-separated names of the non-built-in plugins to load
  (file stem or entry-point name); unset loads all, empty loads none.
"""

import importlib.metadata
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import pluggy

from mlpx import hookspecs, plugin_files
from mlpx.errors import PluginError
from mlpx.plugin_files import plugin_dirs_from_environment
from mlpx.plugins.registry import REGISTRATION_HOOKS, LoadFailure, Registry

ENTRY_POINT_GROUP = "mlpx"
PROJECT_ROOT = Path(__file__).resolve().parents[2]

_BUILTIN_MODULES = (
    "mlpx.builtins.activations",
    "mlpx.builtins.losses",
    "mlpx.builtins.initializers",
    "mlpx.builtins.optimizers",
    "mlpx.builtins.more_optimizers",
    "mlpx.builtins.datasets",
    "mlpx.builtins.networks",
)


@dataclass(frozen=True)
class PluginInfo:
    """Where one loaded plugin came from."""

    name: str
    source: str
    version: str


@dataclass
class PluginHost:
    """The pluggy manager, the components its plugins registered, and what failed to load."""

    pm: pluggy.PluginManager
    registry: Registry
    plugins: List[PluginInfo] = field(default_factory=list)

    @property
    def failures(self) -> List[LoadFailure]:
        return self.registry.failures


def load_plugins(
    plugins_dirs: Optional[List[Path]] = None,
    selected: Optional[List[str]] = None,
    files: Sequence[Path] = (),
) -> PluginHost:
    """Load built-ins, then plugin files, then entry points; collect every registration.

    ``plugins_dirs`` and ``selected`` default to the environment (see the module docstring);
    ``files`` are single plugin files loaded after those folders' (``mlpx doctor path.py``).
    A plugin that fails at any stage is recorded in ``host.failures`` and left out.
    """
    from mlpx import __version__

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm=pm, registry=Registry())
    if plugins_dirs is None:
        plugins_dirs = plugin_dirs_from_environment()
    if selected is None:
        selected = _selection_from_environment()

    for module_name in _BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        _register(host, module, module_name, "built-in", __version__)
    available = []
    for name, source, version, loader in _external_plugins(plugins_dirs, files):
        available.append(name)
        if selected is not None and name not in selected:
            continue
        try:
            plugin = loader()
        except Exception as exc:  # any import-time error of a third-party plugin
            failure = f"failed to import{_where(exc, source)}: {type(exc).__name__}: {exc}"
            host.registry.failures.append(LoadFailure(name, source, failure))
            continue
        _register(host, plugin, name, source, version)
    unknown = [name for name in selected or () if name not in available]
    if unknown:
        raise PluginError(
            f"MLPX_LOAD_PLUGINS names no plugin called {', '.join(map(repr, unknown))}; the plugins found "
            f"are: {', '.join(sorted(set(available))) or 'none'} (files in "
            f"{', '.join(map(str, plugins_dirs))} and entry points of group '{ENTRY_POINT_GROUP}'). "
            "Fix the names, or unset MLPX_LOAD_PLUGINS to load them all"
        )
    _drop_unknown_hooks(host)
    _collect_registrations(host)
    return host


def _selection_from_environment() -> Optional[List[str]]:
    value = os.environ.get("MLPX_LOAD_PLUGINS")
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _external_plugins(
    plugins_dirs: List[Path], files: Sequence[Path]
) -> Iterator[Tuple[str, str, str, object]]:
    """(name, source, version, loader) for plugin files, then for entry points."""
    paths = [p for folder in plugins_dirs for p in sorted(Path(folder).glob("*.py"))]
    for path in [*(p for p in paths if not p.name.startswith("_")), *map(Path, files)]:
        yield path.stem, str(path), "local", lambda path=path: _import_file(path)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        dist_name = dist.metadata["Name"] if dist is not None else "unknown package"
        version = dist.version if dist is not None else "unknown"
        source = f"package {dist_name} {version} (entry point {entry_point.value})"
        yield entry_point.name, source, version, entry_point.load


def _where(exc: BaseException, source: str) -> str:
    """`` at FILE:LINE`` of the plugin's own code that raised (a syntax error: where it is): the
    last line of the plugin file ``source`` on the way, else the deepest frame outside importlib
    (an entry point's package), so an error inside a library the plugin calls names the plugin."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" at {exc.filename}:{exc.lineno}"
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if "importlib" not in frame.filename and frame.filename != __file__
    ]
    own = [frame for frame in frames if Path(frame.filename) == Path(source)]
    frame = (own or frames or [None])[-1]
    return f" at {frame.filename}:{frame.lineno}" if frame is not None else ""


def _import_file(path: Path) -> object:
    module_name = f"{plugin_files.__name__}.{path.stem}"
    existing = sys.modules.get(module_name)
    if existing is not None and Path(getattr(existing, "__file__", "")).resolve() == path.resolve():
        return existing  # imported already, e.g. while a joblib worker unpickled the ConfigStore
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look classes up by module name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _register(host: PluginHost, plugin: object, name: str, source: str, version: str) -> None:
    if host.pm.has_plugin(name):
        host.registry.failures.append(
            LoadFailure(name, source, "a plugin with this name is already loaded; rename one")
        )
        return
    try:
        host.pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        host.registry.failures.append(LoadFailure(name, source, str(exc)))
        return
    host.plugins.append(PluginInfo(name, source, version))


def _drop_unknown_hooks(host: PluginHost) -> None:
    """pluggy accepts impls that match no spec (a typo); report and unload those plugins, except
    for impls marked ``@hookimpl(optionalhook=True)``: hooks of another mlpx version, say."""
    known = sorted(n for n in dir(hookspecs) if getattr(getattr(hookspecs, n), "mlpx_spec", None))
    for hook_name, caller in list(vars(host.pm.hook).items()):
        if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            info = _info(host, impl.plugin_name)
            host.registry.failures.append(
                LoadFailure(
                    info.name,
                    info.source,
                    f"implements unknown hook '{hook_name}'; mlpx hooks are: {', '.join(known)}",
                )
            )
            host.pm.unregister(name=impl.plugin_name)
            host.plugins.remove(info)


def _collect_registrations(host: PluginHost) -> None:
    """Call each plugin's registration hooks on its own, so every component knows its source."""
    for info in list(host.plugins):
        others = [p for n, p in host.pm.list_name_plugin() if n != info.name]
        for kind, hook_name in REGISTRATION_HOOKS.items():
            caller = host.pm.subset_hook_caller(hook_name, remove_plugins=others)
            register = host.registry.registrar(kind, info.name, info.source, info.version)
            try:
                caller(register=register)
            except Exception as exc:  # a plugin's bug must not take down the others
                host.registry.failures.append(
                    LoadFailure(info.name, info.source, f"{hook_name} raised {type(exc).__name__}: {exc}")
                )


def _info(host: PluginHost, name: str) -> PluginInfo:
    return next(p for p in host.plugins if p.name == name)
