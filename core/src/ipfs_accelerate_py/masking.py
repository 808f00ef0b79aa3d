"""Secret masking: the only form in which a key may appear in logs, reprs, errors or stats."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def mask_secret(secret: str | None) -> str:
    """Return ``secret`` masked as ``sk-...abcd``: a short prefix and the last four characters.

    Short secrets (under 12 characters) show only ``...`` and the last two characters, so
    that a mask never reveals most of a key.
    """
    if not secret:
        return "<none>"
    if len(secret) < 12:
        return "..." + secret[-2:]
    prefix = secret[:3] if secret[:3].isascii() else ""
    return f"{prefix}...{secret[-4:]}"


FRAGMENT = 8
"""Any run of at least this many characters of a secret is masked, wherever it appears: a
key cut at an excerpt's edge, or echoed in part, is masked all the same."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret in ``text`` by its mask, and every run of
    :data:`FRAGMENT` or more characters of a secret too (a key cut at an excerpt's edge)."""
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        mask = mask_secret(secret)
        for form in {secret, secret.strip(), repr(secret)[1:-1]}:  # as given, and escaped
            if len(form) >= 4 and form in text:
                text = text.replace(form, mask)
        if len(secret) >= FRAGMENT and len(text) >= FRAGMENT:
            text = _mask_fragments(text, secret, mask)
    return text


def _mask_fragments(text: str, secret: str, mask: str) -> str:
    """``text`` with each longest run of FRAGMENT+ characters of ``secret`` replaced by
    ``mask``."""
    grams = {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    out: list[str] = []
    start = i = 0
    end = len(text) - FRAGMENT
    while i <= end:
        if text[i : i + FRAGMENT] in grams:
            j = i + FRAGMENT
            while j < len(text) and text[i : j + 1] in secret:
                j += 1
            out += (text[start:i], mask)
            start = i = j
        else:
            i += 1
    if not out:
        return text
    out.append(text[start:])
    return "".join(out)


def redact_data(data: Any, secrets: Iterable[str | None]) -> Any:
    """``data`` (decoded JSON) with every string passed through :func:`redact`."""
    secrets = [s for s in secrets if s and len(s) >= 4]
    if not secrets:
        return data

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, secrets)
        if isinstance(value, dict):
            return {walk(k): walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    try:
        return walk(data)
    except RecursionError:  # nested too deeply to walk: show none of it rather than crash
        return "<not shown: nested too deeply>"


def mask_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (for reprs and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # not parseable as a URL: hide anything between "//" and "@"
        head, sep, tail = url.partition("@")
        return f"{head.split('//')[0]}//***@{tail}" if sep else url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
