"""Servers that tests can break on purpose: a throwaway Redis that can be killed and started
again on the same port, and a loopback TCP proxy that can stall a connection (bytes held in both
directions, sockets left open: what a hung database or a dropped network path looks like).
"""

import contextlib
import selectors
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.servers.mail import free_port


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_until(condition, *, timeout: float, interval: float = 0.1, what: str = "") -> None:
    """Poll `condition` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A redis-server on a free loopback port, keeping nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--dir", str(self.workdir)),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), timeout=10, what="redis-server to listen")

    def kill(self) -> None:
        """Gone at once, queued messages and all (no persistence)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


class StallingProxy:
    """Forwards loopback TCP connections to `target_port`; `stall()` stops moving bytes (new
    connections are accepted and connected upstream, but nothing passes) until `resume()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.connections = 0  # accepted so far: a client reached the server (or the stall)
        self._thread = threading.Thread(target=self._run, name="stalling-proxy", daemon=True)
        self._thread.start()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, None)
        while not self._closed:
            if not self._flowing.wait(timeout=0.1):
                # Stalled: accept (as a live server's kernel would) but pass nothing.
                self._accept_waiting(selector)
                continue
            for key, _ in selector.select(timeout=0.1):
                if key.data is None:
                    self._accept(selector)
                    continue
                source, peer = key.fileobj, key.data
                try:
                    data = source.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    self._drop(selector, source, peer)  # type: ignore[arg-type]
                    continue
                try:
                    peer.sendall(data)
                except OSError:
                    self._drop(selector, source, peer)  # type: ignore[arg-type]
        selector.close()

    def _accept_waiting(self, selector: selectors.BaseSelector) -> None:
        self.listener.settimeout(0)
        try:
            while True:
                self._accept(selector)
        except (BlockingIOError, OSError):
            pass

    def _accept(self, selector: selectors.BaseSelector) -> None:
        client, _ = self.listener.accept()
        client.setblocking(True)
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        upstream.settimeout(None)
        with self._lock:
            self._sockets += [client, upstream]
            self.connections += 1
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)

    def _drop(self, selector: selectors.BaseSelector, *pair: socket.socket) -> None:
        for sock in pair:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(sock)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._thread.join(timeout=5)
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
