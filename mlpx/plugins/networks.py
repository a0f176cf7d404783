"""Network plugins for the doctor: which registered networks a name or a plugin file points at.

A target is a network's name (``tiny``), a plugin file that registers networks through
``register_networks`` (``path/to/net.py``: all of them), or one network of such a file
(``path/to/net.py:tiny``). Nothing here prints; ``mlpx doctor`` renders what it finds.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from mlpx.plugin_files import plugin_dirs_from_environment
from mlpx.plugins.manager import PluginHost, load_plugins
from mlpx.plugins.registry import Component, LoadFailure


@dataclass
class NetworkLookup:
    """The networks the targets name, in order, and what went wrong finding them."""

    host: PluginHost
    networks: List[Component] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)  # usage errors: targets that name nothing
    failures: List[LoadFailure] = field(default_factory=list)  # the named plugin files that failed

    @property
    def available(self) -> List[str]:
        """Names of every registered network."""
        return self.host.registry.names("network")


def split_target(target: str) -> Tuple[Optional[Path], Optional[str]]:
    """``"net.py:tiny"`` -> (Path("net.py"), "tiny"); ``"net.py"`` -> (Path("net.py"), None);
    ``"tiny"`` -> (None, "tiny")."""
    path, _, name = target.partition(".py:")
    if name:
        return Path(path + ".py"), name
    if target.endswith(".py"):
        return Path(target), None
    return None, target


def find_networks(targets: Sequence[str], plugins_dirs: Optional[List[Path]] = None) -> NetworkLookup:
    """Load the plugins (those of ``plugins_dirs``, default the environment's, plus the plugin
    files the targets name) and pick the networks the targets name."""
    if plugins_dirs is None:
        plugins_dirs = plugin_dirs_from_environment()
    in_dirs = {p.resolve() for folder in plugins_dirs for p in Path(folder).glob("*.py")}
    files = []
    for target in targets:
        path, _ = split_target(target)
        if path is not None and path.is_file() and path.resolve() not in in_dirs | set(files):
            files.append(path.resolve())
    lookup = NetworkLookup(load_plugins(plugins_dirs, files=files))
    registry = lookup.host.registry
    networks = [registry.get("network", name) for name in lookup.available]
    for target in targets:
        path, name = split_target(target)
        if path is None:
            chosen = [c for c in networks if c.name == name]
        elif not path.is_file():
            lookup.unknown.append(f"{target} (no such file)")
            continue
        else:
            source = path.resolve()
            failed = [f for f in lookup.host.failures if _same_file(f.source, source)]
            lookup.failures += [f for f in failed if f not in lookup.failures]
            chosen = [c for c in networks if _same_file(c.source, source) and name in (None, c.name)]
            if failed and not chosen:
                continue
        if not chosen and path is None:
            lookup.unknown.append(target)
        elif not chosen:
            lookup.unknown.append(f"{name} in {path}" if name else f"{target} (it registers no network)")
        lookup.networks += [c for c in chosen if c not in lookup.networks]
    return lookup


def _same_file(source: str, path: Path) -> bool:
    return source.endswith(".py") and Path(source).resolve() == path
