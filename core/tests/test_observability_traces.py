"""OpenTelemetry GenAI spans and metrics against the loopback server, with the real SDK's
in-memory exporters: a plain call, a stream, a retried call, a breaker fail-fast, async
calls, events from other components, and no key or (by default) prompt anywhere."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.trace import SpanKind, StatusCode

from ipfs_accelerate_py import errors, observability
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.calls import CallableCall
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.otel import (
    Telemetry,
    everything,
    reset_observability,
)
from ipfs_accelerate_py.testing.pytest_plugin import DEFAULT_SECRET
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply
from ipfs_accelerate_py.testing.waiting import wait_until

CHAT = "/v1/chat/completions"
SECRET = DEFAULT_SECRET  # the ``secret`` fixture
PROMPT = "my private prompt 7f3a"


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    telemetry.configure()
    yield telemetry
    reset_observability()
    assert not observability.ENABLED


def test_a_plain_call_is_one_client_span_with_one_attempt_child(
    backend: Backend, protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    protocol_server.on("POST", CHAT, wire.chat_reply("hi"))
    reply = backend.chat(messages=wire.user(), model="m", request_id="req-1", priority="high")
    assert reply.text == "hi"
    assert len(protocol_server.requests_to(CHAT)) == 1
    [call] = otel.calls()
    assert call.name == "chat m"
    assert call.kind is SpanKind.CLIENT
    assert call.parent is None
    a = call.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "loopback"
    assert a["gen_ai.request.model"] == "m"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.response.id"] == "chatcmpl-abc123"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (9, 12)
    assert a["ipfs_accelerate.request_id"] == "req-1"
    assert a["ipfs_accelerate.priority"] == "HIGH"
    assert a["ipfs_accelerate.endpoint"] == "default"
    assert a["server.address"] == "127.0.0.1"
    assert (a["ipfs_accelerate.attempts"], a["ipfs_accelerate.retries"]) == (1, 0)
    assert a["ipfs_accelerate.queue.wait"] >= 0
    assert call.status.status_code is StatusCode.UNSET
    [attempt] = otel.attempts_of(call)
    assert attempt.attributes["ipfs_accelerate.key.name"] == "default"
    assert attempt.attributes["ipfs_accelerate.key"] == "sk-...abcd"
    assert attempt.attributes["ipfs_accelerate.breaker.state"] == "CLOSED"
    assert call.start_time <= attempt.start_time <= attempt.end_time <= call.end_time


def test_a_plain_call_records_the_genai_metrics(
    backend: Backend, protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    protocol_server.on("POST", CHAT, wire.chat_reply("hi"), wire.chat_reply("again"))
    backend.chat(messages=wire.user(), model="m")
    backend.chat(messages=wire.user(), model="m")
    [duration] = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 2
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert duration.attributes["gen_ai.request.model"] == "m"
    assert duration.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert "error.type" not in duration.attributes
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in otel.points("gen_ai.client.token.usage")
    }
    assert (tokens["input"].sum, tokens["output"].sum) == (18, 24)
    [cost] = otel.points("ipfs_accelerate.client.cost")
    assert cost.value == pytest.approx(backend.get_usage_stats()["estimated_cost_usd"])
    [wait] = otel.points("ipfs_accelerate.client.queue.wait")
    assert wait.count == 2
    [active] = otel.points("ipfs_accelerate.client.requests.active")
    assert active.value == 0
    [depth] = otel.points("ipfs_accelerate.client.queue.depth")
    assert depth.value == 0 and depth.attributes["ipfs_accelerate.endpoint"] == "default"


def test_a_stream_span_has_time_to_first_chunk_and_usage(
    backend: Backend, protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(["Hel", "lo"])))
    with backend.stream(messages=wire.user(), model="m") as stream:
        text = "".join(c.text for c in stream)
    assert text == "Hello"
    [call] = otel.calls()
    a = call.attributes
    assert call.name == "chat m"
    assert a["ipfs_accelerate.stream"] is True
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.response.id"] == "chatcmpl-stream1"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (9, 2)
    assert 0 < a["gen_ai.response.time_to_first_chunk"] <= (call.end_time - call.start_time) / 1e9
    assert len(otel.attempts_of(call)) == 1
    [ttfc] = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.count == 1


def test_a_stream_closed_early_ends_its_span(
    backend: Backend, protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(["a", "b", "c"])))
    with backend.stream(messages=wire.user(), model="m") as stream:
        assert next(stream).text == "a"
    [call] = otel.calls()
    assert call.attributes["ipfs_accelerate.stream.closed_early"] is True
    assert call.status.status_code is StatusCode.UNSET
    [attempt] = otel.attempts_of(call)
    assert attempt.attributes["ipfs_accelerate.attempt.abandoned"] is True
    [active] = otel.points("ipfs_accelerate.client.requests.active")
    assert active.value == 0


def test_a_retried_call_has_one_child_span_per_attempt(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock, otel: Telemetry
) -> None:
    backend.default_endpoint.retry.jitter = 0
    protocol_server.on(
        "POST",
        CHAT,
        wire.error_reply(500),
        wire.error_reply(429, {"retry-after": "2"}),
        wire.chat_reply("ok"),
    )
    assert backend.chat(messages=wire.user(), model="m").text == "ok"
    assert len(protocol_server.requests_to(CHAT)) == 3
    assert clock.sleeps == [1.0, 2.0]
    [call] = otel.calls()
    assert (
        call.attributes["ipfs_accelerate.attempts"],
        call.attributes["ipfs_accelerate.retries"],
    ) == (3, 2)
    first, second, third = otel.attempts_of(call)
    assert first.attributes["error.type"] == "ServerError"
    assert first.attributes["http.response.status_code"] == 500
    assert first.attributes["ipfs_accelerate.retry.delay"] == 1.0
    assert first.status.status_code is StatusCode.ERROR
    assert second.attributes["error.type"] == "RateLimitError"
    assert second.attributes["ipfs_accelerate.retry.delay"] == 0.0  # the key cools down...
    assert third.attributes["ipfs_accelerate.key.wait"] == 2.0  # ...and is waited for
    assert "error.type" not in third.attributes
    assert third.status.status_code is StatusCode.UNSET
    assert call.status.status_code is StatusCode.UNSET
    retries = {
        p.attributes["error.type"]: p.value for p in otel.points("ipfs_accelerate.client.retries")
    }
    assert retries == {"ServerError": 1, "RateLimitError": 1}


def test_a_breaker_fail_fast_is_an_error_span_with_no_request(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    backend = make_backend(failure_threshold=1, max_retries=0)
    protocol_server.on("POST", CHAT, default=wire.error_reply(500))
    with pytest.raises(errors.ServerError):
        backend.chat(messages=wire.user(), model="m")
    with pytest.raises(errors.CircuitOpenError):
        backend.chat(messages=wire.user(), model="m")
    assert len(protocol_server.requests_to(CHAT)) == 1
    opened, refused = otel.calls()
    assert opened.attributes["error.type"] == "ServerError"
    [attempt] = otel.attempts_of(opened)
    [change] = [e for e in attempt.events if e.name == "breaker.state_change"]
    assert dict(change.attributes) == {
        "ipfs_accelerate.breaker.from": "CLOSED",
        "ipfs_accelerate.breaker.to": "OPEN",
    }
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes["error.type"] == "CircuitOpenError"
    assert refused.attributes["ipfs_accelerate.breaker.state"] == "OPEN"
    [fail_fast] = otel.attempts_of(refused)
    assert fail_fast.attributes["error.type"] == "CircuitOpenError"
    [changes] = otel.points("ipfs_accelerate.client.breaker.transitions")
    assert changes.value == 1
    errors_by_type = {
        p.attributes.get("error.type"): p.count
        for p in otel.points("gen_ai.client.operation.duration")
    }
    assert errors_by_type == {"ServerError": 1, "CircuitOpenError": 1}


def test_async_calls_and_streams_have_the_same_spans(
    backend: Backend, protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    protocol_server.on(
        "POST",
        CHAT,
        wire.error_reply(503),
        wire.chat_reply("ok"),
        Reply.sse(wire.chat_stream(["x", "y"])),
    )

    async def main() -> str:
        try:
            reply = await backend.achat(messages=wire.user(), model="m")
            async with backend.astream(messages=wire.user(), model="m") as stream:
                text = "".join([c.text async for c in stream])
            return reply.text + text
        finally:
            await backend.aclose()

    assert asyncio.run(main()) == "okxy"
    chat, streamed = otel.calls()
    assert len(otel.attempts_of(chat)) == 2
    assert chat.attributes["ipfs_accelerate.retries"] == 1
    assert streamed.attributes["ipfs_accelerate.stream"] is True
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 2
    assert len(otel.attempts_of(streamed)) == 1


def test_a_call_nests_under_the_applications_span(
    backend: Backend, protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    protocol_server.on("POST", CHAT, wire.chat_reply("hi"))
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as parent:
        backend.chat(messages=wire.user(), model="m")
    [call] = [s for s in otel.calls() if s.name == "chat m"]
    assert call.parent is not None and call.parent.span_id == parent.get_span_context().span_id


def test_events_land_on_the_current_call_or_the_current_span(
    backend: Backend, protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    def inside(credential: object) -> str:
        observability.event("batch.member", batch_id="b1", size=3, members=["a", "b"])
        observability.event("cache.miss", key=object())
        return "done"

    assert backend.request(CallableCall(fn=inside)) == "done"  # type: ignore[arg-type]
    [call] = otel.calls()
    [attempt] = otel.attempts_of(call)
    names = [e.name for e in attempt.events]
    assert names == ["batch.member", "cache.miss"]
    assert dict(attempt.events[0].attributes) == {
        "batch_id": "b1",
        "size": 3,
        "members": ("a", "b"),
    }
    assert attempt.events[1].attributes["key"].startswith("<object object")
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("router"):
        observability.event("cache.hit", backend="loopback")
        observability.event("router.fallback", to="groq")
    router = next(s for s in otel.spans() if s.name == "router")
    assert [e.name for e in router.events] == ["cache.hit", "router.fallback"]
    hits = {
        p.attributes["ipfs_accelerate.cache.hit"]: p.value
        for p in otel.points("ipfs_accelerate.client.cache.requests")
    }
    assert hits == {True: 1, False: 1}
    [fallbacks] = otel.points("ipfs_accelerate.client.router.fallbacks")
    assert fallbacks.value == 1
    with pytest.raises(errors.InvalidArgumentError):
        observability.event("")


def test_no_key_and_no_prompt_by_default_in_spans_or_logs(
    backend: Backend,
    protocol_server: ProtocolServer,
    otel: Telemetry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    otel.configure(log_calls=True, log_json=True)
    echoed = Reply.json(
        wire.error(f"Incorrect API key provided: {SECRET}", code="invalid_api_key"), status=401
    )
    protocol_server.on("POST", CHAT, wire.chat_reply("the answer"), echoed)
    with caplog.at_level(logging.INFO, logger="ipfs_accelerate_py"):
        backend.chat(messages=wire.user(PROMPT), model="m")
        with pytest.raises(errors.AuthenticationError):
            backend.chat(messages=wire.user(PROMPT), model="m")
    text = everything(otel) + "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in text and "0123456789SECRET" not in text
    assert PROMPT not in text and "the answer" not in text
    assert "sk-...abcd" in text  # masked only
    lines = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "ipfs_accelerate_py.calls"
    ]
    assert [line["outcome"] for line in lines] == ["ok", "error"]
    assert lines[0]["input_tokens"] == 9 and lines[0]["model"] == "m"
    assert lines[1]["error_type"] == "AuthenticationError" and lines[1]["status_code"] == 401


def test_content_is_recorded_only_when_asked(
    backend: Backend, protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    otel.configure(capture_content=True)
    protocol_server.on(
        "POST", CHAT, wire.chat_reply("the answer"), Reply.sse(wire.chat_stream(["str", "eamed"]))
    )
    backend.chat(messages=wire.user(f"{PROMPT} {SECRET}"), model="m")
    list(backend.stream(messages=wire.user(PROMPT), model="m"))
    plain, streamed = otel.calls()
    assert json.loads(plain.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "content": f"{PROMPT} sk-...abcd"}
    ]
    [out] = json.loads(plain.attributes["gen_ai.output.messages"])
    assert out["parts"] == [{"type": "text", "content": "the answer"}]
    assert out["finish_reason"] == "stop"
    [out] = json.loads(streamed.attributes["gen_ai.output.messages"])
    assert out["parts"][0]["content"] == "streamed"
    assert SECRET not in everything(otel)


def test_embeddings_and_list_models_name_their_operations(
    backend: Backend, protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    protocol_server.on("POST", "/v1/embeddings", Reply.json(wire.embeddings([[0.1, 0.2]])))
    protocol_server.on("GET", "/v1/models", Reply.json(wire.models(["a", "b"])))
    backend.embed(input="x", model="e")
    backend.list_models()
    assert [s.name for s in otel.calls()] == ["embeddings e", "list_models"]


def test_concurrent_threads_and_tasks_keep_their_own_spans_and_the_gauges_count(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, otel: Telemetry
) -> None:
    backend = make_backend(max_concurrent_requests=1)
    hold = threading.Event()

    def reply(request: RecordedRequest) -> Reply:
        text = request.json()["messages"][-1]["content"]
        return Reply.json(wire.chat_completion(f"echo:{text}"), wait_for=hold)

    protocol_server.on("POST", CHAT, default=reply)
    results: dict[str, str] = {}

    def call(name: str) -> None:
        results[name] = backend.chat(messages=wire.user(name), model="m", request_id=name).text

    threads = [threading.Thread(target=call, args=(f"t{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    wait_until(
        lambda: protocol_server.in_flight == 1 and backend.default_endpoint.gate.info()["size"] == 2
    )
    gauges = {
        name: otel.points(name)[0].value
        for name in ("ipfs_accelerate.client.requests.active", "ipfs_accelerate.client.queue.depth")
    }
    assert gauges == {
        "ipfs_accelerate.client.requests.active": 1,
        "ipfs_accelerate.client.queue.depth": 2,
    }
    hold.set()
    for thread in threads:
        thread.join(10)
    assert results == {f"t{i}": f"echo:t{i}" for i in range(3)}

    async def tasks() -> list[str]:
        try:
            replies = await asyncio.gather(
                *(
                    backend.achat(messages=wire.user(f"a{i}"), model="m", request_id=f"a{i}")
                    for i in range(3)
                )
            )
            return [r.text for r in replies]
        finally:
            await backend.aclose()

    assert asyncio.run(tasks()) == ["echo:a0", "echo:a1", "echo:a2"]
    calls = otel.calls()
    assert sorted(c.attributes["ipfs_accelerate.request_id"] for c in calls) == [
        "a0",
        "a1",
        "a2",
        "t0",
        "t1",
        "t2",
    ]
    for call_span in calls:
        [attempt] = otel.attempts_of(call_span)
        assert attempt.context.trace_id == call_span.context.trace_id
    assert len({c.context.trace_id for c in calls}) == 6  # no call nested in another
    waits = sorted(c.attributes["ipfs_accelerate.queue.wait"] for c in calls)
    assert waits[-1] > 0


def test_without_an_sdk_provider_calls_work_and_record_nothing(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    from opentelemetry import trace

    observability.configure(
        tracer_provider=trace.NoOpTracerProvider(), metrics=False, latency=False
    )
    try:
        protocol_server.on("POST", CHAT, wire.error_reply(500), wire.chat_reply("ok"))
        assert backend.chat(messages=wire.user(), model="m").text == "ok"
        assert len(protocol_server.requests_to(CHAT)) == 2
    finally:
        reset_observability()
