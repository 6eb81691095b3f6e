"""Which backends exist, what each needs installed, and how to load one: name → dotted paths.

Modelled on fsspec's registry: an entry names the backend class and the model of its block in
pool files (``ray:``, ``azure:``) as ``"module:attribute"`` strings, so nothing is imported until
it is used and ``orch --help`` never loads an SDK. Third-party backends register through the
``orch.backends`` entry-point group; each entry point loads a ``BackendEntry``.

Adding a backend: one folder under ``orchestrator/backends/`` and one line in ``BUILTIN``.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SpecError

if TYPE_CHECKING:
    from orchestrator.spec.blocks import BackendBlock

ENTRY_POINT_GROUP = "orch.backends"


@dataclass(frozen=True)
class BackendEntry:
    """One backend: its class, its pool-file block, and what must be installed for it."""

    name: str
    backend: str  # "module:Class", constructed as Class(config_dir)
    block: str  # "module:Model", a ``BackendBlock`` subclass; pure (no SDK imports)
    requires: tuple[str, ...]  # importable modules the backend needs (checked without importing)
    install: str  # how to install what is missing


BUILTIN: dict[str, BackendEntry] = {
    "ray": BackendEntry("ray", "orchestrator.backends.ray.backend:RayBackend",
                        "orchestrator.backends.ray.spec:RayOptions", ("ray",), "pip install 'orch[ray]'"),
    "azure": BackendEntry("azure", "orchestrator.backends.azure.backend:AzureBackend",
                          "orchestrator.backends.azure.spec:AzurePoolOptions",
                          ("azure.batch", "azure.storage.blob"), "pip install 'orch[azure]'"),
}


@lru_cache(maxsize=1)
def entries() -> dict[str, BackendEntry]:
    """Built-in backends plus those other packages register (``orch.backends`` entry points)."""
    from importlib.metadata import entry_points

    found = dict(BUILTIN)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        entry = point.load()
        if isinstance(entry, BackendEntry) and entry.name not in found:
            found[entry.name] = entry
    return found


def entry(name: str) -> BackendEntry:
    """The named backend's entry; ``SpecError`` listing the known ones otherwise."""
    try:
        return entries()[name]
    except KeyError:
        raise SpecError(f"unknown backend {name!r}", hint=f"use one of: {', '.join(sorted(entries()))}") from None


def missing_requirement(name: str) -> str | None:
    """The first module the backend needs that is not installed, or None."""
    for module in entry(name).requires:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:
            return module
    return None


def check_installed(name: str) -> None:
    """``SpecError`` (with the install command) unless the backend can be used here."""
    missing = missing_requirement(name)
    if missing is not None:
        raise SpecError(f"backend {name!r} is not installed ({missing} is missing)", hint=entry(name).install)


def block_models() -> dict[str, type[BackendBlock]]:
    """Each backend's pool-file block model, by backend name (the block's key in the file)."""
    return {name: _attribute(item.block) for name, item in entries().items()}


def backend_class(name: str) -> Any:
    """The named backend's class (imported now), constructed as ``cls(config_dir)``."""
    check_installed(name)
    target = entry(name)
    try:
        return _attribute(target.backend)
    except ImportError as exc:
        raise SpecError(f"backend {name!r} is not installed ({exc.name} is missing)", hint=target.install) from None


def _attribute(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
