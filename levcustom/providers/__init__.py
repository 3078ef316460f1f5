"""Provider registry: name -> implementation, imported only when first used."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

from levcustom.errors import LevcustomError
from levcustom.providers.base import Provider
from levcustom.workspace import Workspace

# Adding a provider: one module implementing ``Provider`` and one line here.
_REGISTRY = {
    "anthropic": "levcustom.providers.anthropic:AnthropicProvider",
    "local": "levcustom.providers.local.provider:LocalProvider",
    "openai": "levcustom.providers.openai:OpenAIProvider",
}


def available() -> list[str]:
    return sorted(_REGISTRY)


_INSTANCES: dict[tuple[str, Path], Provider] = {}
_GUARD = threading.Lock()


def get_provider(name: str, ws: Workspace) -> Provider:
    """The named provider for a workspace (one shared instance: clients and job handles are reused)."""
    target = _REGISTRY.get(name)
    if target is None:
        raise LevcustomError(f"provider {name!r} is not available in this version of levcustom "
                             f"(available: {', '.join(available())})")
    with _GUARD:
        key = (name, ws.root)
        if key not in _INSTANCES:
            module, cls = target.split(":")
            _INSTANCES[key] = getattr(importlib.import_module(module), cls)(ws)
        return _INSTANCES[key]
