"""A real HTTP receiver on loopback that answers with scripted status codes and keeps what came."""

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webhooks.services.endpoints import endpoint_create


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    # Status codes to answer with, in order; once used up, `default` answers.
    script: list[int] = field(default_factory=list)
    default: int = 200
    location: str = ""
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else self.default


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
            code = receiver.answer()
            text = b'{"ok": true}' if code < 300 else b"receiver says no"
            self.send_response(code)
            if 300 <= code < 400:
                self.send_header("Location", receiver.location or "http://127.0.0.1:9/")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    """The receiver, and the settings that let webhooks reach loopback over plain http."""
    settings.WEBHOOKS_ALLOW_PRIVATE_HOSTS = True
    settings.WEBHOOKS_TIMEOUT_SECONDS = 3
    recv = Receiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recv))
    recv.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/trustgate"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recv
    server.shutdown()
    server.server_close()


@pytest.fixture
def endpoint(owner, receiver):
    """An endpoint of the owner's workspace pointed at the receiver, with its secret."""
    made, secret = endpoint_create(workspace=owner.workspace, actor=owner.user, url=receiver.url)
    made.secret = secret
    return made
