"""Groq's model catalogue: the live ``/models`` listing merged with ``models.json``.

Groq's listing says which models exist now (``id``, ``owned_by``, ``context_window``,
``active``); the data file shipped here adds what it does not say: a description and the
categories (``chat``, ``vision``, ``audio``; a vision model also chats). Rules:

* :func:`enrich` (used by the ``list_models`` hook) keeps the live models that are active,
  with the live context window, and the file's description and categories; a model the
  file does not know gets ``audio`` if its id names Whisper or TTS, else ``chat``, and no
  description. Models only in the file are not listed: Groq no longer serves them.
* ``list_models`` fails like any call (core errors); it never falls back to the file.
* :func:`is_compatible` answers from the file, plus the last live listing fetched for the
  same base URL (so a model newer than the file is known once it has been listed).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import attrs

from ipfs_accelerate_py.errors import InvalidArgumentError
from ipfs_accelerate_py.types import ModelInfo

__all__ = [
    "CATEGORIES",
    "categories_of",
    "enrich",
    "is_compatible",
    "known_models",
    "list_models",
    "select",
]

CATEGORIES = ("chat", "vision", "audio")

_lock = threading.Lock()
_live: dict[str, dict[str, tuple[str, ...]]] = {}  # base URL -> model id -> categories


@cache
def known_models() -> Mapping[str, Mapping[str, Any]]:
    """The entries of ``models.json``: model id -> description, context window, categories."""
    text = resources.files(__package__).joinpath("models.json").read_text(encoding="utf-8")
    models: dict[str, Mapping[str, Any]] = json.loads(text)["models"]
    return models


def _inferred(model_id: str) -> tuple[str, ...]:
    name = model_id.lower()
    return ("audio",) if "whisper" in name or "tts" in name else ("chat",)


def categories_of(model_id: str) -> tuple[str, ...]:
    """The model's categories: the file's, else guessed from the id (``audio`` or ``chat``)."""
    entry = known_models().get(model_id)
    if entry is not None:
        return tuple(entry["categories"])
    return _inferred(model_id)


def enrich(models: Iterable[ModelInfo], base_url: str | None = None) -> list[ModelInfo]:
    """The live models that are active, completed from the file; remembered per base URL."""
    out: list[ModelInfo] = []
    for model in models:
        raw = model.raw if isinstance(model.raw, Mapping) else {}
        if raw.get("active") is False:
            continue
        entry = known_models().get(model.id) or {}
        cats = categories_of(model.id)
        out.append(
            attrs.evolve(
                model,
                description=model.description or entry.get("description"),
                context_window=model.context_window or entry.get("context_window"),
                category=cats[0],
            )
        )
    if base_url is not None:
        seen = {m.id: categories_of(m.id) for m in out}
        with _lock:
            _live[base_url] = seen
    return out


def _check(category: str | None) -> None:
    if category is not None and category not in CATEGORIES:
        raise InvalidArgumentError(
            f"category must be one of {', '.join(CATEGORIES)} (or None), got {category!r}"
        )


def select(models: Iterable[ModelInfo], category: str | None = None) -> list[ModelInfo]:
    """The models in ``category`` (all of them for ``None``); vision models count as chat."""
    _check(category)
    if category is None:
        return list(models)
    return [m for m in models if category in categories_of(m.id)]


def list_models(backend: Any, category: str | None = None) -> list[ModelInfo]:
    """``backend.list_models()`` (live, merged) limited to ``category``; a bad category
    fails before anything is sent."""
    _check(category)
    return select(backend.list_models(), category)


def is_compatible(model_id: str, category: str = "chat", base_url: str | None = None) -> bool:
    """Whether ``model_id`` serves ``category``, by the file or the last live listing."""
    _check(category)
    if not isinstance(model_id, str) or not model_id:
        return False
    if model_id in known_models():
        return category in categories_of(model_id)
    with _lock:
        live = _live.get(base_url or "", {})
        cats = live.get(model_id)
    return cats is not None and category in cats
