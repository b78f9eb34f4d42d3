"""Loopback DNS server for tests: records set from Python, served over UDP and TCP on one port.

Point the product at it with ``settings.DNS_NAMESERVERS = [dns.nameserver]``. It answers like an
authoritative server that is also the client's only resolver: NXDOMAIN for unknown names, NODATA
(NOERROR, no answers) for a known name without the asked type or for a name that only has
records below it, CNAMEs followed within its own data, the aa flag set, and UDP replies larger
than the client accepts (512 bytes, or its EDNS payload up to 1232) truncated with TC so that
the client retries over TCP.

Registered as a pytest plugin (``pytest_plugins``); fixtures: ``dns_server`` (one per session)
and ``dns`` (the same server, emptied for each test).
"""

import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Self

import pytest
from dnslib import AAAA, CNAME, EDNS0, MX, NS, QTYPE, RCODE, RD, RR, TXT, A, DNSError, DNSRecord
from dnslib.server import DNSHandler, DNSLogger, DNSServer

RTYPES = ("TXT", "CNAME", "MX", "A", "AAAA", "NS")
UDP_PAYLOAD = 512  # RFC 1035: the most a UDP reply may hold when the query has no EDNS
EDNS_PAYLOAD = 1232  # what we offer EDNS clients (DNS Flag Day 2020 value)
MAX_CNAME_HOPS = 8
TXT_STRING_MAX = 255  # one TXT character-string holds at most 255 bytes


def _key(name: str) -> str:
    """The zone's key for `name`: lower case, no trailing dot."""
    return name.strip().rstrip(".").lower()


def _txt_strings(value: str | bytes) -> list[bytes]:
    # Long values (a 2048-bit DKIM key is ~400 chars) span several character-strings of one
    # record, as in real zones; clients join them.
    data = value.encode() if isinstance(value, str) else value
    return [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)] or [b""]


def _rdata(rtype: str, value: str | bytes) -> RD:
    if rtype == "TXT":
        return TXT(_txt_strings(value))
    if not isinstance(value, str):
        raise TypeError(f"{rtype} values are strings, got {value!r}")
    if rtype == "MX":
        preference, _, exchange = value.strip().partition(" ")
        if not exchange.strip():
            raise ValueError(f"MX values look like '10 mx.example.com.', got {value!r}")
        return MX(exchange.strip(), int(preference))
    if rtype == "CNAME":
        return CNAME(value)
    if rtype == "NS":
        return NS(value)
    if rtype == "A":
        return A(value)
    return AAAA(value)


def _rtype(rtype: str) -> str:
    rtype = rtype.upper()
    if rtype not in RTYPES:
        raise ValueError(f"unsupported record type {rtype!r}; use one of {', '.join(RTYPES)}")
    return rtype


class _Handler(DNSHandler):
    """dnslib's handler, with per-query UDP truncation and dropped (never answered) queries."""

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        reply = self.server.resolver.resolve(request, self)
        if reply is None:
            # DNSHandler.handle swallows DNSError: nothing is sent and the client times out.
            raise DNSError("query dropped on purpose")
        rdata = reply.pack()
        if self.protocol == "udp" and len(rdata) > _udp_payload(request):
            reply.rr, reply.auth = [], []
            reply.header.tc = 1
            rdata = reply.pack()
        return rdata


def _udp_payload(request: DNSRecord) -> int:
    opt = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
    if opt is None:
        return UDP_PAYLOAD
    return max(UDP_PAYLOAD, min(opt.edns_len, EDNS_PAYLOAD))


def _quiet_logger() -> DNSLogger:
    return DNSLogger(logf=lambda _line: None)


