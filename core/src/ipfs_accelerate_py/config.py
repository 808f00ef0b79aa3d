"""Where a backend's settings come from: arguments, ``metadata``, the environment, ``.env``.

Precedence, highest first: explicit arguments (``get_backend("openai", api_key=...)``) >
the ``metadata`` dict (lower-case keys: ``openai_api_key``, ``openai_base_url``) > the
environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) > a ``.env`` file.

The ``.env`` file is one more settings layer, the lowest: it is read (python-dotenv's
``dotenv_values``) and consulted by this module's resolution only. It is never written into
``os.environ``, so nothing else in the process sees it (``HTTP_PROXY`` in a ``.env`` does not
reach httpx), and it never overrides an argument, ``metadata`` or a real environment variable.
Which file: the first ``.env`` found from the current directory upwards, up to and including
the project root (the first directory upwards holding ``.git`` or ``pyproject.toml``); the
search never goes above the project root, and with no project root above the current
directory only the current directory's ``.env`` counts. So a ``.env`` in a shared or writable
parent folder cannot choose where a key is sent. ``IPFS_ACCELERATE_NO_DOTENV=1`` (in the real
environment) turns the file off.

A plugin declares its names in a :class:`BackendSpec`; :func:`resolve_settings` applies the
rules above and validates the base URL. Keys are kept out of every repr.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .calls import Credential
from .errors import ConfigurationError
from .masking import mask_secret, mask_url

if TYPE_CHECKING:
    import attrs
    from attrs import field, frozen
else:
    from .fastattrs import field, frozen

__all__ = [
    "BackendSpec",
    "Settings",
    "dotenv_settings",
    "find_dotenv_file",
    "load_dotenv_once",
    "new_idempotency_key",
    "resolve_settings",
]

CAPABILITIES = frozenset({"chat", "stream", "embed", "generate", "images", "list_models"})


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _header_name(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An attrs validator: ``None`` or an HTTP header name (an RFC 9110 token)."""
    if value is not None and not (isinstance(value, str) and value and _TOKEN.issuperset(value)):
        raise ConfigurationError(f"{attribute.name} must be an HTTP header name, got {value!r}")


@frozen(slots=True)
class BackendSpec:
    """What a plugin declares about its backend: names, defaults and capabilities.

    ``base_url_suffix`` is appended to a configured base URL that does not already end with
    it, so ``GROQ_BASE_URL=https://api.groq.com`` becomes ``https://api.groq.com/openai/v1``
    while a URL that already has the suffix is kept as it is.

    ``extra_config`` names plugin-specific metadata keys with their defaults; their resolved
    values reach the hooks as ``Settings.extra``. ``model_required=False`` declares a
    backend that serves one model (TEI, a self-hosted server): calls without a model send
    none. ``seed_class`` names the quickstart guide's class for the backend as
    ``"module:attribute"``, imported by :mod:`ipfs_accelerate_py.api_backends` on first use.
    ``http=False`` declares a backend reached through Python code (``CallableCall``): its
    base URL is optional and handed to the plugin as given (an S3 endpoint, or none).
    ``free=True`` declares a self-hosted backend whose every model costs nothing (usage is
    counted, cost is 0, no model is listed as unpriced).

    ``idempotency_header`` names the header a provider reads an idempotency key from
    (``"Idempotency-Key"``...), for providers that honour one: core then sends one fixed
    key per call, the same on every retry, so a retried POST the server already processed is
    not processed twice. ``None`` (the default): no such header.
    ``max_batch_inputs`` is the most texts the server takes in one embedding request
    (``None``: no limit); embedding batching never sends more.
    """

    name: str
    package: str
    default_base_url: str | None
    api_key_env: tuple[str, ...] = ()
    base_url_env: tuple[str, ...] = ()
    base_url_suffix: str = ""
    model_env: tuple[str, ...] = ()
    default_model: str | None = None
    api_key_required: bool = True
    auth_header: str = "Authorization"
    auth_prefix: str = "Bearer "
    default_headers: Mapping[str, str] = field(factory=dict)
    request_id_header: str | None = None
    capabilities: frozenset[str] = CAPABILITIES
    display_name: str = ""
    extra_config: Mapping[str, Any] = field(factory=dict)
    model_required: bool = True
    seed_class: str | None = None
    http: bool = True
    free: bool = False
    idempotency_header: str | None = field(default=None, validator=_header_name)
    max_batch_inputs: int | None = None

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """The headers that carry ``api_key`` on a request (none without a key)."""
        if not api_key:
            return {}
        return {self.auth_header: f"{self.auth_prefix}{api_key}"}

    def idempotency_headers(self, key: str | None) -> dict[str, str]:
        """The header carrying a call's idempotency ``key`` (from :func:`new_idempotency_key`,
        made once per call and sent unchanged on every retry), for a provider that honours
        one (``idempotency_header`` set); none otherwise."""
        if self.idempotency_header is None or not key:
            return {}
        return {self.idempotency_header: key}


