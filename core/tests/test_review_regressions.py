"""Regression tests for the review findings, each against the loopback ProtocolServer.

One test (or one parametrised family) per finding: an unencodable request, async clients
across ``asyncio.run`` calls, malformed stream events, 429 with a long Retry-After and
several keys, streams left early, secrets in errors and reprs, ``extra_body`` /
``extra_query`` / ``stream=True``, the breaker opening during a call's own retries, a bad
pricing file, and a ``timeout`` given as a string in ``metadata``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.masking import mask_secret
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

user = wire.user
ok = wire.chat_reply

CHAT = "/v1/chat/completions"
WAIT = 5.0  # real-time bound on a queue wait: a leaked slot fails the test instead of hanging it
KEY_B = "sk-keyB-BBBBBBBBBBBBBBBB2222"


def role_chunk() -> dict[str, Any]:
    """The first event of an OpenAI stream: the role, with empty content (yields no chunk)."""
    first: dict[str, Any] = wire.chat_stream([])[0]
    return first


def chunk_with(**choice: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk`` event whose only choice is ``choice``."""
    return {**role_chunk(), "choices": [choice]}


def open_the_breaker(backend: Backend, server: ProtocolServer, clock: FakeClock) -> None:
    """Fail three calls (failure_threshold=3, max_retries=0), then let the reset timeout
    pass: the breaker is HALF_OPEN with one probe available."""
    server.on("POST", CHAT, default=wire.error_reply(500))
    for _ in range(3):
        with pytest.raises(errors.ServerError):
            backend.chat(messages=user(), model="m")
    assert backend.circuit_state == "OPEN"
    clock.advance(backend.reset_timeout + 1)
    assert backend.circuit_state == "HALF_OPEN"


def chat_sync(backend: Backend, **kwargs: Any) -> Any:
    return backend.chat(messages=user(), model="m", **kwargs)


def stream_sync(backend: Backend, **kwargs: Any) -> Any:
    # read to the end (no ``with``): this helper must not depend on finding 5's fix
    return list(backend.stream(messages=user(), model="m", **kwargs))


def chat_async(backend: Backend, **kwargs: Any) -> Any:
    async def call() -> Any:
        try:
            return await backend.achat(messages=user(), model="m", **kwargs)
        finally:
            await backend.aclose()

    return asyncio.run(call())


def stream_async(backend: Backend, **kwargs: Any) -> Any:
    async def call() -> Any:
        try:
            return [chunk async for chunk in backend.astream(messages=user(), model="m", **kwargs)]
        finally:
            await backend.aclose()

    return asyncio.run(call())


CALLERS = {"chat": chat_sync, "stream": stream_sync, "achat": chat_async, "astream": stream_async}


# --------------------------------------------------------------------------- 1. encoding


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: {"extra_body": {"t": datetime.now()}}, id="extra_body-datetime"),
        pytest.param(lambda: {"metadata": {"t": object()}}, id="param-object"),
    ],
)
def test_unencodable_request_is_invalid_argument_and_leaks_no_probe_or_key(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    clock: FakeClock,
    caller: str,
    bad: Callable[[], dict[str, Any]],
) -> None:
    backend = make_backend(failure_threshold=3, max_retries=0)
    open_the_breaker(backend, protocol_server, clock)
    sent = len(protocol_server.requests)

    with pytest.raises(errors.InvalidArgumentError) as info:
        CALLERS[caller](backend, **bad())
    assert not isinstance(info.value, TypeError)
    assert "could not be encoded" in str(info.value)
    assert len(protocol_server.requests) == sent  # nothing was sent
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    assert backend.get_queue_info()["active_requests"] == 0
    assert backend.circuit_state == "HALF_OPEN"

    # the half-open probe was not leaked: a good call still goes through
    protocol_server.on("POST", CHAT, default=ok("probe ok"))
    assert chat_sync(backend).text == "probe ok"
    assert len(protocol_server.requests) == sent + 1
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0


# --------------------------------------------------------------------------- 2. async clients


