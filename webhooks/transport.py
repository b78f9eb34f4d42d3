"""One signed POST to a receiver: resolved once, refused for internal addresses, never redirected.

No Django here: the caller passes the settings in. The connection is pinned to the address that
was checked (the TLS certificate is still verified against the URL's host name), so a name that
re-resolves to an internal address between the check and the request (DNS rebinding) is never
followed."""

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

EXCERPT_CHARS = 500


@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    error: str
    response_excerpt: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def host_is_internal(host: str) -> bool:
    """A literal address that is not global, or a name that is plainly local."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        return not ipaddress.ip_address(name).is_global
    except ValueError:
        return False


def _resolve(host: str, port: int, allow_private: bool) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OSError(f"The host {host} does not exist.") from None
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not ipaddress.ip_address(address).is_global:
                raise OSError(
                    f"{host} resolves to an internal address ({address}); webhooks are not "
                    "sent to internal networks."
                )
    return addresses[0]


def post(
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    allow_private: bool,
    ca_file: str = "",
) -> PostResult:
    """POST `body`; a 3xx is an answer like any other non-2xx (redirects are not followed)."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = _resolve(host, port, allow_private)
    except OSError as error:
        return PostResult(None, str(error)[:EXCERPT_CHARS], "", elapsed())
    pinned = httpx.URL(url).copy_with(host=address)
    request_headers = {
        **headers,
        "Host": parts.netloc.rpartition("@")[2],
        "Content-Type": "application/json",
        "User-Agent": "TrustGate-Webhooks/1",
    }
    verify: bool | ssl.SSLContext = ssl.create_default_context(cafile=ca_file) if ca_file else True
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, verify=verify) as client:
            response = client.post(
                pinned,
                content=body,
                headers=request_headers,
                extensions={"sni_hostname": host},
            )
            excerpt = response.text[:EXCERPT_CHARS]
    except httpx.TimeoutException:
        return PostResult(None, f"No answer within {timeout:g} s.", "", elapsed())
    except httpx.HTTPError as error:
        text = str(error) or type(error).__name__
        return PostResult(None, f"Could not connect: {text}"[:EXCERPT_CHARS], "", elapsed())
    error_text = "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    if 300 <= response.status_code < 400:
        error_text += " (redirects are not followed: give the final URL)"
    return PostResult(response.status_code, error_text, excerpt, elapsed())
