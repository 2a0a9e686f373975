"""Training methods: one file per method, found by name (`load("puppetgan")`)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from engine.errors import TrainingError
from trainer.methods.base import Method, MethodConfig, config_from_dict, config_to_dict

__all__ = ["Method", "MethodConfig", "available", "config_from_dict", "config_to_dict", "load"]


def available() -> list[str]:
    """Names of the built-in methods: the modules of this package other than `base`."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base")


def load(name: str) -> type[Method]:
    """The Method class called `name`.

    A built-in name ("puppetgan") means the Method subclass in
    `trainer/methods/<name>.py` whose `name` matches; "package.module:Class"
    loads any importable Method, which is how tests and plug-ins bring their own.
    """
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        method = getattr(_import(module_name, name), class_name, None)
        if not (inspect.isclass(method) and issubclass(method, Method)):
            raise TrainingError(f"{name} is not a training method (a subclass of trainer.methods.Method).")
        return method
    if name not in available():
        raise TrainingError(f"Unknown method {name!r}; available: {', '.join(available()) or 'none'}.")
    module = _import(f"trainer.methods.{name}", name)
    for _, member in inspect.getmembers(module, inspect.isclass):
        if issubclass(member, Method) and getattr(member, "name", None) == name:
            return member
    raise TrainingError(f"trainer/methods/{name}.py defines no Method subclass with name = {name!r}.")


def _import(module_name: str, method_name: str):
    """Import a method's module, turning a missing module into a TrainingError."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise TrainingError(f"Cannot load method {method_name!r}: {error}.") from error
