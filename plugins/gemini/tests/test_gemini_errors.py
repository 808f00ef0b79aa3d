"""Failures: Google's error bodies, retries, blocked answers, malformed replies, cut streams."""

from __future__ import annotations

import asyncio

import gemini_wire as wire
import pytest

from ipfs_accelerate_gemini import errors as gemini_errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.errors import (
    AuthenticationError,
    BackendError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

GEN = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(
    ("status", "rpc", "cls"),
    [
        (400, "INVALID_ARGUMENT", InvalidRequestError),
        (400, "FAILED_PRECONDITION", InvalidRequestError),
        (401, "UNAUTHENTICATED", AuthenticationError),
        (403, "PERMISSION_DENIED", PermissionDeniedError),
        (404, "NOT_FOUND", NotFoundError),
    ],
)
def test_client_errors_are_mapped_and_not_retried(
    gemini: Backend,
    protocol_server: ProtocolServer,
    status: int,
    rpc: str,
    cls: type[BackendError],
    secret: str,
) -> None:
    protocol_server.on("POST", GEN, wire.error_reply(status, rpc, f"the {rpc} message"))
    with pytest.raises(cls) as info:
        gemini.chat(messages=MESSAGES)
    err = info.value
    assert type(err) is cls
    assert isinstance(err, ValueError)  # the quickstart guide catches ValueError
    assert err.status_code == status and err.code == rpc
    assert f"the {rpc} message" in str(err)
    assert err.provider == "gemini" and err.request_id
    assert len(protocol_server.requests) == 1
    assert secret not in str(err) + repr(err)


def test_invalid_api_key_is_an_authentication_error() -> None:
    """Google answers a bad key with 400 INVALID_ARGUMENT and ErrorInfo reason
    API_KEY_INVALID: the plugin's mapping makes it an AuthenticationError."""
    err = gemini_errors.error_from_body(wire.API_KEY_INVALID, http_status=400)
    assert type(err) is AuthenticationError
    assert err.code == "API_KEY_INVALID"
    assert "API key not valid" in str(err)
    # and it refines the error core built from the status alone
    core_err = InvalidRequestError(
        "API key not valid.", status_code=400, code="INVALID_ARGUMENT", body=wire.API_KEY_INVALID
    )
    assert type(gemini_errors.map_error(core_err)) is AuthenticationError


def test_invalid_api_key_end_to_end(
    gemini: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    """The refine_error hook turns core's status-only InvalidRequestError into an
    AuthenticationError on every call path."""
    protocol_server.on("POST", GEN, default=Reply.json(wire.API_KEY_INVALID, status=400))
    protocol_server.on("POST", STREAM, default=Reply.json(wire.API_KEY_INVALID, status=400))
    calls = (
        lambda: gemini.chat(messages=MESSAGES, request_id="req_1"),
        lambda: list(gemini.stream(messages=MESSAGES, request_id="req_1")),
        lambda: asyncio.run(gemini.achat(messages=MESSAGES, request_id="req_1")),
    )
    for call in calls:
        with pytest.raises(AuthenticationError) as info:
            call()
        err = info.value
        assert type(err) is AuthenticationError
        assert str(err) == (
            "Authentication error from gemini (HTTP 400): API key not valid. Please pass a "
            "valid API key. [code: API_KEY_INVALID] [request id: req_1]"
        )
        assert (err.status_code, err.retry_after, err.retryable) == (400, None, False)
        assert err.body == wire.API_KEY_INVALID
        assert secret not in str(err) + repr(err)
    assert len(protocol_server.requests) == 3  # never retried
    assert gemini.get_circuit_state() == "CLOSED"


def test_retry_delay_from_retry_info_without_retry_after(
    gemini: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on(
        "POST", GEN, Reply.json(wire.QUOTA, status=429), Reply.json(wire.response("later"))
    )
    assert gemini.chat(messages=MESSAGES).text == "later"
    assert clock.sleeps == [7.0]  # RetryInfo.retryDelay "7s"


def test_invalid_api_key_is_not_retried(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", GEN, Reply.json(wire.API_KEY_INVALID, status=400))
    with pytest.raises(BackendError) as info:
        gemini.chat(messages=MESSAGES)
    assert info.value.status_code == 400 and "API key not valid" in str(info.value)
    assert len(protocol_server.requests) == 1


def test_quota_429_is_retried_after_retry_after(
    gemini: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on(
        "POST",
        GEN,
        Reply.json(wire.QUOTA, status=429, headers={"retry-after": "3"}),
        Reply.json(wire.response("after the wait")),
    )
    assert gemini.chat(messages=MESSAGES).text == "after the wait"
    assert len(protocol_server.requests) == 2
    assert sum(clock.sleeps) >= 3.0


def test_quota_429_exhausted_is_a_rate_limit_error(
    protocol_server: ProtocolServer, clock: FakeClock, secret: str
) -> None:
    backend = get_backend(
        "gemini", api_key=secret, base_url=protocol_server.base_url, clock=clock, max_retries=1
    )
    protocol_server.on("POST", GEN, default=Reply.json(wire.QUOTA, status=429))
    with pytest.raises(RateLimitError) as info:
        backend.chat(messages=MESSAGES)
    assert info.value.code == "RESOURCE_EXHAUSTED"
    assert "exceeded your current quota" in str(info.value)
    assert len(protocol_server.requests) == 2
    assert "Rate limit" in str(info.value)  # what the guide looks for


@pytest.mark.parametrize(
    ("status", "rpc"), [(500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")]
)
def test_server_errors_are_retried(
    gemini: Backend, protocol_server: ProtocolServer, status: int, rpc: str
) -> None:
    protocol_server.on(
        "POST",
        GEN,
        wire.error_reply(status, rpc, "The model is overloaded. Please try again later."),
        Reply.json(wire.response("recovered")),
    )
    assert gemini.chat(messages=MESSAGES).text == "recovered"
    assert len(protocol_server.requests) == 2


def test_server_error_exhausted(
    protocol_server: ProtocolServer, clock: FakeClock, secret: str
) -> None:
    backend = get_backend(
        "gemini", api_key=secret, base_url=protocol_server.base_url, clock=clock, max_retries=2
    )
    protocol_server.on("POST", GEN, default=wire.error_reply(503, "UNAVAILABLE", "overloaded"))
    with pytest.raises(ServerError) as info:
        backend.chat(messages=MESSAGES)
    assert info.value.status_code == 503 and info.value.code == "UNAVAILABLE"
    assert len(protocol_server.requests) == 3


def test_blocked_prompt_is_a_clear_error(gemini: Backend, protocol_server: ProtocolServer) -> None:
    blocked = {
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
            ],
        },
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": wire.MODEL_VERSION,
    }
    protocol_server.on("POST", GEN, Reply.json(blocked))
    with pytest.raises(InvalidRequestError) as info:
        gemini.chat(messages=MESSAGES)
    assert info.value.code == "blocked"
    assert "prompt was blocked" in str(info.value) and "SAFETY" in str(info.value)
    assert len(protocol_server.requests) == 1  # not retried


def test_answer_withheld_for_safety_is_a_clear_error(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    body = {
        "candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": []}],
        "usageMetadata": wire.usage(5, 0),
    }
    protocol_server.on("POST", GEN, Reply.json(body))
    with pytest.raises(InvalidRequestError) as info:
        gemini.chat(messages=MESSAGES)
    assert info.value.code == "blocked" and "SAFETY" in str(info.value)


def test_blocked_stream(gemini: Backend, protocol_server: ProtocolServer) -> None:
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}
    protocol_server.on("POST", STREAM, wire.sse([blocked]))
    with pytest.raises(InvalidRequestError) as info:
        list(gemini.stream(messages=MESSAGES))
    assert "PROHIBITED_CONTENT" in str(info.value)
    assert len(protocol_server.requests) == 1


MALFORMED = [
    Reply.raw(b'{"candidates": [{"content": {"parts": [{"text": "trunc'),
    Reply.text("<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
    Reply.json({"candidates": "nope"}),
    Reply.json({"candidates": []}),
    Reply.json({"candidates": [{"content": {"parts": "x"}}]}),
    Reply.json({"candidates": [{"content": {"parts": [7]}}]}),
    Reply.json([1, 2]),
]


@pytest.mark.parametrize("reply", MALFORMED)
def test_malformed_replies_raise_clearly(
    gemini: Backend, protocol_server: ProtocolServer, reply: Reply
) -> None:
    protocol_server.on("POST", GEN, default=reply)
    with pytest.raises(MalformedResponseError) as info:
        gemini.chat(messages=MESSAGES)
    assert info.value.provider == "gemini"
    assert len(protocol_server.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"embedding": {"values": "x"}},
        {"embedding": {"values": [1, None]}},
        {"embeddings": {"values": [1]}},
        {"nothing": 1},
        {"embeddings": [{"values": [1.0]}, {"values": [2.0]}]},  # two for one input
    ],
)
def test_malformed_embeddings(
    gemini: Backend, protocol_server: ProtocolServer, body: object
) -> None:
    protocol_server.on("POST", "/v1beta/models/e:embedContent", default=Reply.json(body))
    with pytest.raises(MalformedResponseError):
        gemini.embed(input="x", model="e")


def test_malformed_models(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/v1beta/models", default=Reply.json({"models": [{"id": "x"}]}))
    with pytest.raises(MalformedResponseError):
        gemini.list_models()


def test_dropped_connection_is_retried(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST", GEN, Reply.drop_connection(), Reply.json(wire.response("second try"))
    )
    assert gemini.chat(messages=MESSAGES).text == "second try"
    assert len(protocol_server.requests) == 2


def test_unknown_image_bytes_fail_before_sending(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    content = [{"type": "image", "data": b"%PDF-1.7 not an image"}, "describe"]
    with pytest.raises(InvalidArgumentError) as info:
        gemini.chat(messages=[{"role": "user", "content": content}])
    assert "not PNG, JPEG, WebP or GIF" in str(info.value)
    with pytest.raises(InvalidArgumentError):
        gemini.chat(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
                    ],
                }
            ]
        )
    assert protocol_server.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"logit_bias": {"1": 2}},
        {"temperature": "hot"},
        {"response_format": {"type": "xml"}},
        {"tool_choice": 3},
        {"tools": "x"},
    ],
)
def test_bad_arguments_fail_before_sending(
    gemini: Backend, protocol_server: ProtocolServer, kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidArgumentError):
        gemini.chat(messages=MESSAGES, **kwargs)
    assert protocol_server.requests == []


