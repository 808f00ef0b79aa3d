"""``ipfs-accelerate check BACKEND...``: a live smoke test of each backend's endpoint.

What the guide's ``test_single_api.py``, ``test_api_backoff_queue.py`` and
``run_queue_backoff_tests.py`` were for: against the configured endpoint, list the models,
chat, stream and embed (each where the backend can), and with ``--max-concurrent`` /
``--queue-size`` send more chats at once than the limit to exercise the queue. One line per
capability (PASS, FAIL or SKIP with the reason); the exit code is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs

from ..errors import BackendError
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_base_url_flag,
    interactive_backend,
    print_json,
)

__all__ = ["Outcome", "add_parser", "run"]

PROMPT = "Reply with the single word OK."


@attrs.define
class Outcome:
    """One capability of one backend: PASS, FAIL or SKIP, how long it took, what came back."""

    backend: str
    capability: str
    status: str
    ms: float | None
    detail: str


class _Skip(Exception):
    """A capability that cannot be checked here (the backend lacks it, no model given)."""


def _models_for(specs: list[str] | None, name: str) -> str | None:
    """The model ``-m`` gives ``name``: ``BACKEND:MODEL`` for it, or a plain model for all."""
    plain = None
    for spec in specs or ():
        head, sep, rest = spec.partition(":")
        if sep and head == name and rest:
            return rest
        if not sep or head not in _backend_names():
            plain = spec
    return plain


def _backend_names() -> set[str]:
    from ..plugins import KNOWN_PACKAGES, installed_backends

    return set(installed_backends()) | set(KNOWN_PACKAGES)


def _step(name: str, capability: str, action: Callable[[], str], out: list[Outcome]) -> None:
    start = time.perf_counter()
    try:
        detail = action()
    except _Skip as why:
        outcome = Outcome(name, capability, "SKIP", None, str(why))
    except BackendError as exc:
        ms = (time.perf_counter() - start) * 1000
        outcome = Outcome(name, capability, "FAIL", ms, f"{type(exc).__name__}: {exc}")
    else:
        ms = (time.perf_counter() - start) * 1000
        outcome = Outcome(name, capability, "PASS", ms, detail)
    out.append(outcome)
    _print(outcome)


def _print(o: Outcome) -> None:
    ms = f"{o.ms:8.0f} ms" if o.ms is not None else " " * 11
    detail = o.detail if len(o.detail) <= 100 else o.detail[:97] + "..."
    print(f"{o.status:4}  {o.backend:10} {o.capability:12} {ms}  {detail}", flush=True)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 40 else text[:37] + "...")


def check_backend(name: str, args: argparse.Namespace) -> list[Outcome]:
    """Run every capability check of one backend and return the outcomes."""
    out: list[Outcome] = []
    policy: dict[str, Any] = {"max_retries": args.max_retries}
    if args.max_concurrent is not None:
        policy["max_concurrent_requests"] = args.max_concurrent
    if args.queue_size is not None:
        policy["queue_size"] = args.queue_size
    try:
        model = _models_for(args.model, name)
        backend = interactive_backend(name, model, args.base_url, **policy)
    except BackendError as exc:
        error = exc
        _step(name, "configure", lambda: _raise(error), out)
        return out
    spec = backend.spec
    if spec.http and spec.api_key_required and spec.api_key_env and not backend.settings.api_key:
        from ..config import missing_key_error

        _step(name, "configure", lambda: _raise(missing_key_error(spec)), out)
        return out
    caps = spec.capabilities
    messages = [{"role": "user", "content": PROMPT}]
    params: dict[str, Any] = {"max_tokens": args.max_tokens, "timeout": args.timeout}

    def need(capability: str) -> None:
        if capability not in caps:
            raise _Skip(f"{name} does not support {capability}")

    def need_model(embedding: bool = False) -> str | None:
        model = _models_for(args.embed_model, name) if embedding else None
        model = model or (None if embedding else backend.settings.default_model)
        if embedding and model is None and not backend.spec.model_required:
            return None
        if model is None and backend.spec.model_required:
            flag = "--embed-model" if embedding else "-m"
            raise _Skip(f"no model: pass {flag} {name}:MODEL")
        return model

    def list_models() -> str:
        need("list_models")
        found = backend.list_models(timeout=args.timeout)
        return f"{len(found)} models" + (f", e.g. {found[0].id}" if found else "")

    def chat() -> str:
        need("chat")
        return _short(backend.chat(messages=messages, model=need_model(), **params).text)

    def stream() -> str:
        need("stream")
        pieces = []
        with backend.stream(messages=messages, model=need_model(), **params) as chunks:
            pieces = [c.text for c in chunks]
        return f"{len(pieces)} chunks, {_short(''.join(pieces))}"

    def embed() -> str:
        need("embed")
        reply = backend.embed(
            input=["hello", "world"], model=need_model(True), timeout=args.timeout
        )
        return f"{len(reply.embeddings)} vectors of {len(reply.embeddings[0])} floats"

    def queue() -> str:
        if args.max_concurrent is None and args.queue_size is None:
            raise _Skip("pass --max-concurrent or --queue-size to exercise the queue")
        need("chat")
        model = need_model()
        count = backend.max_concurrent_requests + 2
        with ThreadPoolExecutor(max_workers=count) as pool:
            replies = list(
                pool.map(
                    lambda _: backend.chat(messages=messages, model=model, **params),
                    range(count),
                )
            )
        return f"{len(replies)} chats at once through a limit of {backend.max_concurrent_requests}"

    checks = {"list_models": list_models, "chat": chat, "stream": stream, "embed": embed}
    checks["queue"] = queue
    with backend:
        for capability, action in checks.items():
            _step(name, capability, action, out)
    return out


def _raise(exc: BaseException) -> str:
    raise exc


def _selected(args: argparse.Namespace) -> list[str]:
    from ..plugins import canonical_name, installed_backends

    names = [canonical_name(n) for n in [*args.backends, *(args.apis or [])]]
    skip = {canonical_name(n) for n in args.skip_apis or []}
    if not names:
        names = installed_backends()
    return [n for n in dict.fromkeys(names) if n not in skip]


def run(args: argparse.Namespace) -> int:
    """Check each selected backend in turn; exit 1 when a check failed."""
    from .backends import describe

    names = _selected(args)
    if not names:
        print("error: no backend to check", file=sys.stderr)
        return EXIT_USAGE
    if args.base_url and len(names) > 1:
        print("error: --base-url names one server: check one backend with it", file=sys.stderr)
        return EXIT_USAGE
    explicit = bool(args.backends or args.apis)
    outcomes: list[Outcome] = []
    for name in names:
        if not explicit and not describe(name).ready:
            outcome = Outcome(name, "configure", "SKIP", None, "not configured")
            _print(outcome)
            outcomes.append(outcome)
            continue
        outcomes.extend(check_backend(name, args))
    counts = {s: sum(o.status == s for o in outcomes) for s in ("PASS", "FAIL", "SKIP")}
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    if args.json:
        print_json([attrs.asdict(o) for o in outcomes])
    return EXIT_FAILED if counts["FAIL"] else EXIT_OK


def add_parser(sub: Any) -> None:
    """Register ``check``."""
    p = sub.add_parser(
        "check",
        help="live smoke test: models, chat, stream, embed (and the queue) per backend",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("backends", nargs="*", help="backends to check (default: every configured one)")
    p.add_argument("--apis", nargs="+", metavar="BACKEND", help="backends to check (as the guide)")
    p.add_argument("--skip-apis", nargs="+", metavar="BACKEND", help="backends to leave out")
    p.add_argument("-m", "--model", action="append", help="chat model, or BACKEND:MODEL (repeat)")
    p.add_argument("--embed-model", action="append", help="embedding model, or BACKEND:MODEL")
    p.add_argument("--max-concurrent", type=int, default=None, help="requests at once")
    p.add_argument("--queue-size", type=int, default=None, help="callers allowed to wait")
    p.add_argument("--max-retries", type=int, default=1, help="retries per call (1)")
    p.add_argument("--max-tokens", type=int, default=16, help="reply length per chat (16)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per call (30)")
    p.add_argument("--json", action="store_true", help="also print the outcomes as JSON")
    add_base_url_flag(p)
    p.set_defaults(run=run)
