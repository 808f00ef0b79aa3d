"""Usage and cost totals shared by every process (``ipfs-accelerate usage --shared``).

Processes with shared state add each call's usage to one Redis hash (per backend, endpoint,
hashed key id and model); :func:`shared_usage` reads it back from any process, and
:func:`format_usage` prints it as the CLI shows it.
"""

from __future__ import annotations

import os

from ipfs_accelerate_py.resilience.state import UsageRow

__all__ = ["format_usage", "shared_usage"]


def shared_usage(url: str | None = None, namespace: str | None = None) -> list[UsageRow]:
    """Every usage row under ``namespace`` in the Redis at ``url`` (defaults:
    ``IPFS_ACCELERATE_REDIS_URL`` and ``IPFS_ACCELERATE_REDIS_NAMESPACE``)."""
    from ipfs_accelerate_py.errors import ConfigurationError
    from ipfs_accelerate_py.resilience.shared import store_for

    url = url or os.environ.get("IPFS_ACCELERATE_REDIS_URL")
    if not url:
        raise ConfigurationError(
            "no shared state to read: pass a redis:// URL or set IPFS_ACCELERATE_REDIS_URL"
        )
    ns = namespace or os.environ.get("IPFS_ACCELERATE_REDIS_NAMESPACE") or "ipfs_accelerate"
    return store_for(url, ns).usage()


def format_usage(rows: list[UsageRow]) -> str:
    """A plain table of usage rows with a total line."""
    head = ("backend", "endpoint", "key", "model", "requests", "failures", "prompt", "compl.")
    lines = [[*head, "cost"]]
    for r in rows:
        lines.append(
            [
                r.backend,
                r.endpoint,
                r.key,
                r.model,
                str(r.requests),
                str(r.failures),
                str(r.prompt_tokens),
                str(r.completion_tokens),
                f"{r.cost:.6f}",
            ]
        )
    total = [
        "total",
        "",
        "",
        "",
        str(sum(r.requests for r in rows)),
        str(sum(r.failures for r in rows)),
        str(sum(r.prompt_tokens for r in rows)),
        str(sum(r.completion_tokens for r in rows)),
        f"{sum(r.cost for r in rows):.6f}",
    ]
    lines.append(total)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) + 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