def test_system_only_and_tool_without_name_fail_before_sending(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    with pytest.raises(InvalidArgumentError):
        gemini.chat(messages=[{"role": "system", "content": "x"}])
    with pytest.raises(InvalidArgumentError):
        gemini.chat(messages=[*MESSAGES, {"role": "tool", "content": "x", "tool_call_id": "?"}])
    with pytest.raises(InvalidArgumentError):
        gemini.embed(input="x", model="e", encoding_extra=1)
    assert protocol_server.requests == []


def test_missing_key_fails_before_sending(protocol_server: ProtocolServer) -> None:
    backend = get_backend("gemini", base_url=protocol_server.base_url)
    with pytest.raises(ConfigurationError) as info:
        backend.chat(messages=MESSAGES)
    assert "GOOGLE_API_KEY" in str(info.value) and "GEMINI_API_KEY" in str(info.value)
    assert protocol_server.requests == []


def test_key_never_in_url_errors_reprs_or_stats(
    gemini: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    echo = wire.error(400, "INVALID_ARGUMENT", f"bad request for key {secret}")
    protocol_server.on("POST", GEN, Reply.json(echo, status=400))
    with pytest.raises(InvalidRequestError) as info:
        gemini.chat(messages=MESSAGES)
    [req] = protocol_server.requests
    assert secret not in req.path and secret not in str(req.query)
    assert req.headers["x-goog-api-key"] == secret
    err = info.value
    assert secret not in str(err) + repr(err) + repr(err.body) + str(err.message)
    assert secret not in repr(gemini) + repr(gemini.settings)
    assert secret not in repr(gemini.get_usage_stats())


def test_read_timeout_is_a_timeout_error(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", GEN, default=Reply.json(wire.response("late"), delay=1.0))
    with pytest.raises(TimeoutError):
        gemini.chat(messages=MESSAGES, timeout=0.2)


def test_blocked_prompts_do_not_open_the_breaker(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}}
    protocol_server.on("POST", GEN, default=Reply.json(blocked))
    for _ in range(6):  # more than the breaker's failure threshold (5)
        with pytest.raises(InvalidRequestError) as info:
            gemini.chat(messages=MESSAGES)
        assert info.value.status_code is None  # raised by the 200 reply's parser
    assert len(protocol_server.requests) == 6  # each sent once, none refused by the breaker
    assert gemini.get_circuit_state() == "CLOSED"
