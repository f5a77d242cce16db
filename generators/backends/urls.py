"""Server URLs: check them, take the credentials out of them, and redact them before they are
shown or written anywhere.

A base URL may carry `user:password@` (sent as HTTP basic auth) and query parameters (such as
an Azure `?api-version=`, possibly an `?api-key=`). Neither the password nor any query value
may reach a log, a message, a manifest or a cache key, so everything that names a server
names `redact_url(url)`.
"""
from __future__ import annotations

from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from generators.core.errors import UsageError

REDACTED = "REDACTED"


def check_base_url(url: str) -> None:
    """UsageError (one line, never echoing the URL) unless `url` is http(s) with a host."""
    example = "such as http://127.0.0.1:8000/v1"
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # .port raises ValueError when not a number
    except ValueError:
        raise UsageError(f"--base-url is not a valid URL; give one {example}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"--base-url must start with http:// or https://; give one {example}")
    if not host:
        raise UsageError(f"--base-url has no host; give one {example}")


def _netloc_host(netloc: str) -> str:
    """host[:port] of a netloc: what follows the LAST '@' (a password may contain '@')."""
    return netloc.rpartition("@")[2]


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(the URL without user:password@, (user, password) percent-decoded, or None without one)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo = parts.netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    bare = parts._replace(netloc=_netloc_host(parts.netloc))
    return urlunsplit(bare), (unquote(user), unquote(password))


def _redact_query(query: str) -> str:
    """Every value replaced; a bare item (`?token`) may itself be a secret, so it goes too."""
    items = []
    for item in query.split("&"):
        if not item:
            continue
        key, sep, _ = item.partition("=")
        items.append(f"{key}={REDACTED}" if sep else REDACTED)
    return "&".join(items)


def _split_any(url: str) -> tuple[SplitResult, bool]:
    """urlsplit, reading a scheme-less `user:pw@host/v1` as a netloc too (bool: it had no '//')."""
    parts = urlsplit(url)
    if parts.netloc or "@" not in url:
        return parts, False
    return urlsplit("//" + url), True


def redact_url(url: str | None) -> str | None:
    """The URL without user:password@ and with every query value replaced by REDACTED:
    `http://u:p@h/v1?api-key=s&x=1` -> `http://h/v1?api-key=REDACTED&x=REDACTED`."""
    if url is None:
        return None
    try:
        parts, bare = _split_any(url)
    except ValueError:
        return "(an unreadable URL)"
    parts = parts._replace(netloc=_netloc_host(parts.netloc), query=_redact_query(parts.query), fragment="")
    text = urlunsplit(parts)
    return text.removeprefix("//") if bare else text
