"""Puppet registry: the built-in puppets by name, plus plugins from the `puppetry.puppets` entry-point group.

Built-ins are imported only when loaded, so listing puppets stays cheap. A
plugin's entry point may name a Puppet subclass or a ready instance.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import EntryPoint, entry_points

from engine.errors import EditError
from engine.puppets.base import Control, Puppet

__all__ = ["Control", "Puppet", "available", "load"]

ENTRY_POINT_GROUP = "puppetry.puppets"

_BUILTINS: dict[str, str] = {
    "digits": "engine.puppets.digits:DigitsPuppet",
    "shapes": "engine.puppets.shapes:ShapesPuppet",
    "face": "engine.puppets.face:FacePuppet",
}

log = logging.getLogger(__name__)


def _plugin_entry_points() -> dict[str, EntryPoint]:
    """Installed plugins by name; a plugin cannot shadow a built-in."""
    plugins: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in _BUILTINS:
            log.warning("Ignoring plugin puppet %r from %s: the name belongs to a built-in puppet.", entry.name, entry.value)
            continue
        plugins[entry.name] = entry
    return plugins


def available() -> list[str]:
    """Names of every puppet that `load` accepts, sorted."""
    return sorted({*_BUILTINS, *_plugin_entry_points()})


def load(name: str) -> Puppet:
    """A ready puppet called `name`; EditError lists the known names when there is none."""
    if name in _BUILTINS:
        module_name, _, attribute = _BUILTINS[name].partition(":")
        target = getattr(importlib.import_module(module_name), attribute)
    else:
        plugins = _plugin_entry_points()
        if name not in plugins:
            raise EditError(
                f"Unknown puppet {name!r}; available puppets: {', '.join(available())}. "
                f"A plugin adds one through the {ENTRY_POINT_GROUP!r} entry-point group."
            )
        try:
            target = plugins[name].load()
        except Exception as error:
            raise EditError(f"Puppet plugin {name!r} ({plugins[name].value}) failed to import: {error}") from error
    puppet = target() if isinstance(target, type) else target
    if not isinstance(puppet, Puppet):
        raise EditError(f"Puppet {name!r} ({target!r}) is not an engine.puppets.Puppet; fix the plugin's entry point.")
    return puppet
