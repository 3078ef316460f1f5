"""Deploy target ``ollama``: serve a locally tuned model through Ollama's REST API.

The tuned adapter is merged into its base and written as GGUF (by the local provider, in a
child process), uploaded as a blob (``HEAD``/``POST /api/blobs/<digest>``: skipped when the
server has it), created with the chat template, system prompt and parameters
(``POST /api/create``), and verified (``POST /api/show``). Destroying the deployment deletes
the model (``DELETE /api/delete``). A ``Modelfile`` with the same settings is written next to
the GGUF file, for ``ollama create -f Modelfile`` by hand.

The client is the standard library's ``http.client``: uploads stream from disk.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from levcustom.deploy.chat_template import UnsupportedTemplate, chat_format
from levcustom.errors import ProviderError
from levcustom.spec.schema import OllamaTarget
from levcustom.state.lockfile import OllamaDeployment

_CHUNK = 1 << 20


@dataclass(frozen=True)
class OllamaModel:
    """What is created on the server: the GGUF blob and the Modelfile settings."""

    name: str
    gguf: Path
    template: str
    system: str | None
    parameters: dict[str, Any]
    quantize: str | None = None


class OllamaClient:
    """The few Ollama endpoints a deployment needs; errors become ``ProviderError`` with the cause."""

    def __init__(self, host: str, timeout: float = 600.0):
        url = urlsplit(host if "://" in host else f"http://{host}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ProviderError(f"invalid Ollama host {host!r} (expected e.g. http://127.0.0.1:11434)")
        self.host = host
        self._url = url
        self._timeout = timeout

    def _request(self, method: str, path: str, body: Any = None, *, upload: Path | None = None) -> tuple[int, Any]:
        cls = http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
        conn = cls(self._url.hostname, self._url.port or (443 if self._url.scheme == "https" else 80),
                   timeout=self._timeout)
        try:
            if upload is not None:
                conn.putrequest(method, path)
                conn.putheader("Content-Length", str(upload.stat().st_size))
                conn.putheader("Content-Type", "application/octet-stream")
                conn.endheaders()
                with open(upload, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        conn.send(chunk)
            else:
                data = None if body is None else json.dumps(body).encode()
                conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        except OSError as exc:
            raise ProviderError(f"cannot reach Ollama at {self.host}: {exc} (is `ollama serve` running?)") from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return resp.status, payload

    def _ok(self, method: str, path: str, body: Any = None, **kw) -> Any:
        status, payload = self._request(method, path, body, **kw)
        if status >= 400:
            error = payload.get("error") if isinstance(payload, dict) else payload
            raise ProviderError(f"Ollama {method} {path} failed ({status}): {error}")
        return payload

    def has_blob(self, digest: str) -> bool:
        status, _ = self._request("HEAD", f"/api/blobs/{digest}")
        return status == 200

    def push_blob(self, path: Path) -> str:
        """Upload a file unless the server already has it; returns its ``sha256:<hex>`` digest."""
        digest = "sha256:" + file_sha256(path)
        if not self.has_blob(digest):
            self._ok("POST", f"/api/blobs/{digest}", upload=path)
        return digest

    def create(self, model: OllamaModel, digest: str) -> None:
        body = {"model": model.name, "files": {model.gguf.name: digest}, "template": model.template,
                "parameters": model.parameters, "stream": False}
        if model.system is not None:
            body["system"] = model.system
        if model.quantize:
            body["quantize"] = model.quantize
        result = self._ok("POST", "/api/create", body)
        if not isinstance(result, dict) or result.get("status") != "success":
            raise ProviderError(f"Ollama did not create {model.name}: {result}")

    def show(self, name: str) -> dict[str, Any]:
        return self._ok("POST", "/api/show", {"model": name})

    def delete(self, name: str) -> bool:
        """Delete a model; False when the server does not have it (already gone)."""
        status, payload = self._request("DELETE", "/api/delete", {"model": name})
        if status == 404:
            return False
        if status >= 400:
            raise ProviderError(f"Ollama could not delete {name} ({status}): {payload}")
        return True


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def modelfile(model: OllamaModel) -> str:
    """The Modelfile equivalent of ``model`` (``ollama create NAME -f Modelfile`` next to the GGUF)."""
    lines = [f"FROM ./{model.gguf.name}", f'TEMPLATE """{model.template}"""']
    if model.system is not None:
        lines.append(f'SYSTEM """{model.system}"""')
    for key, value in sorted(model.parameters.items()):
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {json.dumps(v) if isinstance(v, str) else v}")
    return "\n".join(lines) + "\n"


def ollama_model(name: str, target: OllamaTarget, gguf: Path, chat_template: str | None, bos: str,
                 eos: str) -> OllamaModel:
    """The model to create: the spec's settings, or ones derived from the model's chat template."""
    template, system = target.template, target.system
    if template is None:
        if not chat_template:
            raise ProviderError("the base model's tokenizer has no chat template: set deploy.ollama.template")
        try:
            fmt = chat_format(chat_template, bos, eos)
        except UnsupportedTemplate as exc:
            raise ProviderError(f"cannot derive an Ollama template ({exc}): set deploy.ollama.template") from None
        template = fmt.go_template()
        if system is None:
            system = fmt.default_system
    return OllamaModel(name=name, gguf=gguf, template=template, system=system, parameters=dict(target.parameters),
                       quantize=target.quantize)


def deploy(model: OllamaModel, host: str) -> OllamaDeployment:
    """Upload, create and verify ``model`` on the Ollama server at ``host``."""
    (model.gguf.parent / "Modelfile").write_text(modelfile(model))
    client = OllamaClient(host)
    digest = client.push_blob(model.gguf)
    client.create(model, digest)
    shown = client.show(model.name)
    if shown.get("template") != model.template:
        raise ProviderError(f"Ollama created {model.name} but reports a different template than was sent")
    return OllamaDeployment(host=host, model=model.name, digest=digest)


def undeploy(deployment: OllamaDeployment) -> bool:
    """Remove a deployed model; False when the server no longer had it."""
    return OllamaClient(deployment.host).delete(deployment.model)
