"""A loopback fake of Ollama's REST API, enough to deploy, inspect, chat with and delete a model.

A real HTTP/1.1 server on 127.0.0.1 (ephemeral port), like Ollama on :11434::

    with FakeOllama(tmp_path) as fake:
        OllamaClient(fake.host).push_blob(path)

Endpoints (shapes as Ollama 0.6+ serves them):

- ``HEAD /api/blobs/sha256:<hex>``: 200 when the blob exists, else 404.
- ``POST /api/blobs/sha256:<hex>``: stores the body; 400 when its sha256 differs from the name; 201.
- ``POST /api/create`` ``{model, files: {name: digest}, template?, system?, parameters?, quantize?, stream?}``:
  every digest must be an uploaded blob holding a GGUF file (parsed with the ``gguf`` package's
  reader). ``stream`` defaults to true: NDJSON status lines; false: one ``{"status": "success"}``.
- ``POST /api/show`` ``{model}``: modelfile, template, system, parameters, details, model_info; 404 if absent.
- ``DELETE /api/delete`` ``{model}``: 200, or 404 if absent.
- ``GET /api/tags``: the models.
- ``POST /api/chat`` ``{model, messages, stream: false, options?}``: renders the model's Go template
  (the subset chat templates use: ``range .Messages``, ``if/else if eq .Role "..."``, ``.Content``,
  ``.Role``, trim markers), runs the GGUF weights with transformers (greedy, ``num_predict``
  tokens, stops at the GGUF's end-of-sequence token) and answers like Ollama does. As Ollama does,
  the model's SYSTEM is sent as a first system message when the request has none.

``fake.requests`` records (method, path) of every request.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_DIGEST = re.compile(r"^/api/blobs/(sha256:[0-9a-f]{64})$")


class GoTemplateError(ValueError):
    pass


def render_go_template(template: str, data: dict[str, Any]) -> str:
    """Render the subset of Go text/template that chat templates use (see the module docstring)."""
    tokens = re.split(r"({{-?.*?-?}})", template, flags=re.S)
    # Apply trim markers: "{{-" trims whitespace before, "-}}" after.
    for i, tok in enumerate(tokens):
        if tok.startswith("{{-") and i > 0:
            tokens[i - 1] = tokens[i - 1].rstrip()
        if tok.endswith("-}}") and i + 1 < len(tokens):
            tokens[i + 1] = tokens[i + 1].lstrip()
    tree, rest = _parse([t for t in tokens if t], 0)
    if rest != len([t for t in tokens if t]):
        raise GoTemplateError("unbalanced {{ end }}")
    return _render(tree, data)


def _action(tok: str) -> str | None:
    if tok.startswith("{{"):
        return tok.strip("{}").strip("-").strip()
    return None


def _parse(tokens: list[str], i: int):
    """Nodes until an 'end'/'else' at this level: ("text", s) | ("field", name) | ("range", field, body)
    | ("if", [(condition, body), ...])."""
    nodes = []
    while i < len(tokens):
        act = _action(tokens[i])
        if act is None:
            nodes.append(("text", tokens[i]))
            i += 1
        elif act == "end" or act.startswith("else"):
            return nodes, i
        elif act.startswith("range "):
            body, i = _parse(tokens, i + 1)
            nodes.append(("range", act.split()[1], body))
            i += 1  # end
        elif act.startswith("if "):
            branches, cond = [], act[3:]
            while True:
                body, i = _parse(tokens, i + 1)
                branches.append((cond, body))
                nxt = _action(tokens[i])
                if nxt == "end":
                    break
                cond = nxt[len("else if "):] if nxt.startswith("else if ") else "true"
            nodes.append(("if", branches))
            i += 1
        elif act.startswith("."):
            nodes.append(("field", act))
            i += 1
        else:
            raise GoTemplateError(f"unsupported action {{{{ {act} }}}}")
    return nodes, i


def _lookup(field: str, data: dict[str, Any]):
    value: Any = data
    for part in field.strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _truthy(cond: str, data: dict[str, Any]) -> bool:
    if cond == "true":
        return True
    m = re.fullmatch(r'eq (\.\w+(?:\.\w+)*) "([^"]*)"', cond)
    if m:
        return _lookup(m.group(1), data) == m.group(2)
    if cond.startswith("."):
        return bool(_lookup(cond, data))
    raise GoTemplateError(f"unsupported condition {cond!r}")


def _render(nodes, data: dict[str, Any]) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "field":
            out.append(str(_lookup(node[1], data) or ""))
        elif node[0] == "range":
            out.extend(_render(node[2], item) for item in _lookup(node[1], data) or [])
        else:
            for cond, body in node[1]:
                if _truthy(cond, data):
                    out.append(_render(body, data))
                    break
    return "".join(out)


class FakeOllama:
    """The server and its state (blobs on disk under ``folder``, models in memory)."""

    def __init__(self, folder: Path):
        self.blob_dir = folder / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.models: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._runners: dict[str, Any] = {}
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOllama:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def blob_path(self, digest: str) -> Path:
        return self.blob_dir / digest.replace(":", "-")

    # -- handlers ----------------------------------------------------------------------------

    def create(self, body: dict) -> tuple[int, Any]:
        name, files = body.get("model"), body.get("files") or {}
        if not name or not files:
            return 400, {"error": "model and files are required"}
        for fname, digest in files.items():
            if not self.blob_path(digest).is_file():
                return 400, {"error": f"blob {digest} for {fname} not found"}
        [(fname, digest)] = files.items()
        if not fname.endswith(".gguf"):
            return 400, {"error": f"unsupported file {fname}: this fake serves GGUF files"}
        try:
            info = _gguf_info(self.blob_path(digest))
        except Exception as exc:  # the gguf reader raises several types on a bad file
            return 400, {"error": f"invalid GGUF file: {exc}"}
        model = {"name": name, "digest": digest, "template": body.get("template") or "{{ .Prompt }}",
                 "system": body.get("system"), "parameters": body.get("parameters") or {},
                 "quantize": body.get("quantize"), "info": info, "size": self.blob_path(digest).stat().st_size,
                 "modified_at": datetime.now(UTC).isoformat()}
        with self.lock:
            self.models[name] = model
            self._runners.pop(name, None)
        return 200, {"status": "success"}

    def show(self, body: dict) -> tuple[int, Any]:
        model = self.models.get(body.get("model", ""))
        if model is None:
            return 404, {"error": f"model '{body.get('model')}' not found"}
        params = "\n".join(f"{k} {v}" for k, vs in model["parameters"].items() for v in (vs if isinstance(vs, list)
                                                                                            else [vs]))
        modelfile = f"FROM {self.blob_path(model['digest'])}\nTEMPLATE \"\"\"{model['template']}\"\"\"\n"
        out = {"modelfile": modelfile, "parameters": params, "template": model["template"],
               "details": {"format": "gguf", "family": model["info"]["general.architecture"],
                           "quantization_level": model["quantize"] or model["info"]["file_type"]},
               "model_info": model["info"], "modified_at": model["modified_at"], "capabilities": ["completion"]}
        if model["system"] is not None:
            out["system"] = model["system"]
        return 200, out

    def delete(self, body: dict) -> tuple[int, Any]:
        with self.lock:
            if self.models.pop(body.get("model", ""), None) is None:
                return 404, {"error": f"model '{body.get('model')}' not found"}
        return 200, None

    def tags(self) -> tuple[int, Any]:
        return 200, {"models": [{"name": m["name"], "model": m["name"], "modified_at": m["modified_at"],
                                 "size": m["size"], "digest": m["digest"].split(":")[1],
                                 "details": {"format": "gguf", "family": m["info"]["general.architecture"]}}
                                for m in self.models.values()]}

    def chat(self, body: dict) -> tuple[int, Any]:
        model = self.models.get(body.get("model", ""))
        if model is None:
            return 404, {"error": f"model '{body.get('model')}' not found"}
        messages = list(body.get("messages") or [])
        if model["system"] is not None and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": model["system"]})
        # Go templates see Ollama's api.Message struct: fields Role and Content.
        prompt = render_go_template(model["template"],
                                    {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]})
        options = {**model["parameters"], **(body.get("options") or {})}
        answer = self._runner(model)(prompt, int(options.get("num_predict", 24)))
        return 200, {"model": model["name"], "created_at": datetime.now(UTC).isoformat(),
                     "message": {"role": "assistant", "content": answer}, "done": True, "done_reason": "stop",
                     "prompt": prompt}

    def _runner(self, model: dict):
        with self.lock:
            if model["name"] not in self._runners:
                self._runners[model["name"]] = _gguf_runner(self.blob_path(model["digest"]))
            return self._runners[model["name"]]


def _gguf_info(path: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    arch = reader.fields["general.architecture"].contents()
    info = {"general.architecture": arch, "file_type": int(reader.fields["general.file_type"].contents())}
    for key in ("block_count", "embedding_length", "context_length"):
        info[f"{arch}.{key}"] = int(reader.fields[f"{arch}.{key}"].contents())
    info["tensors"] = len(reader.tensors)
    return info


def _gguf_runner(path: Path):
    """Greedy generation with the GGUF weights (transformers dequantizes them)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()

    def run(prompt: str, num_predict: int) -> str:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=num_predict, do_sample=False,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    return run


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOllama
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, payload: Any = None, *, ndjson: list[dict] | None = None) -> None:
        data = b""
        if ndjson is not None:
            data = b"".join(json.dumps(x).encode() + b"\n" for x in ndjson)
        elif payload is not None:
            data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-ndjson" if ndjson is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else {}

    def do_HEAD(self) -> None:
        self.fake.requests.append(("HEAD", self.path))
        m = _DIGEST.match(self.path)
        self._send(200 if m and self.fake.blob_path(m.group(1)).is_file() else 404)

    def do_GET(self) -> None:
        self.fake.requests.append(("GET", self.path))
        if self.path == "/api/tags":
            self._send(*self.fake.tags())
        else:
            self._send(404, {"error": "not found"})

    def do_DELETE(self) -> None:
        self.fake.requests.append(("DELETE", self.path))
        if self.path == "/api/delete":
            self._send(*self.fake.delete(self._json()))
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        self.fake.requests.append(("POST", self.path))
        m = _DIGEST.match(self.path)
        if m:
            self._upload(m.group(1))
            return
        routes = {"/api/create": self.fake.create, "/api/show": self.fake.show, "/api/chat": self.fake.chat}
        if self.path not in routes:
            self._send(404, {"error": "not found"})
            return
        body = self._json()
        status, payload = routes[self.path](body)
        if self.path == "/api/create" and status == 200 and body.get("stream", True):
            self._send(200, ndjson=[{"status": "parsing GGUF"}, {"status": "writing manifest"}, payload])
        else:
            self._send(status, payload)

    def _upload(self, digest: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        h = hashlib.sha256()
        tmp = self.fake.blob_path(digest).with_suffix(".partial")
        with open(tmp, "wb") as f:
            remaining = length
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                h.update(chunk)
                f.write(chunk)
                remaining -= len(chunk)
        if f"sha256:{h.hexdigest()}" != digest:
            tmp.unlink()
            self._send(400, {"error": f"digest mismatch, expected {digest}, got sha256:{h.hexdigest()}"})
            return
        tmp.rename(self.fake.blob_path(digest))
        self._send(201)
