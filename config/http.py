"""Outbound HTTP POSTs to configured URLs (alert webhooks, Telegram, the simulator)."""

import urllib.parse
import urllib.request


def post_json(
    url: str, body: bytes, *, headers: dict[str, str] | None = None, timeout: float = 10
) -> bytes:
    """POST a JSON body; only http(s) URLs (urllib would also open file: and ftp:)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"only http(s) URLs can be posted to, not {url!r}")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return response.read()
