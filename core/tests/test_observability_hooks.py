"""User hooks (order, scopes, isolation, sync and async), the per-call log line, latency
percentiles, and the "off" path: no OpenTelemetry import, ENABLED back to False."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ipfs_accelerate_py import errors, observability
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.observability import CallView
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.otel import reset_observability
from ipfs_accelerate_py.testing.pytest_plugin import DEFAULT_SECRET
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"
SECRET = DEFAULT_SECRET  # the ``secret`` fixture


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    yield
    reset_observability()
    assert not observability.ENABLED


def recorder(seen: list[tuple[str, CallView]], tag: str = "") -> dict[str, Any]:
    """Hooks that append (kind, view) to ``seen``."""

    def make(kind: str) -> Callable[[CallView], None]:
        return lambda view: seen.append((tag + kind, view))

    return {k: make(k) for k in ("on_request", "on_response", "on_error", "on_retry")}


def test_hooks_fire_in_order_through_retries(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    seen: list[tuple[str, CallView]] = []
    observability.add_hooks(**recorder(seen))
    assert observability.ENABLED
    protocol_server.on(
        "POST", CHAT, wire.error_reply(500), wire.error_reply(503), wire.chat_reply("ok")
    )
    assert backend.chat(messages=wire.user(), model="m", request_id="r1").text == "ok"
    assert len(protocol_server.requests_to(CHAT)) == 3
    assert [k for k, _ in seen] == ["on_request", "on_retry", "on_retry", "on_response"]
    request, retry1, retry2, response = (v for _, v in seen)
    assert (request.backend, request.operation, request.model) == ("loopback", "chat", "m")
    assert request.request_id == "r1" and request.priority == "NORMAL" and request.attempt == 0
    assert request.body["messages"] == [{"role": "user", "content": "Hello"}]
    assert isinstance(retry1.error, errors.ServerError) and retry1.attempt == 1
    assert retry1.delay == clock.sleeps[0] and retry2.attempt == 2
    assert retry1.key_name == "default" and retry1.key == "sk-...abcd"
    assert response.result.text == "ok" and response.usage.prompt_tokens == 9
    assert response.duration is not None and response.duration >= 0 and response.attempt == 3
    for _, view in seen:
        assert SECRET not in repr(view)


def test_on_error_gets_the_final_redacted_error(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_retries=0)
    seen: list[tuple[str, CallView]] = []
    observability.add_hooks(**recorder(seen))
    body = wire.error(f"Incorrect API key provided: {SECRET}", code="invalid_api_key")
    protocol_server.on("POST", CHAT, Reply.json(body, status=401))
    with pytest.raises(errors.AuthenticationError):
        backend.chat(messages=wire.user(), model="m")
    assert [k for k, _ in seen] == ["on_request", "on_error"]
    error = seen[1][1].error
    assert isinstance(error, errors.AuthenticationError)
    assert SECRET not in str(error) and "sk-...abcd" in str(error)


def test_global_then_backend_then_scoped_hooks_and_only_for_their_backend(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    mine, other = make_backend(), make_backend()
    seen: list[tuple[str, CallView]] = []
    observability.add_hooks(on_request=recorder(seen, "global.")["on_request"])
    observability.add_hooks(on_request=recorder(seen, "backend.")["on_request"], backend=mine)
    router = observability.Hooks.of(on_request=recorder(seen, "router.")["on_request"])
    protocol_server.on("POST", CHAT, default=wire.chat_reply("ok"))
    with observability.scoped_hooks(router):
        mine.chat(messages=wire.user(), model="m")
    other.chat(messages=wire.user(), model="m")
    assert [k for k, _ in seen] == [
        "global.on_request",
        "backend.on_request",
        "router.on_request",
        "global.on_request",
    ]
    with pytest.raises(errors.InvalidArgumentError):
        observability.add_hooks(on_request=print, backend="openai")
    with pytest.raises(errors.InvalidArgumentError):
        observability.add_hooks(on_request="print")
    with pytest.raises(errors.InvalidArgumentError):
        observability.add_hooks()


def test_a_failing_hook_is_logged_and_never_breaks_the_call(
    backend: Backend, protocol_server: ProtocolServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, CallView]] = []

    def broken(view: CallView) -> None:
        raise RuntimeError("hook bug")

    observability.add_hooks(on_request=broken, on_response=broken, on_retry=broken)
    observability.add_hooks(**recorder(seen))
    protocol_server.on("POST", CHAT, wire.error_reply(500), wire.chat_reply("ok"))
    with caplog.at_level(logging.ERROR, logger="ipfs_accelerate_py.hooks"):
        assert backend.chat(messages=wire.user(), model="m").text == "ok"
    assert [k for k, _ in seen] == ["on_request", "on_retry", "on_response"]
    failures = [r for r in caplog.records if r.name == "ipfs_accelerate_py.hooks"]
    assert len(failures) == 3 and all("hook bug" in r.exc_text for r in failures)


def test_async_hooks_are_awaited_on_async_calls(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    order: list[str] = []

    async def on_request(view: CallView) -> None:
        await asyncio.sleep(0)
        order.append("request")

    async def on_retry(view: CallView) -> None:
        order.append("retry")

    async def on_response(view: CallView) -> None:
        await asyncio.sleep(0)
        order.append("response")

    async def on_error(view: CallView) -> None:
        raise RuntimeError("async hook bug")

    observability.add_hooks(
        on_request=on_request, on_retry=on_retry, on_response=on_response, on_error=on_error
    )
    protocol_server.on(
        "POST", CHAT, wire.error_reply(503), wire.chat_reply("ok"), wire.error_reply(400)
    )

    async def main() -> str:
        try:
            text = (await backend.achat(messages=wire.user(), model="m")).text
            with pytest.raises(errors.InvalidRequestError):
                await backend.achat(messages=wire.user(), model="m")
            return text
        finally:
            await backend.aclose()

    assert asyncio.run(main()) == "ok"
    assert order == ["request", "retry", "response", "request"]


def test_async_hooks_run_on_sync_calls_and_streams(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    order: list[str] = []

    async def hook(view: CallView) -> None:
        order.append(f"{view.operation}:{view.stream}")

    observability.add_hooks(on_request=hook, on_response=hook)
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(["a"])))
    assert [c.text for c in backend.stream(messages=wire.user(), model="m")] == ["a", ""]
    assert order == ["chat:True", "chat:True"]


def test_removing_the_last_hooks_turns_observation_off(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    seen: list[tuple[str, CallView]] = []
    hooks = observability.add_hooks(**recorder(seen), backend=backend)
    assert observability.ENABLED
    observability.remove_hooks(hooks, backend=backend)
    assert not observability.ENABLED
    protocol_server.on("POST", CHAT, wire.chat_reply("ok"))
    backend.chat(messages=wire.user(), model="m")
    assert seen == []


def test_one_log_line_per_call_text_and_json(
    backend: Backend, protocol_server: ProtocolServer, caplog: pytest.LogCaptureFixture
) -> None:
    observability.configure(tracing=False, metrics=False, log_calls=True)
    protocol_server.on(
        "POST",
        CHAT,
        wire.chat_reply("ok"),
        wire.chat_reply("ok"),
        Reply.sse(wire.chat_stream(["a", "b"])),
    )
    with caplog.at_level(logging.INFO, logger="ipfs_accelerate_py.calls"):
        backend.chat(messages=wire.user("secret plan"), model="m", request_id="r-text")
        observability.configure(tracing=False, metrics=False, log_calls=True, log_json=True)
        backend.chat(messages=wire.user("secret plan"), model="m", request_id="r-json")
        list(backend.stream(messages=wire.user("secret plan"), model="m", request_id="r-s"))
    lines = [r for r in caplog.records if r.name == "ipfs_accelerate_py.calls"]
    assert len(lines) == 3
    text = lines[0].getMessage()
    assert text.startswith("event=gen_ai.call request_id=r-text backend=loopback")
    assert "outcome=ok" in text and "input_tokens=9" in text
    fields = json.loads(lines[1].getMessage())
    assert fields["request_id"] == "r-json" and fields["attempts"] == 1
    assert fields["response_model"] == "gpt-4o-mini-2024-07-18" and "duration_ms" in fields
    assert lines[1].ipfs_accelerate == fields  # type: ignore[attr-defined]
    streamed = json.loads(lines[2].getMessage())
    assert streamed["stream"] is True and "ttft_ms" in streamed and streamed["output_tokens"] == 2
    for record in lines:
        assert "secret plan" not in record.getMessage() and SECRET not in record.getMessage()


def test_latency_summary_gives_percentiles_per_backend(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    observability.configure(tracing=False, metrics=False)  # latency only
    protocol_server.on("POST", CHAT, *[wire.chat_reply("ok")] * 20, Reply(status=400, body=b"{}"))
    for _ in range(20):
        backend.chat(messages=wire.user(), model="m")
    with pytest.raises(errors.BackendError):
        backend.chat(messages=wire.user(), model="m")
    summary = observability.latency_summary()
    row = summary["loopback"]
    assert row["count"] == 20 and row["errors"] == 1
    assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
    observability.reset_latency()
    assert observability.latency_summary() == {}


def test_configure_checks_its_arguments() -> None:
    with pytest.raises(errors.InvalidArgumentError):
        observability.configure(tracing="yes")  # type: ignore[arg-type]
    assert not observability.ENABLED


OFF_PATH = textwrap.dedent(
    """
    import sys
    from ipfs_accelerate_py import get_backend, observability
    from ipfs_accelerate_py.testing import openai_wire as wire
    from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

    with ProtocolServer() as server:
        stream = Reply.sse(wire.chat_stream(["a"]))
        server.on("POST", "/v1/chat/completions", wire.chat_reply("ok"), stream,
                  default=wire.chat_reply("ok"))
        backend = get_backend("openai", api_key="sk-test-1234567890abcd",
                              base_url=server.url("/v1"))
        assert backend.chat(messages=wire.user(), model="m").text == "ok"
        assert [c.text for c in backend.stream(messages=wire.user(), model="m")] != []
        MODE
        assert backend.chat(messages=wire.user(), model="m").text == "ok"
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry")
                    or m.startswith("ipfs_accelerate_py.observability."))
    print(",".join(loaded))
    """
)


def _off_path(mode: str) -> list[str]:
    script = OFF_PATH.replace("MODE", mode)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    return [m for m in out.stdout.strip().split(",") if m]


def test_the_off_path_imports_nothing_of_opentelemetry() -> None:
    pytest.importorskip("ipfs_accelerate_openai")
    loaded = _off_path("pass")
    assert not [m for m in loaded if m.startswith("opentelemetry")]
    assert not [m for m in loaded if m.endswith((".call", ".runners", ".otel"))]


def test_logs_and_hooks_alone_import_nothing_of_opentelemetry() -> None:
    pytest.importorskip("ipfs_accelerate_openai")
    mode = (
        "observability.configure(tracing=False, metrics=False, log_calls=True); "
        "observability.add_hooks(on_response=lambda v: None)"
    )
    loaded = _off_path(mode)
    assert not [m for m in loaded if m.startswith("opentelemetry")]
    assert "ipfs_accelerate_py.observability.runners" in loaded


def test_tracing_without_the_api_installed_says_how_to_install_it() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        from ipfs_accelerate_py import errors, observability
        try:
            observability.configure()
        except errors.ConfigurationError as exc:
            print(exc)
        assert not observability.ENABLED
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "pip install 'ipfs-accelerate-core[otel]'" in out.stdout


def test_a_failed_stream_and_an_async_stream_closed_early(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from ipfs_accelerate_py.testing.otel import Telemetry

    otel = Telemetry()
    otel.configure()
    backend = make_backend(max_retries=0)
    seen: list[tuple[str, CallView]] = []
    observability.add_hooks(**recorder(seen))
    events = wire.chat_stream(["a", "b", "c"])
    protocol_server.on("POST", CHAT, wire.error_reply(500), Reply.sse(events))
    with pytest.raises(errors.ServerError):
        list(backend.stream(messages=wire.user(), model="m"))

    async def main() -> str:
        try:
            async with backend.astream(messages=wire.user(), model="m") as stream:
                async for chunk in stream:
                    return chunk.text
            return ""
        finally:
            await backend.aclose()

    assert asyncio.run(main()) == "a"
    assert [k for k, _ in seen] == ["on_request", "on_error", "on_request"]
    failed, closed = otel.calls()
    assert failed.attributes["error.type"] == "ServerError"
    assert failed.attributes["ipfs_accelerate.stream"] is True
    assert closed.attributes["ipfs_accelerate.stream.closed_early"] is True
    assert len(protocol_server.requests_to(CHAT)) == 2
