"""One registry for every seam (after SAELens's ``sae_lens/registry.py``): a name -> (class, its typed Config).

Each seam owns one ``Registry``; a component registers itself with ``@REGISTRY.register("name", Config)`` in its own
module, and the seam's package imports every module in it on first use (``import_submodules``), so adding a
component is one ``.py`` (plus its ``.yaml``) and no hand-kept list. ``register_configs`` stores every Config as
``<group>/<name>_schema`` in Hydra's ConfigStore: a group option that starts with ``defaults: [<name>_schema]`` gets
that schema, so a key the component does not have fails at compose, naming it.
"""

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any


def import_submodules(package: str) -> None:
    """Import every module of ``package`` (this is what registers their components)."""
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{info.name}")


@dataclass(frozen=True)
class Entry:
    name: str
    cls: Any
    config: type | None
    """The component's Config dataclass (None for components without options)."""


class Registry:
    def __init__(self, seam: str, key: str, package: str, group: str | None = None):
        """``key``: the config key that names a component (used in errors, e.g. ``synthesis.strategy``);
        ``package``: where the components live; ``group``: the Hydra config group their schemas are stored in."""
        self.seam, self.key, self.package, self.group = seam, key, package, group
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, config: type | None = None):
        def decorate(cls):
            if name in self._entries and self._entries[name].cls is not cls:
                raise ValueError(f"{self.seam} {name!r} is registered twice ({self._entries[name].cls} and {cls})")
            self._entries[name] = Entry(name, cls, config)
            cls.name = name
            return cls

        return decorate

    def entries(self) -> dict[str, Entry]:
        import_submodules(self.package)
        return dict(self._entries)

    def names(self) -> list[str]:
        return sorted(self.entries())

    def get(self, name: str) -> Entry:
        entries = self.entries()
        if name not in entries:
            raise ValueError(f"{self.key}={name!r} is not a registered {self.seam}; choose from {sorted(entries)}")
        return entries[name]

    def schemas(self) -> dict[str, type]:
        """``<name>_schema`` -> Config, for the ConfigStore."""
        return {f"{name}_schema": e.config for name, e in self.entries().items() if e.config is not None}
