"""``chat``, ``embed``, ``models`` and ``usage``: calls with your configuration."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import InvalidArgumentError
from .common import (
    EXIT_OK,
    Progress,
    add_base_url_flag,
    interactive_backend,
    print_json,
    read_stdin,
    split_target,
)

__all__ = ["add_parsers"]

# backends opened by this process, for ``usage`` (usage is not kept across processes yet)
_OPENED: dict[str, Any] = {}


def _open(args: argparse.Namespace, default: str = "openai") -> tuple[Any, str | None]:
    name, model = split_target(args.backend, args.model, default)
    backend = interactive_backend(name, model, args.base_url)
    _OPENED[backend.name] = backend
    if backend.spec.model_required and not backend.settings.default_model:
        env = " or ".join(backend.spec.model_env)
        raise InvalidArgumentError(
            f"{backend.name} needs a model: pass -m {backend.name}:MODEL"
            + (f" or set {env}" if env else "")
        )
    return backend, model


def _prompt(args: argparse.Namespace) -> str:
    """The prompt argument, stdin when piped (after the argument, when both), or an error."""
    given = None if args.prompt in (None, "-") else args.prompt
    piped = read_stdin(wait=None if given is None else 1.0)
    parts = [p for p in (given, (piped or "").strip() or None) if p]
    if not parts:
        raise InvalidArgumentError("no prompt: pass one as an argument or pipe it on stdin")
    return "\n\n".join(parts)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    return params


def _observe_latency(args: argparse.Namespace) -> None:
    """With ``--usage``, sample call latencies (no OpenTelemetry needed) for the report."""
    if getattr(args, "usage", False):
        from .. import observability

        observability.configure(tracing=False, metrics=False)


def _latency(name: str) -> str:
    from .. import observability

    row = observability.latency_summary().get(name)
    if not row or "p50_ms" not in row:
        return ""
    return (
        f"; latency p50 {row['p50_ms']:.0f} ms, p90 {row['p90_ms']:.0f} ms, "
        f"p99 {row['p99_ms']:.0f} ms over {row['count']} calls"
    )


def _usage_line(backend: Any) -> None:
    stats = backend.get_usage_stats()
    cost = stats.get("estimated_cost_usd")
    print(
        f"usage: {stats.get('prompt_tokens', 0)} prompt + {stats.get('completion_tokens', 0)} "
        f"completion tokens" + (f", ${cost}" if cost is not None else "") + _latency(backend.name),
        file=sys.stderr,
    )


def chat(args: argparse.Namespace) -> int:
    """Send one prompt; stream the answer as it arrives (``--no-stream``: one reply)."""
    _observe_latency(args)
    prompt = _prompt(args)
    backend, model = _open(args)
    messages = [{"role": "user", "content": prompt}]
    with backend:
        if args.json:
            reply = backend.chat(
                messages=messages, model=model, system=args.system, **_params(args)
            )
            print_json({"backend": backend.name, **reply.to_dict()})
        elif args.stream:
            with backend.stream(
                messages=messages, model=model, system=args.system, **_params(args)
            ) as chunks:
                for chunk in chunks:
                    if chunk.text:
                        sys.stdout.write(chunk.text)
                        sys.stdout.flush()
            sys.stdout.write("\n")
        else:
            reply = backend.chat(
                messages=messages, model=model, system=args.system, **_params(args)
            )
            print(reply.text)
        if args.usage:
            _usage_line(backend)
    return EXIT_OK


def embed(args: argparse.Namespace) -> int:
    """Embed texts (arguments, or one per line of stdin) and print one JSON vector per line."""
    import json

    _observe_latency(args)
    texts = list(args.texts)
    if not texts:
        piped = read_stdin()
        texts = [line for line in (piped or "").splitlines() if line.strip()]
    if not texts:
        raise InvalidArgumentError("no text: pass texts as arguments or pipe one per line")
    if args.batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be at least 1, got {args.batch_size}")
    backend, model = _open(args)
    vectors: list[list[float]] = []
    with backend:
        progress = Progress(len(texts), "embedding")
        for start in range(0, len(texts), args.batch_size):
            batch = texts[start : start + args.batch_size]
            vectors.extend(backend.embed(input=batch, model=model).embeddings)
            progress.advance(len(batch))
        progress.finish()
        if args.json:
            print_json(
                {"backend": backend.name, "model": model, "texts": texts, "embeddings": vectors}
            )
        else:
            out = sys.stdout
            for vector in vectors:
                out.write(json.dumps(vector) + "\n")
        if args.usage:
            _usage_line(backend)
    return EXIT_OK


def _list(backend: Any, category: str | None) -> list[Any]:
    """The models, limited to ``category`` by the guide class's own ``list_models(category)``
    where it has one (Groq's catalogue), else by each model's ``category``."""
    import inspect

    if category is None:
        return list(backend.list_models())
    from ..api_backends import guide_class

    method = getattr(guide_class(backend.name), "list_models", None)
    if method is not None and "category" in inspect.signature(method).parameters:
        client = guide_class(backend.name)(backend=backend)
        return list(client.list_models(category))
    return [m for m in backend.list_models() if m.category == category]


def models(args: argparse.Namespace) -> int:
    """List a backend's models (``--category chat``...)."""
    backend = interactive_backend(split_target(args.backend_name, None)[0], None, args.base_url)
    with backend:
        found = _list(backend, args.category)
    if args.json:
        print_json([m.to_dict() for m in found])
        return EXIT_OK
    for m in found:
        extra = [x for x in (m.category, m.context_window and f"{m.context_window} ctx") if x]
        print(m.id + (f"  ({', '.join(str(x) for x in extra)})" if extra else ""))
    return EXIT_OK


def _row(row: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(row)


def usage(args: argparse.Namespace) -> int:
    """Usage and cost counted in this process (none kept between runs yet)."""
    from .. import observability

    if args.shared is not None:
        from ..resilience.shared_usage import format_usage, shared_usage

        rows = shared_usage(args.shared or None, args.namespace)
        if args.json:
            print_json({"scope": "shared", "rows": [_row(r) for r in rows]})
        else:
            print(format_usage(rows))
        return EXIT_OK
    stats = {name: b.get_usage_stats() for name, b in _OPENED.items()}
    if args.json:
        latency = observability.latency_summary()
        for name, row in stats.items():
            row["latency"] = latency.get(name, {})
        print_json({"scope": "process", "backends": stats})
        return EXIT_OK
    print("usage is counted per process; this one has made no calls" if not stats else "")
    for name, s in stats.items():
        print(
            f"{name}: {s['total_requests']} requests, {s['total_tokens']} tokens, "
            f"${s.get('estimated_cost_usd', 0)}" + _latency(name)
        )
    return EXIT_OK


def _target_flags(p: Any) -> None:
    p.add_argument("-b", "--backend", default=None, help="backend name (default openai)")
    p.add_argument("-m", "--model", default=None, help="model, or BACKEND:MODEL")
    p.add_argument("--usage", action="store_true", help="print tokens and cost to stderr")
    add_base_url_flag(p)


def add_parsers(sub: Any) -> None:
    """Register ``chat``, ``embed``, ``models`` and ``usage``."""
    p = sub.add_parser(
        "chat",
        help="send a prompt (streamed as it arrives)",
        description="Send one prompt with your configuration. The prompt comes from the "
        "argument, stdin when piped (appended after the argument), or stdin alone with '-'.",
    )
    p.add_argument("prompt", nargs="?", help="the prompt ('-' or none: read stdin)")
    _target_flags(p)
    p.add_argument("-s", "--system", default=None, help="a system prompt")
    p.add_argument("--no-stream", dest="stream", action="store_false", help="one reply at the end")
    p.add_argument("--stream", dest="stream", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="the reply as JSON (text, usage...)")
    p.add_argument("-t", "--temperature", type=float, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
    p.set_defaults(run=chat, stream=True)

    p = sub.add_parser("embed", help="embed texts: one JSON vector per line")
    p.add_argument("texts", nargs="*", help="texts (none: one per line of stdin)")
    _target_flags(p)
    p.add_argument("--batch-size", type=int, default=64, help="texts per request (64)")
    p.add_argument("--json", action="store_true", help="one JSON object with every vector")
    p.set_defaults(run=embed)

    p = sub.add_parser("models", help="list a backend's models")
    p.add_argument("backend_name", metavar="BACKEND")
    p.add_argument("--category", default=None, help="only models of this category (chat...)")
    add_base_url_flag(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=models)

    p = sub.add_parser(
        "usage", help="usage and cost: of this process, or (--shared) of every process via Redis"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--shared",
        nargs="?",
        const="",
        metavar="REDIS_URL",
        help="totals of every process sharing state in Redis (default IPFS_ACCELERATE_REDIS_URL)",
    )
    p.add_argument("--namespace", default=None, help="the shared-state namespace")
    p.set_defaults(run=usage)
