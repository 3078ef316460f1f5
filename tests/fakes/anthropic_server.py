"""A loopback fake of the Anthropic Messages API (``POST /v1/messages``), driven by the real SDK::

    with FakeAnthropic(responder=lambda body: '{"score": 4, "reason": "fine"}') as fake:
        client = Anthropic(base_url=fake.base_url, api_key="test")
        client.messages.create(model="claude-x", max_tokens=100, messages=[...])

A threaded ``http.server`` on 127.0.0.1 (port 0). Responses and errors use the real shapes
(``{"type": "message", "content": [{"type": "text", ...}], "usage": ...}`` and
``{"type": "error", "error": {"type", "message"}}``); requests need the key, as ``x-api-key``
or (what SDK 2.x sends) ``authorization: Bearer``.

Knobs: ``responder(body) -> str`` writes the assistant's text (raise ``FakeError`` from it to answer
with an error); ``latency`` seconds per request (what a real judge call costs, for benchmarks);
``fail_next(n, status)`` fails the next n requests; ``max_requests_per_s`` answers 429 (with
``retry-after-ms``) to requests beyond that rate in any one-second window. ``requests`` records
every request body; ``max_in_flight`` is the most requests seen at once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


class FakeError(Exception):
    """Raised by a responder: the fake answers with this HTTP status and error message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _last_user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def echo_responder(body: dict) -> str:
    return _last_user_text(body)


class FakeAnthropic:
    def __init__(self, responder: Callable[[dict], str] = echo_responder, *, latency: float = 0.0,
                 max_requests_per_s: int | None = None, api_key: str = "test"):
        self.responder = responder
        self.latency = latency
        self.max_requests_per_s = max_requests_per_s
        self.api_key = api_key
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.rejected = 0  # requests answered 429 by the rate limit
        self.in_flight = 0
        self.max_in_flight = 0
        self._fail: deque[int] = deque()
        self._window: deque[float] = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        with self.lock:
            self._fail.extend([status] * n)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeAnthropic:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- request handling ------------------------------------------------------------

    def _admit(self) -> int | None:
        """An injected failure or a rate-limit status for this request, else None."""
        with self.lock:
            if self._fail:
                return self._fail.popleft()
            if self.max_requests_per_s is not None:
                now = time.monotonic()
                while self._window and now - self._window[0] >= 1.0:
                    self._window.popleft()
                if len(self._window) >= self.max_requests_per_s:
                    self.rejected += 1
                    return 429
                self._window.append(now)
        return None

    def handle(self, headers, raw: bytes) -> tuple[int, dict, dict[str, str]]:
        if self.api_key not in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer ")):
            return _error(401, "invalid x-api-key")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "request body is not valid JSON")
        for field in ("model", "max_tokens", "messages"):
            if field not in body:
                return _error(400, f"{field}: Field required")
        status = self._admit()
        if status is not None:
            return _error(status, "injected failure" if status != 429 else "rate limit exceeded",
                          {"retry-after-ms": "5"} if status in (429, 500, 529) else {})
        with self.lock:
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            text = self.responder(body)
        except FakeError as exc:
            return _error(exc.status, exc.message)
        finally:
            with self.lock:
                self.in_flight -= 1
        return 200, {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": len(json.dumps(body["messages"])) // 4, "output_tokens": len(text) // 4},
        }, {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> tuple[int, dict, dict[str, str]]:
    return status, {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}, \
        {"x-should-retry": "false", **(headers or {})} if status not in (408, 409, 429, 500, 529) else (headers or {})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path.split("?")[0] != "/v1/messages":
            status, payload, headers = _error(404, f"no route {self.path}")
        else:
            status, payload, headers = self.server.fake.handle(self.headers, raw)  # type: ignore[attr-defined]
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
