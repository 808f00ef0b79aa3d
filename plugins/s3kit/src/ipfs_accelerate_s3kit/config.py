"""Where an S3 endpoint's address and credentials come from.

Address: the endpoint's base URL (``base_url=``, ``create_endpoint(base_url=...)``,
``metadata["base_url"]``) > ``metadata["s3cfg"]["endpoint"]`` > ``metadata["s3_endpoint"]``
> ``S3_ENDPOINT`` > ``AWS_ENDPOINT_URL_S3`` > ``AWS_ENDPOINT_URL`` > none (AWS itself).

Credentials: a leased :class:`~ipfs_accelerate_py.calls.Credential` (``api_key=`` or
``add_api_key``) > ``metadata["s3cfg"]`` (``accessKey``, ``secretKey``, ``sessionToken``) >
``metadata["s3_access_key"]``/``["s3_secret_key"]`` > ``S3_ACCESS_KEY``/``S3_SECRET_KEY``
(``S3_SESSION_TOKEN``) > boto3's own chain (``AWS_ACCESS_KEY_ID``..., profiles, roles).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from ipfs_accelerate_py.calls import Credential
from ipfs_accelerate_py.config import Settings
from ipfs_accelerate_py.errors import ConfigurationError
from ipfs_accelerate_py.masking import mask_url

__all__ = ["EXTRA_CONFIG", "Target", "configured_credential", "endpoint_url", "target_of"]

NAME = "s3_kit"

EXTRA_CONFIG: dict[str, Any] = {
    "s3cfg": None,
    "s3_endpoint": None,
    "s3_access_key": None,
    "s3_secret_key": None,
    "s3_session_token": None,
    "s3_region": None,
    "s3_addressing_style": None,
}


@attrs.frozen(slots=True)
class Target:
    """Where an endpoint's calls go and how its boto3 client is configured."""

    endpoint: str | None
    region: str | None
    addressing_style: str
    connect_timeout: float
    read_timeout: float

    @property
    def label(self) -> str:
        """The endpoint's address for messages (credentials masked)."""
        return mask_url(self.endpoint) if self.endpoint else "the default AWS S3 endpoint"


def _cfg(settings: Settings) -> Mapping[str, Any]:
    cfg = settings.extra.get("s3cfg")
    if cfg is None:
        return {}
    if not isinstance(cfg, Mapping):
        raise ConfigurationError(
            f"metadata['s3cfg'] must be a dict, got {type(cfg).__name__}", provider=NAME
        )
    return cfg


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def endpoint_url(settings: Settings) -> str | None:
    """The S3 endpoint URL for ``settings``, or ``None`` for AWS itself."""
    found = (
        _text(settings.base_url)
        or _text(_cfg(settings).get("endpoint"))
        or _text(settings.extra.get("s3_endpoint"))
    )
    if found is None:
        for name in ("S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            found = _text(os.environ.get(name))
            if found:
                break
    if found is None:
        return None
    if "://" not in found:
        found = "http://" + found
    parts = urlsplit(found)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"the S3 endpoint must be an http:// or https:// URL, got {mask_url(found)!r}",
            provider=NAME,
        )
    return found.rstrip("/")


def configured_credential(settings: Settings) -> Credential | None:
    """The credential configured in metadata or ``S3_*`` variables, or ``None`` (then
    boto3's default chain applies)."""
    cfg = _cfg(settings)
    extra = settings.extra
    sources = [
        ("metadata['s3cfg']", cfg.get("accessKey"), cfg.get("secretKey"), cfg.get("sessionToken")),
        (
            "metadata['s3_access_key'/'s3_secret_key']",
            extra.get("s3_access_key"),
            extra.get("s3_secret_key"),
            extra.get("s3_session_token"),
        ),
        (
            "S3_ACCESS_KEY/S3_SECRET_KEY",
            os.environ.get("S3_ACCESS_KEY"),
            os.environ.get("S3_SECRET_KEY"),
            os.environ.get("S3_SESSION_TOKEN"),
        ),
    ]
    for where, key_id, secret, token in sources:
        key_id, secret, token = _text(key_id), _text(secret), _text(token)
        if key_id and secret:
            return Credential(secret, id=key_id, extra={"session_token": token} if token else {})
        if key_id or secret:
            missing = "secret key" if key_id else "access key id"
            raise ConfigurationError(f"{where} has no {missing}", provider=NAME)
    return None


def target_of(settings: Settings) -> Target:
    """The target of an endpoint with these settings."""
    url = endpoint_url(settings)
    style = _text(settings.extra.get("s3_addressing_style")) or ("path" if url else "auto")
    if style not in ("path", "virtual", "auto"):
        raise ConfigurationError(
            f"s3_addressing_style must be 'path', 'virtual' or 'auto', got {style!r}",
            provider=NAME,
        )
    return Target(
        endpoint=url,
        region=_text(settings.extra.get("s3_region")) or _text(_cfg(settings).get("region")),
        addressing_style=style,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.timeout,
    )
