"""An IMAP server on loopback that lets anyone log in and then refuses to list folders.

Dovecot cannot be made to fail LIST on demand, yet real servers do (broken ACLs, a storage
outage behind a proxy); the product must say so clearly. This speaks just enough IMAP4rev1
over a real socket for a client to reach that point.
"""

import socketserver
import threading
from collections.abc import Iterator

import pytest


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] broken-list server ready\r\n")
        for raw in self.rfile:
            tag, _, rest = raw.decode(errors="replace").strip().partition(" ")
            command = rest.split(" ", 1)[0].upper()
            if command == "CAPABILITY":
                self.wfile.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
                self.wfile.write(f"{tag} OK CAPABILITY completed\r\n".encode())
            elif command == "LOGIN":
                self.wfile.write(f"{tag} OK LOGIN completed\r\n".encode())
            elif command == "LIST":
                self.wfile.write(f"{tag} NO [SERVERBUG] mail storage unavailable\r\n".encode())
            elif command == "LOGOUT":
                self.wfile.write(b"* BYE logging out\r\n")
                self.wfile.write(f"{tag} OK LOGOUT completed\r\n".encode())
                return
            else:
                self.wfile.write(f"{tag} BAD unsupported\r\n".encode())


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="session")
def broken_imap_server() -> Iterator[tuple[str, int]]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address
    server.shutdown()
    server.server_close()
