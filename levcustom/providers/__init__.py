"""Provider registry: name -> implementation, imported only when first used."""

from __future__ import annotations

import importlib

from levcustom.errors import LevcustomError
from levcustom.providers.base import Provider
from levcustom.workspace import Workspace

# Adding a provider: one module implementing ``Provider`` and one line here.
_REGISTRY = {
    "local": "levcustom.providers.local.provider:LocalProvider",
    "openai": "levcustom.providers.openai:OpenAIProvider",
}


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_provider(name: str, ws: Workspace) -> Provider:
    """Instantiate the named provider for a workspace."""
    target = _REGISTRY.get(name)
    if target is None:
        raise LevcustomError(f"provider {name!r} is not available in this version of levcustom "
                             f"(available: {', '.join(available())})")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(ws)