def test_successive_asyncio_runs_keep_no_async_client_alive(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=ok("async ok"))
    transport = backend.default_endpoint.transport

    async def one() -> str:
        return (await backend.achat(messages=user(), model="m")).text

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for run in range(1, 31):
            assert asyncio.run(one()) == "async ok"
            assert len(transport._aclients) == 0, f"an async client outlived run {run}"
            assert protocol_server.connections == run
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
    assert len(protocol_server.requests_to(CHAT)) == 30


# --------------------------------------------------------------------------- 3. malformed events


MALFORMED_EVENTS = {
    "choice-not-object": {**role_chunk(), "choices": ["oops"]},
    "tool-call-index-null": chunk_with(
        index=0,
        delta={
            "tool_calls": [
                {
                    "index": None,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": ""},
                }
            ]
        },
        finish_reason=None,
    ),
}


@pytest.mark.parametrize("caller", ["stream", "astream"])
@pytest.mark.parametrize("event", MALFORMED_EVENTS)
def test_malformed_stream_event_is_malformed_response_and_not_retried(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock, caller: str, event: str
) -> None:
    # the bad event comes before any text chunk reached the caller, where a retry is allowed
    reply = Reply.sse([role_chunk(), MALFORMED_EVENTS[event], "[DONE]"])
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        CALLERS[caller](backend)
    assert "stream event" in str(info.value)
    assert len(protocol_server.requests_to(CHAT)) == 1
    assert clock.sleeps == []
    assert backend.get_queue_info()["active_requests"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0


# --------------------------------------------------------------------------- 4. 429 and keys


@pytest.mark.parametrize("caller", ["chat", "achat"])
def test_long_retry_after_on_one_key_moves_to_the_other_key_at_once(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock, secret: str, caller: str
) -> None:
    backend.add_api_key("B", KEY_B)
    limited = wire.error_reply(429, {"retry-after": "120"})
    protocol_server.on("POST", CHAT, limited, default=ok("from B"))

    assert CALLERS[caller](backend).text == "from B"
    sent = [r.headers["Authorization"] for r in protocol_server.requests_to(CHAT)]
    assert sent == [f"Bearer {secret}", f"Bearer {KEY_B}"]
    assert clock.sleeps == []
    stats = backend.get_key_usage_stats()
    assert stats["default"]["rate_limited"] == 1
    assert stats["default"]["cooling_down_for"] == 120.0
    assert stats["default"]["in_flight"] == stats["B"]["in_flight"] == 0


@pytest.mark.parametrize("caller", ["chat", "achat"])
def test_long_retry_after_with_one_key_surfaces_at_once(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock, caller: str
) -> None:
    limited = wire.error_reply(429, {"retry-after": "120"})
    protocol_server.on("POST", CHAT, limited, default=ok())
    with pytest.raises(errors.RateLimitError) as info:
        CALLERS[caller](backend)
    assert info.value.retry_after == 120.0
    assert info.value.status_code == 429
    assert len(protocol_server.requests_to(CHAT)) == 1
    assert clock.sleeps == []


# --------------------------------------------------------------------------- 5. streams left early


def _long_stream() -> Reply:
    # still sending when the caller leaves: the early exit must not wait for the rest
    return Reply.sse(wire.chat_stream(["a", "b", "c", "d", "e"]), chunk_delay=0.05)


def test_stream_left_early_frees_its_slot_at_once(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(max_concurrent_requests=1)
    protocol_server.on("POST", CHAT, _long_stream(), default=ok("next"))

    seen = []
    with backend.stream(messages=user(), model="m") as s:
        for chunk in s:
            seen.append(chunk.text)
            break
    assert seen == ["a"]
    assert backend.get_queue_info()["active_requests"] == 0
    assert backend.chat(messages=user(), model="m", queue_timeout=WAIT).text == "next"

    metrics = backend.get_circuit_metrics()
    assert metrics["state"] == "CLOSED" and metrics["recent_failures"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    assert backend.get_key_usage_stats()["default"]["errors"] == 0
    assert clock.sleeps == []


def test_async_stream_left_early_frees_its_slot_at_once(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(max_concurrent_requests=1)
    protocol_server.on("POST", CHAT, _long_stream(), default=ok("next"))

    async def scenario() -> tuple[list[str], int, str]:
        seen = []
        try:
            async with backend.astream(messages=user(), model="m") as s:
                async for chunk in s:
                    seen.append(chunk.text)
                    break
            active = backend.get_queue_info()["active_requests"]
            reply = await backend.achat(messages=user(), model="m", queue_timeout=WAIT)
            return seen, active, reply.text
        finally:
            await backend.aclose()

    assert asyncio.run(scenario()) == (["a"], 0, "next")
    metrics = backend.get_circuit_metrics()
    assert metrics["state"] == "CLOSED" and metrics["recent_failures"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    assert backend.get_key_usage_stats()["default"]["errors"] == 0
    assert clock.sleeps == []


# --------------------------------------------------------------------------- 6. secrets


@pytest.mark.parametrize("caller", ["stream", "astream"])
@pytest.mark.parametrize("text_first", [False, True], ids=["before-text", "after-text"])
def test_key_in_an_in_stream_error_is_masked(
    backend: Backend,
    protocol_server: ProtocolServer,
    secret: str,
    caller: str,
    text_first: bool,
) -> None:
    error_event = wire.error(
        f"Incorrect API key provided: {secret}.", code="invalid_api_key", param=secret
    )
    events = [role_chunk(), *([chunk_with(index=0, delta={"content": "hi"})] * text_first)]
    protocol_server.on("POST", CHAT, default=Reply.sse([*events, error_event, "[DONE]"]))

    with pytest.raises(errors.BackendError) as info:
        CALLERS[caller](backend)
    err = info.value
    assert "error inside the stream" in str(err)
    assert mask_secret(secret) in str(err)
    assert secret not in str(err) and secret not in repr(err) and secret not in err.message
    assert secret not in json.dumps(err.body)
    assert len(protocol_server.requests_to(CHAT)) == 1


def test_key_echoed_in_an_http_error_body_is_masked(
    backend: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    body = wire.error(f"Incorrect API key provided: {secret}.", code="invalid_api_key")
    body["error"]["param"] = secret
    body["error"]["details"] = [{"provided": secret}, f"key={secret}"]
    protocol_server.on("POST", CHAT, default=Reply.json(body, status=401))

    with pytest.raises(errors.AuthenticationError) as info:
        backend.chat(messages=user(), model="m")
    err = info.value
    assert err.body is not None
    dumped = json.dumps(err.body)
    assert secret not in dumped
    assert mask_secret(secret) in dumped
    assert err.body["error"]["param"] == mask_secret(secret)
    assert secret not in str(err) and mask_secret(secret) in str(err)
    assert len(protocol_server.requests_to(CHAT)) == 1


def fragments(secret: str, size: int = 8) -> list[str]:
    """Every run of ``size`` characters of ``secret``: none may show in an error."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def shown(err: errors.BackendError) -> str:
    """Every string of an error a user can read or log."""
    fields = (err.message, err.code, err.provider_request_id, err.request_id)
    return "\n".join([str(err), repr(err), json.dumps(err.body), *map(str, fields)])


@pytest.mark.parametrize("offset", [270, 280, 284])
def test_key_cut_at_the_edge_of_an_error_excerpt_is_masked(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, secret: str, offset: int
) -> None:
    backend = make_backend(max_retries=0)
    text = "x" * offset + f"bad key {secret} rejected"  # plain text: quoted up to 300 chars
    protocol_server.on("POST", CHAT, default=Reply.text(text, status=401))
    with pytest.raises(errors.AuthenticationError) as info:
        backend.chat(messages=user(), model="m")
    for piece in fragments(secret):
        assert piece not in shown(info.value), piece

    detail = {"detail": [{"msg": "x" * offset + secret}]}  # FastAPI: dumped, then quoted
    protocol_server.on("POST", CHAT, default=Reply.json(detail, status=422))
    with pytest.raises(errors.InvalidRequestError) as info2:
        backend.chat(messages=user(), model="m")
    for piece in fragments(secret):
        assert piece not in shown(info2.value), piece


@pytest.mark.parametrize("offset", [185, 190, 192])
def test_key_cut_at_the_edge_of_a_malformed_reply_excerpt_is_masked(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, secret: str, offset: int
) -> None:
    backend = make_backend(max_retries=0)
    body = ("<" * offset + secret).encode()  # not JSON: quoted up to 200 bytes
    protocol_server.on("POST", CHAT, default=Reply.raw(body))
    with pytest.raises(errors.MalformedResponseError) as info:
        backend.chat(messages=user(), model="m")
    for piece in fragments(secret):
        assert piece not in shown(info.value), piece


def test_key_echoed_in_the_provider_request_id_is_masked(
    backend: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    headers = {"x-request-id": f"req_{secret}"}
    protocol_server.on("POST", CHAT, default=wire.error_reply(400, headers))
    with pytest.raises(errors.InvalidRequestError) as info:
        backend.chat(messages=user(), model="m")
    assert info.value.provider_request_id == f"req_{mask_secret(secret)}"
    for piece in fragments(secret):
        assert piece not in shown(info.value), piece


@pytest.mark.parametrize(
    "reply",
    [Reply.drop_connection(), Reply.json({}, delay=2.0)],
    ids=["dropped", "read-timeout"],
)
def test_the_sent_request_is_not_reachable_from_the_error(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, secret: str, reply: Reply
) -> None:
    import httpx

    backend = make_backend(max_retries=0)
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises((errors.ConnectionError, errors.TimeoutError)) as info:
        backend.chat(messages=user(), model="m", timeout=0.3)
    chain: list[BaseException] = []
    link: BaseException | None = info.value
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    # the httpx exception may stay as the __context__ (its type and message), but bare
    for err in chain:
        for value in vars(err).values():
            assert not isinstance(value, httpx.Request), err
            assert secret not in repr(value)
        if isinstance(err, httpx.RequestError):
            with pytest.raises(RuntimeError):
                err.request  # noqa: B018 - httpx: "the .request property ... has not been set"
    for err in chain[1:]:  # their frames held the request (and its headers) as locals
        assert err.__traceback__ is None, err


@pytest.mark.parametrize("caller", ["chat", "stream"])
def test_an_error_wrapping_a_transport_failure_has_no_context(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, caller: str
) -> None:
    backend = make_backend(max_retries=0)
    protocol_server.on("POST", CHAT, default=Reply.drop_connection())
    with pytest.raises(errors.ConnectionError) as info:
        if caller == "chat":
            backend.chat(messages=user(), model="m")
        else:
            list(backend.stream(messages=user(), model="m"))
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_password_in_base_url_is_refused_and_never_shown(
    loopback_plugin: object, protocol_server: ProtocolServer, secret: str
) -> None:
    # refused outright (see test_credentials_in_a_base_url_are_refused): httpx would send it
    # as "Authorization: Basic", replacing the key; the error shows it masked
    password = "hunter2-PASSWORD-7xq"
    host = protocol_server.base_url.removeprefix("http://")
    with pytest.raises(errors.ConfigurationError) as info:
        get_backend("loopback", api_key=secret, base_url=f"http://alice:{password}@{host}/v1")
    assert password not in str(info.value) and secret not in str(info.value)
    assert "***" in str(info.value)
    assert protocol_server.requests == []


# --------------------------------------------------------------------------- 7. extra_* and stream=


def test_extra_body_and_extra_query_are_merged_into_the_request(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    backend.chat(
        messages=user(),
        model="m",
        temperature=0.5,
        extra_body={"reasoning_effort": "low"},
        extra_query={"api-version": "1"},
    )
    (request,) = protocol_server.requests_to(CHAT)
    body = request.json()
    assert body["reasoning_effort"] == "low"
    assert body["temperature"] == 0.5 and body["model"] == "m"
    assert "extra_body" not in body and "extra_query" not in body
    assert request.query == {"api-version": "1"}


@pytest.mark.parametrize("caller", ["chat", "achat"])
def test_chat_with_stream_true_points_to_stream_and_sends_nothing(
    backend: Backend, protocol_server: ProtocolServer, caller: str
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    with pytest.raises(errors.InvalidArgumentError) as info:
        CALLERS[caller](backend, stream=True)
    assert "stream()" in str(info.value)
    assert protocol_server.requests == []


# --------------------------------------------------------------------------- 8. breaker mid-call


@pytest.mark.parametrize("caller", ["chat", "achat"])
def test_breaker_opening_during_retries_surfaces_the_server_error(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    clock: FakeClock,
    caller: str,
) -> None:
    backend = make_backend(failure_threshold=3, max_retries=5)
    protocol_server.on("POST", CHAT, default=wire.error_reply(503))

    with pytest.raises(errors.ServerError) as info:
        CALLERS[caller](backend)
    err = info.value
    assert not isinstance(err, errors.CircuitOpenError)
    assert err.status_code == 503
    assert err.provider_request_id == "req_server_503"
    assert "not retried" in str(err) and "open" in str(err)
    assert len(protocol_server.requests_to(CHAT)) == 3
    assert backend.circuit_state == "OPEN"

    with pytest.raises(errors.CircuitOpenError):
        CALLERS[caller](backend)
    assert len(protocol_server.requests_to(CHAT)) == 3


# --------------------------------------------------------------------------- 9. pricing file


def test_bad_pricing_file_fails_when_the_backend_is_made(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"loopback": {"m": {"input": 1,', encoding="utf-8")
    monkeypatch.setenv("IPFS_ACCELERATE_PRICING", str(path))
    protocol_server.on("POST", CHAT, default=ok())
    with pytest.raises(errors.ConfigurationError) as info:
        make_backend()
    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)
    assert protocol_server.requests == []


# --------------------------------------------------------------------------- 10. timeout metadata


def test_timeout_in_metadata_must_be_a_number_of_seconds(
    make_backend: Callable[..., Backend],
) -> None:
    with pytest.raises(errors.ConfigurationError) as info:
        make_backend(metadata={"timeout": "30s"})
    assert "timeout" in str(info.value) and "30s" in str(info.value)

    backend = make_backend(metadata={"timeout": "30"})
    assert backend.settings.timeout == 30.0
    assert isinstance(backend.settings.timeout, float)


# --------------------------------------------------------------------------- further findings
# Gaps found while writing the tests above, next to the fixes they extend (see the report).


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"extra_headers": {"X-Trace": "a\nb"}}, id="header-with-newline"),
        pytest.param({"request_id": "req\nx"}, id="request-id-with-newline"),
        pytest.param({"request_id": "abc\r\nX-Evil: 1"}, id="request-id-with-crlf"),
        pytest.param({"request_id": "r\x00"}, id="request-id-with-nul"),
        pytest.param({"request_id": "r" * 201}, id="request-id-too-long"),
        pytest.param({"request_id": ["r"]}, id="request-id-list"),
        pytest.param({"timeout": float("nan")}, id="timeout-nan"),
        pytest.param({"timeout": -1}, id="timeout-negative"),
        pytest.param({"timeout": "5"}, id="timeout-string"),
        pytest.param({"extra_body": ["x"]}, id="extra_body-list"),
        pytest.param({"extra_query": "a=b"}, id="extra_query-string"),
        pytest.param({"extra_headers": ["x"]}, id="extra_headers-list"),
    ],
)
def test_bad_call_options_are_invalid_arguments_and_never_breaker_failures(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock, options: dict[str, Any]
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    with pytest.raises(errors.InvalidArgumentError) as info:
        backend.chat(messages=user(), model="m", **options)
    assert "\r" not in str(info.value) and "\n" not in str(info.value)  # shown escaped
    assert "\x00" not in str(info.value)
    assert protocol_server.requests == []
    assert clock.sleeps == []  # a caller's bad argument is not retried...
    metrics = backend.get_circuit_metrics()  # ...nor counted against the endpoint
    assert metrics["state"] == "CLOSED" and metrics["recent_failures"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    assert backend.chat(messages=user(), model="m").text == "ok"


@pytest.mark.parametrize(
    "value",
    ["nan", float("nan"), "inf", float("inf"), "1e400"],
    ids=["str-nan", "float-nan", "str-inf", "float-inf", "str-overflow"],
)
def test_timeout_setting_must_be_a_usable_number(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    clock: FakeClock,
    value: Any,
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    try:
        backend = make_backend(metadata={"timeout": value})
    except errors.ConfigurationError as err:
        refused: errors.ConfigurationError | None = err
    else:
        refused = None
    if refused is not None:
        assert "timeout" in str(refused)
        return
    # accepted (say, as "no timeout"): then a call must work, not fail in the transport
    assert backend.chat(messages=user(), model="m").text == "ok"
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:{pw}@example.com/v1?api-version=1",
        "http://alice:{pw}@example.com/v1#frag",
        "ftp://alice:{pw}@example.com/v1",
    ],
    ids=["query", "fragment", "scheme"],
)
def test_password_in_a_rejected_base_url_is_not_in_the_error(
    loopback_plugin: object, secret: str, url: str
) -> None:
    password = "hunter2-PASSWORD-7xq"
    with pytest.raises(errors.ConfigurationError) as info:
        get_backend("loopback", api_key=secret, base_url=url.format(pw=password))
    assert "base_url" in str(info.value)
    assert password not in str(info.value) and password not in info.value.message


@pytest.mark.parametrize("caller", ["chat", "stream"])
def test_key_in_an_error_code_is_masked(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, secret: str, caller: str
) -> None:
    backend = make_backend(max_retries=0)
    error = {"error": {"message": "invalid key", "type": "invalid_request_error", "code": secret}}
    if caller == "chat":
        reply = Reply.json(error, status=401)
    else:
        reply = Reply.sse([role_chunk(), error, "[DONE]"])
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises(errors.BackendError) as info:
        CALLERS[caller](backend)
    err = info.value
    assert secret not in str(err)
    assert secret not in (err.code or "")
    assert secret not in json.dumps(err.body)


def deeply_nested(depth: int = 200_000) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("message", "match"),
    [
        pytest.param({"tool_calls": ["x"]}, "each tool call must be a dict", id="call-str"),
        pytest.param({"tool_calls": 5}, "must be a list of tool calls", id="calls-int"),
        pytest.param({"tool_calls": "x"}, "must be a list of tool calls", id="calls-str"),
        pytest.param({"tool_calls": [{"function": 5}]}, "'function' must be a dict", id="fn-int"),
        pytest.param(
            {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": deeply_nested()}}]},
            "nested too deeply",
            id="arguments-deep",
        ),
    ],
)
def test_bad_tool_calls_in_a_message_are_invalid_arguments(
    backend: Backend, protocol_server: ProtocolServer, message: dict[str, Any], match: str
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    bad = {"role": "assistant", "content": None, **message}
    with pytest.raises(errors.InvalidArgumentError, match=match):
        backend.chat(messages=[*user(), bad], model="m")
    assert protocol_server.requests == []


def test_a_parameter_nested_too_deeply_is_an_invalid_argument(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    with pytest.raises(errors.InvalidArgumentError, match="could not be encoded"):
        backend.chat(messages=user(), model="m", metadata=deeply_nested())
    assert protocol_server.requests == []
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0


@pytest.mark.parametrize("status", [200, 500])
def test_a_reply_nested_too_deeply_is_malformed_not_a_recursion_error(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, status: int
) -> None:
    backend = make_backend(max_retries=0)
    deep = b"[" * 200_000 + b"]" * 200_000
    protocol_server.on("POST", CHAT, default=Reply.raw(deep, status=status))
    expected = errors.MalformedResponseError if status == 200 else errors.ServerError
    with pytest.raises(expected):
        backend.chat(messages=user(), model="m")
    protocol_server.on("POST", CHAT, default=Reply.sse([deep.decode(), "[DONE]"]))
    with pytest.raises(errors.MalformedResponseError):
        list(backend.stream(messages=user(), model="m"))
