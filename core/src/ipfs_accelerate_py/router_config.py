"""A router from a mapping or a file (JSON, TOML, or YAML when PyYAML is installed).

::

    router:
      strategy: least-busy
      fallbacks: {smart: [cheap]}
      context_window_fallbacks: {smart: [long]}
    deployments:
      - {alias: smart, backend: claude, model: claude-sonnet-4-5, api_key: env:ANTHROPIC_KEY_1}
      - {alias: smart, backend: openai, model: gpt-4o, weight: 2, rpm: 500}
      - {alias: cheap, backend: gemini, model: gemini-2.5-flash}
    budgets:
      - {name: daily-users, scope: user, max_cost: 5.0, period: day}

A string ``"env:NAME"`` (or LiteLLM's ``"os.environ/NAME"``) is read from the environment, so
keys need not be written in the file. LiteLLM's ``model_list`` / ``model_name`` names are
accepted for ``deployments`` / ``alias``.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .router import Router

__all__ = ["load_file", "router_from_config"]

_ROUTER_KEYS = frozenset(
    {
        "strategy",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "wait_timeout",
        "cooldown",
        "stream_idle_timeout",
        "stream_resume",
        "validation_retry",
        "default_completion_tokens",
    }
)


def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a router config file; the format follows the suffix (.json, .toml, .yaml/.yml)."""
    file = Path(path)
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read router config {file}: {exc.strerror}") from None
    suffix = file.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            try:
                tomllib = importlib.import_module("tomllib")
            except ImportError:  # Python 3.10
                raise ConfigurationError("TOML router config needs Python 3.11+") from None
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                yaml = importlib.import_module("yaml")
            except ImportError:
                raise ConfigurationError(
                    "YAML router config needs PyYAML: pip install 'ipfs-accelerate-core[yaml]'"
                ) from None
            data = yaml.safe_load(text)
        else:
            raise ConfigurationError(f"router config {file} must end in .json, .toml or .yaml")
    except ConfigurationError:
        raise
    except Exception as exc:  # the parsers' own errors
        raise ConfigurationError(f"router config {file} is not valid {suffix[1:]}: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"router config {file} must hold a mapping at the top")
    return dict(data)


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        for prefix in ("env:", "os.environ/"):
            if value.startswith(prefix):
                name = value[len(prefix) :]
                found = os.environ.get(name)
                if found is None:
                    raise ConfigurationError(f"router config names ${name}, which is not set")
                return found
        return value
    if isinstance(value, Mapping):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _deployment(entry: Any, index: int) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"deployment #{index} must be a mapping")
    out = dict(_expand(entry))
    if "model_name" in out:
        out.setdefault("alias", out.pop("model_name"))
    settings = out.pop("settings", None)  # endpoint policy, e.g. {max_retries: 1}
    if settings is not None:
        if not isinstance(settings, Mapping):
            raise ConfigurationError(f"deployment #{index}: settings must be a mapping")
        out.update(settings)
    for name in ("alias", "backend", "model"):
        if not isinstance(out.get(name), str):
            raise ConfigurationError(f"deployment #{index} needs {name} (a string)")
    return out


def router_from_config(
    cls: type[Router], config: Mapping[str, Any], overrides: Mapping[str, Any]
) -> Router:
    """Build ``cls`` from ``config``; ``overrides`` are constructor arguments that win."""
    if not isinstance(config, Mapping):
        raise ConfigurationError("router config must be a mapping")
    unknown = set(config) - {"router", "deployments", "model_list", "budgets"}
    if unknown:
        raise ConfigurationError(f"unknown router config sections: {sorted(unknown)}")
    options = dict(config.get("router") or {})
    bad = set(options) - _ROUTER_KEYS
    if bad:
        raise ConfigurationError(
            f"unknown router settings {sorted(bad)}; valid: {sorted(_ROUTER_KEYS)}"
        )
    entries = config.get("deployments", config.get("model_list")) or []
    if not isinstance(entries, list):
        raise ConfigurationError("deployments must be a list")
    budgets = config.get("budgets") or []
    options.update(overrides)
    router = cls(budgets=budgets, **options)
    for i, entry in enumerate(entries):
        router.add_deployment(**_deployment(entry, i))
    return router
