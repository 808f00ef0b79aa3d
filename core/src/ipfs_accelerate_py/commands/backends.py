"""``ipfs-accelerate backends [--check] [--json]``: what is installed, how it is configured,
and (with ``--check``) whether each configured endpoint answers and how fast."""

from __future__ import annotations

import argparse
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs

from ..errors import BackendError
from ..masking import mask_secret, mask_url
from .common import EXIT_FAILED, EXIT_OK, print_json

__all__ = ["BackendRow", "describe", "run"]


@attrs.define
class BackendRow:
    """One backend as ``backends`` shows it; no field ever holds a key, only its mask."""

    name: str
    installed: bool
    package: str = ""
    version: str = ""
    credentials: str = ""
    base_url: str = ""
    ready: bool = False  # configured by the user (a key, or an address) and callable
    callable: bool = False  # has what a call needs (a key where one is required)
    check: str = ""
    check_ok: bool | None = None
    check_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data (for ``--json``)."""
        return attrs.asdict(self)


def _version(*dists: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in dists:
        if not dist:
            continue
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "?"


def _default_url(spec: Any) -> str | None:
    from ..config import normalize_base_url

    if not spec.default_base_url or not spec.http:
        return spec.default_base_url or None
    try:
        return normalize_base_url(spec.default_base_url, spec.base_url_suffix, "default", spec)
    except BackendError:
        return None


def describe(name: str) -> BackendRow:
    """The row of backend ``name``: version, credentials (masked) and base URL."""
    from .. import plugins
    from ..calls import Credential
    from ..config import resolve_settings

    if name not in plugins.installed_backends():
        if name not in plugins.KNOWN_PACKAGES:
            plugins.load(name)  # raises UnknownBackendError listing the installed ones
        package = plugins.KNOWN_PACKAGES[name]
        return BackendRow(name, False, package, credentials=plugins.install_command(package))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the row says what went wrong
            registration = plugins.load(name)
    except BackendError as exc:
        return BackendRow(name, True, credentials=f"plugin broken: {exc.message}")
    spec = registration.spec
    row = BackendRow(name, True, spec.package, _version(spec.package, registration.source))
    try:
        settings = resolve_settings(spec)
    except BackendError as exc:
        names = " or ".join(spec.base_url_env) or "base_url"
        row.base_url = f"not set ({names})"
        row.credentials = exc.message
        return row
    key = settings.api_key
    secret = key.secret if isinstance(key, Credential) else key
    source = next((n for n in spec.api_key_env if os.environ.get(n)), "")
    if secret:
        row.credentials = f"{source or 'key'} {mask_secret(secret)}"
    elif spec.api_key_required and spec.http and spec.api_key_env:
        row.credentials = f"missing ({' or '.join(spec.api_key_env)})"
    elif not spec.http:
        row.credentials = "the SDK's own (not shown)"
    else:
        row.credentials = "not needed"
    configured = bool(settings.base_url) and settings.base_url != _default_url(spec)
    if not settings.base_url:
        row.base_url = "(the SDK's default)"
    else:
        shown = mask_url(settings.base_url)
        row.base_url = shown if configured else f"{shown} (default)"
    # a backend counts as configured when the user gave it something: its key, or (for one
    # that needs none) an address; a keyless default (localhost:11434...) is not checked
    key_needed = spec.http and spec.api_key_required and bool(spec.api_key_env)
    row.callable = bool(secret) or not key_needed
    row.ready = bool(secret) or (configured and not key_needed)
    return row


def _check(row: BackendRow, timeout: float, named: bool = False) -> None:
    """Ask the endpoint for its models, or its health where it cannot list them (no
    retries, a short timeout), and time it. Backends the user has not configured are left
    alone unless named on the command line."""
    from ..core import get_backend

    if not row.installed or not (row.ready or (named and row.callable)):
        row.check = "skipped: not configured" if row.installed else "skipped: not installed"
        return
    try:
        backend = get_backend(row.name, timeout=timeout, max_retries=0)
    except BackendError as exc:
        row.check, row.check_ok = f"FAIL {exc.message}", False
        return
    with backend:
        start = time.perf_counter()
        try:
            answer = _ping(backend)
        except _NoCheck as why:
            row.check = f"skipped: {why}"
            return
        except BackendError as exc:
            row.check_ms = (time.perf_counter() - start) * 1000
            row.check, row.check_ok = f"FAIL {type(exc).__name__}: {exc.message}", False
            return
        row.check_ms = (time.perf_counter() - start) * 1000
        row.check, row.check_ok = f"ok {row.check_ms:.0f} ms, {answer}", True


class _NoCheck(Exception):
    """The backend offers no call cheap enough for ``--check``."""


def _ping(backend: Any) -> str:
    """The cheapest call that shows the endpoint answers: the model list, else the guide
    class's ``health_check`` (TEI's ``/health``), else any HTTP reply to ``GET /``."""
    from ..api_backends import guide_class
    from ..calls import HttpCall
    from ..errors import APIStatusError

    if "list_models" in backend.spec.capabilities:
        return f"{len(backend.list_models())} models"
    if not backend.spec.http:
        raise _NoCheck("no cheap check for a backend reached through an SDK")
    health = getattr(guide_class(backend.name), "health_check", None)
    if health is not None:
        healthy = guide_class(backend.name)(backend=backend).health_check()
        return "healthy" if healthy else "answers, not healthy"
    try:
        backend.request(HttpCall("GET", "/", json_reply=False, parse=lambda _: None))
    except APIStatusError as exc:  # any status: the server is there
        return f"answers (HTTP {exc.status_code})"
    return "answers"


def _table(rows: list[BackendRow], check: bool) -> None:
    header = ["BACKEND", "VERSION", "CREDENTIALS", "BASE URL"] + (["CHECK"] if check else [])
    lines = [header]
    for r in rows:
        line = [r.name, r.version or "-", r.credentials, r.base_url or "-"]
        lines.append(line + ([r.check] if check else []))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])] + [line[-1]]
        print("  ".join(cells).rstrip())


def run(args: argparse.Namespace) -> int:
    """List the backends; with ``--check``, call each configured one (concurrently)."""
    from .. import plugins

    names = args.names or sorted(set(plugins.KNOWN_PACKAGES) | set(plugins.installed_backends()))
    rows = [describe(plugins.canonical_name(n)) for n in names]
    if args.check:
        with ThreadPoolExecutor(max_workers=min(8, len(rows)) or 1) as pool:
            list(pool.map(lambda r: _check(r, args.timeout, bool(args.names)), rows))
    if args.json:
        print_json([r.to_dict() for r in rows])
    else:
        _table(rows, args.check)
    failed = any(r.check_ok is False for r in rows)
    return EXIT_FAILED if failed else EXIT_OK


def add_parser(sub: Any) -> None:
    """Register ``backends`` on the subcommand parser."""
    p = sub.add_parser(
        "backends",
        help="installed backends: version, credentials (masked), base URL; --check calls them",
        description="List backends with their version and configuration (keys masked). "
        "--check asks each configured endpoint for its models, without retries.",
    )
    p.add_argument("names", nargs="*", help="only these backends")
    p.add_argument("--check", action="store_true", help="call each configured endpoint")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per check (5)")
    p.add_argument("--json", action="store_true", help="the table as JSON")
    p.set_defaults(run=run)