class DnsServer:
    """A DNS server on 127.0.0.1 (UDP and TCP, same port) whose records tests set directly.

    Names are case-insensitive, with or without the trailing dot. All methods are safe to call
    while queries are being answered.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, list[RR]]] = {}
        self._slow: set[str] = set()
        self._servfail: set[str] = set()
        self._queries: list[tuple[str, str]] = []
        # Slow queries wait on this; clear() and stop() set it so their threads end.
        self._release = threading.Event()
        self._servers = self._bind()
        self.port: int = self._servers[0].server.server_address[1]
        self._threads: list[threading.Thread] = []

    def _bind(self) -> tuple[DNSServer, DNSServer]:
        # Port 0 gives a free UDP port; the same TCP port is usually free too, else retry.
        for _attempt in range(50):
            udp = DNSServer(
                self, address=self.host, port=0, handler=_Handler, logger=_quiet_logger()
            )
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(
                    self,
                    address=self.host,
                    port=port,
                    tcp=True,
                    handler=_Handler,
                    logger=_quiet_logger(),
                )
            except OSError:
                udp.server.server_close()
                continue
            return udp, tcp
        raise OSError("no port free for both UDP and TCP")

    @property
    def nameserver(self) -> str:
        """The "host:port" string for the DNS_NAMESERVERS setting."""
        return f"{self.host}:{self.port}"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for server in self._servers:
            thread = threading.Thread(
                target=server.server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"dns-{server.server.socket_type.name}-{self.port}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._release.set()
        for server in self._servers:
            if self._threads:
                server.server.shutdown()
            server.server.server_close()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- zone data ---------------------------------------------------------------------------

    def set(self, name: str, rtype: str, values: Iterable[str] | str, ttl: int = 300) -> None:
        """Replace all `rtype` records at `name` (an empty list removes them).

        TXT values are plain strings; MX values look like "10 mx.example.com.".
        """
        rtype = _rtype(rtype)
        key = _key(name)
        if isinstance(values, str | bytes):
            values = [values]
        rrs = [RR(key, getattr(QTYPE, rtype), rdata=_rdata(rtype, v), ttl=ttl) for v in values]
        with self._lock:
            rrsets = self._records.setdefault(key, {})
            if rrs:
                rrsets[rtype] = rrs
            else:
                rrsets.pop(rtype, None)
            if not rrsets:
                del self._records[key]

    def add(self, name: str, rtype: str, value: str, ttl: int = 300) -> None:
        """Add one record beside those already at `name`."""
        rtype = _rtype(rtype)
        key = _key(name)
        rr = RR(key, getattr(QTYPE, rtype), rdata=_rdata(rtype, value), ttl=ttl)
        with self._lock:
            rrsets = self._records.setdefault(key, {})
            rrsets[rtype] = [*rrsets.get(rtype, []), rr]

    def remove(self, name: str, rtype: str | None = None) -> None:
        """Remove the `rtype` records at `name`, or all of them (the name becomes NXDOMAIN)."""
        key = _key(name)
        with self._lock:
            rrsets = self._records.get(key, {})
            if rtype is None:
                rrsets.clear()
            else:
                rrsets.pop(_rtype(rtype), None)
            if not rrsets:
                self._records.pop(key, None)

    def slow(self, name: str) -> None:
        """Never answer queries for `name` (any type), so clients time out."""
        with self._lock:
            self._slow.add(_key(name))

    def servfail(self, name: str) -> None:
        """Answer SERVFAIL to queries for `name` (any type)."""
        with self._lock:
            self._servfail.add(_key(name))

    def clear(self) -> None:
        """Forget all records, slow and failing names, and the query log."""
        with self._lock:
            self._records.clear()
            self._slow.clear()
            self._servfail.clear()
            self._queries.clear()
            self._release.set()
            self._release = threading.Event()

    @property
    def queries(self) -> list[tuple[str, str]]:
        """Every query received, oldest first, as (name, type): ("example.com", "TXT").

        A UDP answer truncated and retried over TCP counts twice, as it does on the wire.
        """
        with self._lock:
            return list(self._queries)

    def query_count(self, name: str, rtype: str | None = None) -> int:
        key = _key(name)
        kind = rtype.upper() if rtype else None
        return sum(1 for n, t in self.queries if n == key and kind in (None, t))

    # --- answering (dnslib resolver interface) -----------------------------------------------

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord | None:
        """The reply to `request`, or None to leave it unanswered."""
        qname = _key(str(request.q.qname))
        qtype = QTYPE.get(request.q.qtype, f"TYPE{request.q.qtype}")
        reply = request.reply()  # aa=1
        if any(rr.rtype == QTYPE.OPT for rr in request.ar):
            reply.add_ar(EDNS0(udp_len=EDNS_PAYLOAD))
        with self._lock:
            self._queries.append((qname, qtype))
            if qname in self._slow:
                release = self._release
            elif qname in self._servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            else:
                self._answer(reply, qname, qtype)
                return reply
        # Outside the lock: only this query's thread waits.
        release.wait()
        return None

    def _answer(self, reply: DNSRecord, qname: str, qtype: str) -> None:
        name = qname
        for _hop in range(MAX_CNAME_HOPS):
            rrsets = self._records.get(name)
            if rrsets is None:
                if not any(key.endswith("." + name) for key in self._records):
                    reply.header.rcode = RCODE.NXDOMAIN
                return  # else an empty non-terminal: NODATA
            if qtype in rrsets:
                reply.add_answer(*rrsets[qtype])
                return
            if "CNAME" not in rrsets:
                return  # NODATA
            cname = rrsets["CNAME"][0]
            reply.add_answer(cname)
            name = _key(str(cname.rdata.label))
        reply.header.rcode = RCODE.SERVFAIL  # CNAME loop


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    """One loopback DNS server for the whole session."""
    with DnsServer() as server:
        yield server


@pytest.fixture
def dns(dns_server: DnsServer) -> DnsServer:
    """The session's DNS server with no records, slow or failing names, and an empty query log."""
    dns_server.clear()
    return dns_server
