"""The component registry: what each plugin registered, under which kind and name, from where."""

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

from mlpx.errors import PluginError

#: plugin kind -> Hydra config group holding its options
KIND_GROUPS: Dict[str, str] = {
    "activation": "activation",
    "loss": "loss",
    "initializer": "initializer",
    "optimizer": "optimizer",
    "dataset": "data",
    "network": "network",
}
KINDS = tuple(KIND_GROUPS)
#: plugin kind -> the hook through which plugins register components of that kind
REGISTRATION_HOOKS: Dict[str, str] = {
    "activation": "register_activations",
    "loss": "register_losses",
    "initializer": "register_initializers",
    "optimizer": "register_optimizers",
    "dataset": "register_datasets",
    "network": "register_networks",
}

_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class Component:
    """One registered component: a factory plus the dataclass of its hyperparameters."""

    kind: str
    name: str
    factory: Callable[..., Any]
    config: Optional[type]
    plugin: str
    source: str
    version: str

    def describe(self) -> str:
        """`"optimizer 'adam' (built-in, mlpx 0.1.0)"`: how errors name a component."""
        return f"{self.kind} '{self.name}' ({self.source}, version {self.version})"

    def build(self, hyperparameters: Mapping[str, Any]) -> Any:
        """Call the factory; a plugin's own complaint becomes a PluginError naming it."""
        try:
            return self.factory(**hyperparameters)
        except Exception as exc:  # the plugin's message is the useful part; keep it
            raise PluginError(
                f"{self.describe()} rejected its hyperparameters {dict(hyperparameters)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def network(self) -> Any:
        """A network component's ``mlpx.doctor.Network``; PluginError when the factory fails or
        returns something else."""
        from mlpx.doctor.network import Network

        network = self.build({})
        if not isinstance(network, Network):
            raise PluginError(
                f"{self.describe()}: its factory returned {type(network).__name__}, not a "
                "mlpx.doctor.Network; return Network(build=..., forward=..., objective=..., ...)"
            )
        return network


@dataclass(frozen=True)
class LoadFailure:
    """A plugin (or one of its registrations) that could not be used, and why."""

    plugin: str
    source: str
    error: str

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' from {self.source}: {self.error}"


class Registry:
    """Components by kind and name; first registration of a name wins, later ones are reported."""

    def __init__(self) -> None:
        self._components: Dict[str, Dict[str, Component]] = {kind: {} for kind in KINDS}
        self.failures: List[LoadFailure] = []

    def registrar(self, kind: str, plugin: str, source: str, default_version: str) -> Callable[..., None]:
        """The ``register(name, factory, config=None, *, version=None)`` handed to a plugin."""

        def register(
            name: str,
            factory: Callable[..., Any],
            config: Optional[type] = None,
            *,
            version: Optional[str] = None,
        ) -> None:
            problem = _registration_problem(kind, name, factory, config)
            existing = self._components[kind].get(name) if isinstance(name, str) else None
            if problem is None and existing is not None:
                problem = (
                    f"{kind} '{name}' is already provided by {existing.source}; "
                    "register it under another name"
                )
            if problem is not None:
                self.failures.append(LoadFailure(plugin, source, problem))
                return
            self._components[kind][name] = Component(
                kind, name, factory, config, plugin, source, version or default_version
            )

        return register

    def get(self, kind: str, name: str) -> Component:
        """The component, or a PluginError listing the available names of that kind."""
        try:
            return self._components[kind][name]
        except KeyError:
            available = ", ".join(sorted(self._components[kind])) or "none"
            failed = [str(f) for f in self.failures]
            hint = f" Plugins that failed to load: {'; '.join(failed)}." if failed else ""
            raise PluginError(f"no {kind} named '{name}'. Available: {available}.{hint}") from None

    def names(self, kind: str) -> List[str]:
        return sorted(self._components[kind])

    def components(self) -> List[Component]:
        """Every component, ordered by kind then name."""
        return [self._components[k][n] for k in KINDS for n in sorted(self._components[k])]


def _registration_problem(kind: str, name: Any, factory: Any, config: Any) -> Optional[str]:
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        return (
            f"{kind} name {name!r} is not usable as a Hydra option: "
            "use letters, digits, '_' or '-', starting with a letter"
        )
    if not callable(factory):
        return f"{kind} '{name}': factory {factory!r} is not callable"
    if kind == "network" and config is not None:
        return f"network '{name}': a network's factory takes no hyperparameters; register(name, factory)"
    if config is not None:
        if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
            return f"{kind} '{name}': config must be a dataclass class, got {config!r}"
        if any(f.name == "name" for f in dataclasses.fields(config)):
            return (
                f"{kind} '{name}': its config dataclass has a field called 'name', "
                "which mlpx reserves for the plugin's name; rename the field"
            )
    return None
