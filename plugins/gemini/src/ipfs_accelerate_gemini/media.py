"""Images as Gemini parts: ``inlineData`` with the MIME type read from the bytes.

>>> image_part(b"\\x89PNG\\r\\n\\x1a\\n...")["inlineData"]["mimeType"]
'image/png'
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any

from ipfs_accelerate_py.errors import InvalidArgumentError

__all__ = ["detect_image_type", "image_part", "url_part"]


def detect_image_type(data: bytes) -> str | None:
    """The image MIME type from the file's magic number (PNG, JPEG, WebP, GIF), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return None


def image_part(data: bytes) -> dict[str, Any]:
    """An ``inlineData`` part for image bytes; InvalidArgumentError for unknown bytes."""
    mime = detect_image_type(data)
    if mime is None:
        raise InvalidArgumentError(
            "the image is not PNG, JPEG, WebP or GIF (its first bytes are "
            f"{data[:12]!r}); pass the raw bytes of an image file"
        )
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode("ascii")}}


def url_part(url: str) -> dict[str, Any]:
    """An OpenAI-style image URL: a ``data:`` URL becomes ``inlineData``, any other URL a
    ``fileData`` reference (with the MIME type guessed from its name)."""
    if url.startswith("data:"):
        header, sep, payload = url[5:].partition(",")
        if not sep or not header.endswith(";base64"):
            raise InvalidArgumentError("a data: URL image must be base64 (data:<type>;base64,...)")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgumentError("the data: URL image is not valid base64") from None
        declared = header.removesuffix(";base64")
        mime = detect_image_type(raw) or declared
        if not mime:
            raise InvalidArgumentError("the data: URL names no MIME type and is no known image")
        return {"inlineData": {"mimeType": mime, "data": base64.b64encode(raw).decode("ascii")}}
    ref: dict[str, Any] = {"fileUri": url}
    guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
    if guessed:
        ref["mimeType"] = guessed
    return {"fileData": ref}