def new_idempotency_key() -> str:
    """A fresh idempotency key, ``idem_`` and 32 hex digits: one per call, never per attempt."""
    return "idem_" + os.urandom(16).hex()


@frozen(slots=True, repr=False)
class Settings:
    """A backend's resolved settings. The key never appears in ``repr``."""

    provider: str
    base_url: str
    api_key: str | Credential | None = None
    default_model: str | None = None
    timeout: float = 600.0
    connect_timeout: float = 5.0
    extra: Mapping[str, Any] = field(factory=dict)

    def __repr__(self) -> str:
        key = self.api_key
        secret = key.secret if isinstance(key, Credential) else key
        masked = mask_secret(secret) if secret else None
        return (
            f"Settings(provider={self.provider!r}, base_url={mask_url(self.base_url)!r}, "
            f"api_key={masked!r}, "
            f"default_model={self.default_model!r}, timeout={self.timeout!r})"
        )


_PROJECT_MARKERS = (".git", "pyproject.toml")
_NO_DOTENV: Mapping[str, str] = MappingProxyType({})


def find_dotenv_file(start: str) -> str | None:
    """The ``.env`` file settings may come from, searching from ``start`` upwards (see the
    module docs): the first one at or below the project root; with no project root above
    ``start``, only ``start``'s own."""
    here = os.path.abspath(start)
    found = None
    while True:
        candidate = os.path.join(here, ".env")
        if found is None and os.path.isfile(candidate):
            found = candidate
        if any(os.path.exists(os.path.join(here, m)) for m in _PROJECT_MARKERS):
            return found
        parent = os.path.dirname(here)
        if parent == here:  # the filesystem root, and no project root on the way
            own = os.path.join(os.path.abspath(start), ".env")
            return own if found == own else None
        here = parent


@functools.lru_cache(maxsize=16)
def _dotenv_for(cwd: str) -> Mapping[str, str]:
    path = find_dotenv_file(cwd)
    if path is None:
        return _NO_DOTENV
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    return MappingProxyType(values)


def dotenv_settings() -> Mapping[str, str]:
    """The ``.env`` layer for the current directory (read once per directory, never put into
    ``os.environ``); empty when ``IPFS_ACCELERATE_NO_DOTENV`` is set."""
    if os.environ.get("IPFS_ACCELERATE_NO_DOTENV", "").lower() in ("1", "true", "yes"):
        return _NO_DOTENV
    try:
        cwd = os.getcwd()
    except OSError:  # the current directory was removed
        return _NO_DOTENV
    return _dotenv_for(cwd)


class _DotenvCache:
    """``load_dotenv_once``, the old name: ``cache_clear()`` forgets the ``.env`` files read.
    It no longer loads anything into ``os.environ``."""

    def __call__(self) -> None:
        dotenv_settings()

    @staticmethod
    def cache_clear() -> None:
        _dotenv_for.cache_clear()


load_dotenv_once = _DotenvCache()


def _first(
    names: tuple[str, ...],
    metadata: Mapping[str, Any],
    generic: str,
    dotenv: Mapping[str, str] = _NO_DOTENV,
) -> tuple[Any, str] | None:
    """The first value set: metadata (lower-case names, then ``generic``), then the
    environment, then the ``.env`` layer."""
    for name in names:
        value = metadata.get(name.lower())
        if value not in (None, ""):
            return value, f"metadata[{name.lower()!r}]"
    value = metadata.get(generic)
    if value not in (None, ""):
        return value, f"metadata[{generic!r}]"
    for name in names:
        env = os.environ.get(name)
        if env:
            return env, name
    for name in names:
        value = dotenv.get(name)
        if value:
            return value, f"{name} (.env)"
    return None


MAX_SECONDS = 2_147_483.0
"""The longest timeout accepted, in seconds (~24.8 days): the socket layer waits with
``poll()``, whose timeout is a 32-bit count of milliseconds."""


