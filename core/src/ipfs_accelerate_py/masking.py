"""Secret masking: the only form in which a key may appear in logs, reprs, errors or stats."""

from __future__ import annotations

from collections.abc import Iterable


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


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret in ``text`` by its mask."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, mask_secret(secret))
    return text
