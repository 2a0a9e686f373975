"""The editor registry: built-in editors by name, plus third-party ones from the `puppetry.editors` entry points.

A plugin distribution declares, in its entry points,

    [puppetry.editors]
    my-editor = my_package.editor:MyEditor

and packages whose manifest says `"editor": "my-editor"` load with it.
Built-in names win over plugins of the same name.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from engine.errors import PackageError

if TYPE_CHECKING:
    from engine.editors.base import Editor
    from engine.package import ModelPackage

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "puppetry.editors"
BUILTIN = {
    "puppet": "engine.editors.puppet:PuppetEditor",
    "guide": "engine.editors.guide:GuideEditor",
}


def available() -> list[str]:
    """Names of every editor that can be loaded: built-ins first, then plugins."""
    plugins = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN)
    return [*BUILTIN, *plugins]


def editor_class(name: str) -> type[Editor]:
    """The Editor subclass registered as `name`; PackageError when none is."""
    from engine.editors.base import Editor

    if name in BUILTIN:
        module, attribute = BUILTIN[name].split(":")
        return getattr(importlib.import_module(module), attribute)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name != name:
            continue
        try:
            loaded = entry_point.load()
        except Exception as error:  # a broken plugin must not take the editor down
            raise PackageError(f"editor plugin '{name}' ({entry_point.value}) failed to load: {error}") from error
        if not (isinstance(loaded, type) and issubclass(loaded, Editor)):
            raise PackageError(f"editor plugin '{name}' ({entry_point.value}) is not an engine.editors.base.Editor")
        return loaded
    raise PackageError(f"no editor named '{name}' (known: {', '.join(available())}); install the plugin that provides it")


def load(package: ModelPackage, provider: str = "auto", threads: int | None = None) -> Editor:
    """The editor for `package`, its ONNX sessions created and warmed up."""
    editor = editor_class(package.editor)(package, provider, threads)
    log.info("loaded model '%s' with editor '%s' on %s", package.name, package.editor, editor.provider)
    return editor