def seconds_setting(value: Any, name: str, *, parse_text: bool = False) -> float:
    """A positive, finite number of seconds no larger than :data:`MAX_SECONDS` (text like
    ``"30"`` too when ``parse_text``)."""
    if parse_text and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    if value > MAX_SECONDS:
        raise ConfigurationError(
            f"{name} must be at most {MAX_SECONDS:,.0f} seconds (about 24 days), got {value!r}"
        )
    return float(value)


def normalize_base_url(url: str, suffix: str, source: str, spec: BackendSpec | None = None) -> str:
    """Validate an http(s) base URL and append ``suffix`` unless it is already there.

    A bare ``host``, ``host:port`` or ``host:port/path`` (the form ``OLLAMA_HOST`` takes) is
    read as ``http://``; a bare host without a port gets the port of the backend's default
    base URL (Ollama's 11434), as the providers' own clients do.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"{source} must be a URL string, got {type(url).__name__}")
    url = url.strip()
    if url and "://" not in url:
        url = "http://" + url
        try:
            bare = urlsplit(url)
            port = bare.port
        except ValueError:
            raise ConfigurationError(
                f"{source} must be an http:// or https:// URL with a host, got {mask_url(url)!r}"
            ) from None
        default = urlsplit(spec.default_base_url or "") if spec is not None else None
        if port is None and default is not None and default.port is not None:
            url = f"http://{bare.netloc}:{default.port}{bare.path}"
    url = url.rstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ConfigurationError(f"{source} is not a valid URL: {mask_url(url)!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"{source} must be an http:// or https:// URL with a host, got {mask_url(url)!r}"
        )
    if "@" in parts.netloc:
        # httpx would send user:password as "Authorization: Basic ...", replacing the API
        # key's header, and the URL (password included) would show wherever it is printed
        host = parts.netloc.rpartition("@")[2]
        shown = f"{parts.scheme}://***@{host}{parts.path}"
        raise ConfigurationError(
            f"{source} must not carry credentials (user:password@), got {shown!r}: "
            "pass the API key with api_key= or its environment variable"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"{source} must not carry a query or fragment, got {mask_url(url)!r}"
        )
    if suffix and not parts.path.endswith(suffix):
        url += suffix
    return url


def resolve_settings(
    spec: BackendSpec,
    *,
    api_key: str | Credential | None = None,
    base_url: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Settings:
    """Apply the precedence rules to find the key, base URL, default model and timeout."""
    dotenv = dotenv_settings()
    meta: Mapping[str, Any] = metadata or {}
    if not isinstance(meta, Mapping):
        raise ConfigurationError(f"metadata must be a dict, got {type(meta).__name__}")

    key = api_key
    if key is None:
        found = _first(spec.api_key_env, meta, "api_key", dotenv)
        key = found[0] if found else None
    if key is not None and not isinstance(key, (str, Credential)):
        raise ConfigurationError(f"the {spec.name} API key must be a string")

    if base_url is not None:
        url, source = base_url, "base_url"
    else:
        found = _first(spec.base_url_env, meta, "base_url", dotenv)
        if found:
            url, source = found
        elif spec.default_base_url or not spec.http:
            url, source = spec.default_base_url or "", "the default base URL"
        else:
            names = " or ".join(spec.base_url_env) or "base_url"
            raise ConfigurationError(
                f"{spec.name} needs a server address: pass base_url= or set {names}"
            )
    url = normalize_base_url(url, spec.base_url_suffix, source, spec) if spec.http else url or ""

    if model is None:
        found = _first(spec.model_env, meta, "model", dotenv)
        model = found[0] if found else spec.default_model

    if timeout is None:
        found = _first((), meta, "timeout")
        timeout = found[0] if found else 600.0
    timeout = seconds_setting(timeout, "timeout", parse_text=True)

    extra = {k: meta.get(k, v) for k, v in spec.extra_config.items()}
    return Settings(
        provider=spec.name,
        base_url=url,
        api_key=key,
        default_model=model,
        timeout=float(timeout),
        extra=extra,
    )


def missing_key_error(spec: BackendSpec) -> ConfigurationError:
    """The error for a backend that needs a key and has none."""
    names = " or ".join(spec.api_key_env) or "api_key"
    meta = spec.api_key_env[0].lower() if spec.api_key_env else "api_key"
    return ConfigurationError(
        f"no API key configured for {spec.name}: pass api_key=, set metadata[{meta!r}], "
        f"or set {names} in the environment or a .env file",
        provider=spec.name,
    )


def normalize_endpoint_url(spec: BackendSpec, url: str) -> str:
    """A base URL given for an extra endpoint, normalised like the backend's own."""
    if not spec.http:
        return url
    return normalize_base_url(url, spec.base_url_suffix, "base_url", spec)
