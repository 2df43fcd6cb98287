"""A small local HTTP server playing the sandbox provider (Daytona-shaped API):
`POST /sandbox` → 201 `{"id"}`, `GET /sandbox?labels={json}` → the sandboxes carrying
those labels, `DELETE /sandbox/{id}` → 204 (404 when unknown), bearer-key
authentication. A test can make it fail (`fail_with = 500`) or hang past the client's
timeout (`delay = seconds`; only for some methods with `slow_methods = {"POST"}`), and
read the calls it received. A request it answers too late is still carried out, as a
real provider would (a sandbox created after the client gave up).

Use the `fake_provider` fixture (import it into the test module), and
`use_http_provider(settings, fake_provider)` to point the service at it.
"""

import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

API_KEY = "test-provider-key"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is expected here


class FakeProvider:
    def __init__(self):
        self.sandboxes: set[str] = set()
        self.labels: dict[str, dict] = {}
        self.slow_methods: set[str] | None = None  # None: every method
        self.can_list = True  # False: `GET /sandbox` is a 404, as from a provider without it
        self.filters_labels = True  # False: `GET /sandbox` lists every sandbox, whatever the filter
        self.lists_labels = True  # False: the listed sandboxes carry no labels
        self.calls: list[tuple[str, str]] = []
        self.fail_with: int | None = None
        self.delay = 0.0
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def calls_to(self, method: str) -> int:
        with self.lock:
            return sum(1 for m, _ in self.calls if m == method)

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict | list | None = None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _gate(self) -> bool:
                with provider.lock:
                    provider.calls.append((self.command, self.path))
                    delay, fail_with = provider.delay, provider.fail_with
                    if provider.slow_methods is not None and self.command not in provider.slow_methods:
                        delay = 0
                if delay:
                    time.sleep(delay)
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    self._answer(401, {"message": "bad key"})
                    return False
                if fail_with:
                    self._answer(fail_with, {"message": "provider failure"})
                    return False
                return True

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/api/sandbox" or not self._gate():
                    return
                external_id = f"sb-{uuid.uuid4().hex[:12]}"
                with provider.lock:
                    provider.sandboxes.add(external_id)
                    provider.labels[external_id] = body.get("labels") or {}
                self._answer(201, {"id": external_id, "state": "started"})

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/api/sandbox" or not self._gate():
                    return
                if not provider.can_list:
                    self._answer(404, {"message": "not found"})
                    return
                wanted = json.loads(urllib.parse.parse_qs(url.query).get("labels", ["{}"])[0])
                with provider.lock:
                    found = [{"id": sid, **({"labels": provider.labels.get(sid, {})} if provider.lists_labels else {})}
                             for sid in sorted(provider.sandboxes)
                             if not provider.filters_labels or wanted.items() <= provider.labels.get(sid, {}).items()]
                self._answer(200, found)

            def do_DELETE(self):
                if not self.path.startswith("/api/sandbox/") or not self._gate():
                    return
                external_id = self.path.rsplit("/", 1)[1]
                with provider.lock:
                    known = external_id in provider.sandboxes
                    provider.sandboxes.discard(external_id)
                if known:
                    self._answer(204)
                else:
                    self._answer(404, {"message": "not found"})

        return Handler


@pytest.fixture
def fake_provider():
    provider = FakeProvider()
    provider.thread.start()
    yield provider
    provider.server.shutdown()
    provider.server.server_close()


def use_http_provider(settings, provider: FakeProvider, *, timeout: float = 0.3) -> None:
    settings.SANDBOX_PROVIDER = "http"
    settings.SANDBOX_API_URL = provider.url
    settings.SANDBOX_API_KEY = API_KEY
    settings.SANDBOX_API_TIMEOUT = timeout
