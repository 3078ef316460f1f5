"""Resolve each spec's config from the Hydra tree in ``conf/``.

Hydra's compose API is used once per distinct (provider, hardware) pair (~80 ms each);
a spec's own ``training`` block, ``overrides`` and the CLI's ``--set`` are then merged with
OmegaConf (~2 ms). Results are cached on disk keyed by the conf tree's content and the
spec's config-relevant fields, so an unchanged repository imports no Hydra at all.
Nothing named in a config is ever instantiated (``_target_`` is refused).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from levcustom.config.models import ResolvedConfig
from levcustom.errors import Issue, SpecError
from levcustom.spec.loader import LoadedSpec, _suggest, pydantic_issues
from levcustom.spec.yamlload import Document, format_path
from levcustom.state.jsoncache import JsonCache

GROUPS = ("provider", "hardware")


def conf_digest(conf_dir: Path) -> str:
    """Content hash of the whole conf tree (it is small: a few YAML files). Symlinked folders are
    followed, as Hydra follows them (``Path.rglob`` does not, and missed edits behind them)."""
    h = hashlib.sha256()
    seen: set[str] = set()
    for folder, dirs, files in os.walk(conf_dir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop
            dirs.clear()
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(n for n in files if n.endswith(".yaml")):
            f = Path(folder) / name
            h.update(str(f.relative_to(conf_dir)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


class ConfigResolver:
    """Resolves specs to ``ResolvedConfig`` with a two-level cache (memory per group pair, disk per spec)."""

    def __init__(self, conf_dir: Path, cache_file: Path | None = None, cli_sets: list[str] | None = None):
        if not (conf_dir / "config.yaml").is_file():
            raise SpecError([Issue(str(conf_dir / "config.yaml"), 0, 0, "", "Hydra root config not found")])
        self.conf_dir = conf_dir.resolve()
        self.cli_sets = list(cli_sets or [])
        self.digest = conf_digest(self.conf_dir)
        self._disk = JsonCache(cache_file)
        self._bases: dict[tuple[str, str], Any] = {}

    def choices(self, group: str) -> list[str]:
        return sorted(p.stem for p in (self.conf_dir / group).glob("*.yaml"))

    def resolve_all(self, specs: list[LoadedSpec]) -> dict[str, ResolvedConfig]:
        """Resolve every spec, reporting all config errors at once."""
        out: dict[str, ResolvedConfig] = {}
        issues: list[Issue] = []
        for ls in specs:
            try:
                out[ls.name] = self.resolve(ls)
            except SpecError as exc:
                issues.extend(exc.issues)
        self.save_cache()
        if issues:
            raise SpecError(issues)
        return out

    def resolve(self, ls: LoadedSpec) -> ResolvedConfig:
        body = ls.model.spec
        key_src = {"conf": self.digest, "provider": body.provider, "hardware": body.hardware,
                   "training": body.training, "overrides": body.overrides, "sets": self.cli_sets}
        key = hashlib.sha256(json.dumps(key_src, sort_keys=True, default=str).encode()).hexdigest()
        cached = self._disk.get(key)
        if cached is None:
            cached = self._compose(ls)
            self._disk.put(key, cached)
        try:
            return ResolvedConfig.model_validate(cached)
        except ValidationError as exc:
            raise SpecError(self._locate(ls, exc)) from None

    def defaults(self, provider: str, hardware: str = "cpu") -> ResolvedConfig:
        """The config of a provider with no spec on top (for models whose spec was removed)."""
        from omegaconf import OmegaConf

        return ResolvedConfig.model_validate(OmegaConf.to_container(self._base(provider, hardware), resolve=True))

    def _compose(self, ls: LoadedSpec) -> dict[str, Any]:
        from omegaconf import OmegaConf  # lazy: only on a cache miss

        body = ls.model.spec
        issues = []
        for group in GROUPS:
            value = getattr(body, group)
            if value not in self.choices(group):
                options = self.choices(group)
                issues.append(ls.doc.issue(("spec", group), f"unknown {group} {value!r}{_suggest(value, options)};"
                                           f" expected one of: {', '.join(options)}"))
        layers = [OmegaConf.create({"training": body.training})]
        for i, item in enumerate(body.overrides):
            layer = _dotlist_layer(item, ls.doc, ("spec", "overrides", i), issues)
            if layer is not None:
                layers.append(layer)
        for item in self.cli_sets:
            layer = _dotlist_layer(item, None, ("--set",), issues)
            if layer is not None:
                layers.append(layer)
        if issues:
            raise SpecError(issues)
        cfg = OmegaConf.merge(self._base(body.provider, body.hardware), *layers)
        data = OmegaConf.to_container(cfg, resolve=True)
        target = _find_target(data, ())
        if target is not None:
            raise SpecError([Issue(str(self.conf_dir), 0, 0, format_path(target),
                                   "'_target_' is not allowed in configs (nothing is instantiated)")])
        return data

    def _base(self, provider: str, hardware: str):
        pair = (provider, hardware)
        if pair not in self._bases:
            from hydra import compose, initialize_config_dir
            from hydra.core.global_hydra import GlobalHydra
            from omegaconf import OmegaConf

            GlobalHydra.instance().clear()
            with initialize_config_dir(config_dir=str(self.conf_dir), version_base=None):
                cfg = compose(config_name="config", overrides=[f"provider={provider}", f"hardware={hardware}"])
            GlobalHydra.instance().clear()
            _refuse_unsafe(OmegaConf.to_container(cfg, resolve=False), self.conf_dir)
            OmegaConf.set_struct(cfg, False)  # unknown keys are reported by pydantic, with their location
            self._bases[pair] = cfg
        return self._bases[pair]

    def _locate(self, ls: LoadedSpec, exc: ValidationError) -> list[Issue]:
        """Point each config error at the spec line that set the value, else at the conf tree."""
        out = []
        for issue in pydantic_issues(Document("", None), exc, ResolvedConfig):
            dotted = issue.key_path
            path = tuple(dotted.split("."))
            # Blame the last layer that set the key: --set, then spec overrides, then spec.training.
            idx = next((i for i, o in reversed(list(enumerate(ls.model.spec.overrides)))
                        if o.split("=", 1)[0].lstrip("+~") == dotted), None)
            if any(s.split("=", 1)[0] == dotted for s in self.cli_sets):
                out.append(Issue("--set", 0, 0, dotted, issue.message))
            elif idx is not None:
                out.append(ls.doc.issue(("spec", "overrides", idx), f"{dotted}: {issue.message}"))
            elif path[0] == "training" and _has_path(ls.model.spec.training, path[1:]):
                out.append(ls.doc.issue(("spec",) + path, issue.message))
            else:
                out.append(Issue(f"conf/ (for {ls.file})", 0, 0, dotted, issue.message))
        return out

    def save_cache(self) -> None:
        self._disk.save()


def _has_path(data: Any, path: tuple) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _dotlist_layer(item: str, doc: Document | None, path: tuple, issues: list[Issue]):
    """Parse one ``key=value`` override into an OmegaConf layer, or record why it is invalid."""
    from omegaconf import OmegaConf

    key, sep, _ = item.partition("=")
    key = key.lstrip("+")
    problem = None
    if not sep or not key:
        problem = f"expected key=value, got {item!r}"
    elif key in GROUPS:
        problem = f"select the {key} group with spec.{key}, not an override"
    elif "_target_" in key:
        problem = "'_target_' is not allowed (nothing is instantiated)"
    if problem is None:
        try:
            return OmegaConf.from_dotlist([f"{key}={item.partition('=')[2]}"])
        except Exception as exc:  # omegaconf raises several grammar error types
            problem = f"invalid override {item!r}: {exc}"
    issues.append(doc.issue(path, problem) if doc else Issue("--set", 0, 0, item, problem))
    return None


_RESOLVER_CALL = re.compile(r"\$\{\s*[\w.]+\s*:")


def _refuse_unsafe(data: Any, conf_dir: Path, path: tuple = ()) -> None:
    """The conf tree may come from an untrusted pull request: no resolvers (``${oc.env:...}`` would
    copy secrets into plans), no ``hydra`` block (search paths outside the tree), no ``_target_``."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k in ("hydra", "_target_"):
                raise SpecError([Issue(str(conf_dir), 0, 0, format_path(path + (k,)),
                                       f"'{k}' is not allowed in the conf tree")])
            _refuse_unsafe(v, conf_dir, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _refuse_unsafe(v, conf_dir, path + (i,))
    elif isinstance(data, str) and _RESOLVER_CALL.search(data):
        raise SpecError([Issue(str(conf_dir), 0, 0, format_path(path),
                               "resolvers are not allowed in the conf tree (only ${path.to.key} references)")])


def _find_target(data: Any, path: tuple) -> tuple | None:
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "_target_":
                return path + (k,)
            found = _find_target(v, path + (k,))
            if found:
                return found
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found = _find_target(v, path + (i,))
            if found:
                return found
    return None
