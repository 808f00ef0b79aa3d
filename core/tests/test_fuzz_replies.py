"""Every installed backend against random and adversarial replies: whatever the body, the
headers or the stream chunks, a call ends with a result or one of core's errors — never a
builtin exception from a parser — and the endpoint is idle afterwards (no slot, no key lease,
no half-open probe held)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_accelerate_py import errors, plugins
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

USER = [{"role": "user", "content": "hi"}]
KEY = "sk-fuzz-0123456789abcdefSECRET"

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
SHAPES = st.sampled_from(
    [
        {"choices": [{"message": {"content": None}}]},
        {"choices": [{}]},
        {"candidates": [{"content": {"parts": [{"text": 5}]}}]},
        {"content": [{"type": "text"}], "usage": {"input_tokens": "x"}},
        {"message": {"content": ["x"]}, "done": True},
        {"data": [{"embedding": "!!"}]},
        {"embeddings": [[1, "a"]]},
        [[0.1, None]],
        {"generated_text": 3},
        {"usage": {"prompt_tokens": 1e400}},
        {"error": {"message": 7, "code": {"x": 1}}},
    ]
)
BODIES = st.one_of(
    st.binary(max_size=300),
    JSONISH.map(lambda v: json.dumps(v).encode()),
    SHAPES.map(lambda v: json.dumps(v).encode()),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b"<html>502 Bad Gateway</html>"),
)
STREAMS = st.lists(
    st.one_of(
        st.binary(max_size=80),
        JSONISH.map(lambda v: b"data: " + json.dumps(v).encode() + b"\n\n"),
        SHAPES.map(lambda v: b"data: " + json.dumps(v).encode() + b"\n\n"),
        SHAPES.map(lambda v: json.dumps(v).encode() + b"\n"),
        st.just(b'event: error\ndata: {"error": {}}\n\n'),
        st.just(b"data: [DONE]\n\n"),
    ),
    max_size=6,
)
STATUSES = st.sampled_from([200, 200, 200, 201, 204, 302, 400, 401, 404, 429, 500, 503, 529])
CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/event-stream", "application/x-ndjson", "text/html", ""]
)


def _backends() -> list[str]:
    return [n for n in plugins.installed_backends() if plugins.load_spec(n).http]


def _make(name: str, server: ProtocolServer) -> Any:
    spec = plugins.load_spec(name)
    return (
        get_backend(
            name,
            api_key=KEY,
            base_url=server.base_url + ("/v1" if name in ("openai",) else ""),
            model="fuzz-model",
            max_retries=1,
            initial_retry_delay=0.001,
            max_retry_delay=0.001,
            max_retry_after=0.001,
            failure_threshold=1000,
            timeout=5,
        )
        if spec.http
        else None
    )


def _calls(backend: Any) -> list[Callable[[], Any]]:
    caps = backend.spec.capabilities
    out: list[Callable[[], Any]] = []
    if "chat" in caps:
        out.append(lambda: backend.chat(messages=USER))
    if "stream" in caps:
        out.append(lambda: list(backend.stream(messages=USER)))
    if "embed" in caps:
        out.append(lambda: backend.embed(input=["a", "b"]))
    if "list_models" in caps:
        out.append(lambda: backend.list_models())

    async def both() -> None:
        if "chat" in caps:
            await backend.achat(messages=USER)

    if "chat" in caps:
        out.append(lambda: asyncio.run(both()))
    return out


def _idle(backend: Any) -> None:
    assert backend.get_queue_info()["active_requests"] == 0
    assert all(k["in_flight"] == 0 for k in backend.get_key_usage_stats().values())
    assert backend.circuit_state == "CLOSED"


def _check(name: str, reply: Reply) -> None:
    with ProtocolServer() as server:
        server.on("*", "*", default=reply)
        backend = _make(name, server)
        try:
            for call in _calls(backend):
                failure = None
                try:
                    call()
                except errors.BackendError as err:
                    failure = err
                if failure is not None:
                    assert KEY not in str(failure) and KEY not in repr(failure.body)
                _idle(backend)
        finally:
            backend.close()


@pytest.mark.parametrize("name", _backends())
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(status=STATUSES, kind=CONTENT_TYPES, body=BODIES)
def test_any_reply_body_gives_a_result_or_a_core_error(
    name: str, status: int, kind: str, body: bytes
) -> None:
    _check(name, Reply.raw(body, status=status, content_type=kind))


@pytest.mark.parametrize("name", _backends())
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=CONTENT_TYPES, chunks=STREAMS, cut=st.booleans())
def test_any_stream_gives_chunks_or_a_core_error(
    name: str, kind: str, chunks: list[bytes], cut: bool
) -> None:
    reply = Reply(
        headers={"content-type": kind} if kind else {},
        chunks=[c for c in chunks if c] or [b""],
        cut_after=len(chunks) // 2 if cut and chunks else None,
    )
    _check(name, reply)
