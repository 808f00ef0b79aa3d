"""The Ollama plugin's failure paths: error statuses, retries, malformed, cut and error lines."""

from __future__ import annotations

import asyncio
import json

import ollama_wire as wire
import pytest

from ipfs_accelerate_ollama.plugin import show_call
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/api/chat"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(
    ("status", "message", "cls", "label"),
    [
        (400, 'model "all-minilm" does not support chat', errors.InvalidRequestError, "Invalid"),
        (401, "unauthorized", errors.AuthenticationError, "Authentication error"),
        (403, "forbidden", errors.PermissionDeniedError, "Authentication error"),
        (404, 'model "llama3" not found, try pulling it first', errors.NotFoundError, "Not found"),
        (499, "request canceled", errors.InvalidRequestError, "Invalid request"),
    ],
)
def test_client_errors_are_not_retried(
    ollama: Backend,
    protocol_server: ProtocolServer,
    status: int,
    message: str,
    cls: type,
    label: str,
) -> None:
    protocol_server.on("POST", CHAT, default=wire.error(message, status))
    with pytest.raises(cls) as info:
        ollama.chat(messages=MESSAGES, model="llama3", request_id="req_mine")
    err = info.value
    assert isinstance(err, ValueError)  # the quickstart guide catches ValueError
    assert len(protocol_server.requests) == 1
    assert (err.status_code, err.provider, err.request_id) == (status, "ollama", "req_mine")
    assert err.body == {"error": message}
    text = str(err)
    assert label in text and "ollama" in text and str(status) in text and message in text
    assert ollama.get_circuit_state() == "CLOSED"


def test_missing_model_says_to_pull_it_on_every_path(
    ollama: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=wire.model_missing("llama3"))
    protocol_server.on("POST", "/api/show", default=wire.error("model 'qwen3' not found", 404))
    expected = (
        'model "llama3" not found, try pulling it first (run `ollama pull llama3` to download it)'
    )
    with pytest.raises(errors.NotFoundError) as info:
        ollama.chat(messages=MESSAGES, model="llama3")
    assert info.value.message == expected
    assert (info.value.status_code, info.value.body) == (404, {"error": expected.split(" (")[0]})
    with pytest.raises(errors.NotFoundError) as info:
        list(ollama.stream(messages=MESSAGES, model="llama3"))
    assert info.value.message == expected
    with pytest.raises(errors.NotFoundError) as info:
        asyncio.run(ollama.achat(messages=MESSAGES, model="llama3"))
    assert info.value.message == expected
    with pytest.raises(errors.NotFoundError) as info:
        ollama.request(show_call("qwen3"))
    assert info.value.message == "model 'qwen3' not found (run `ollama pull qwen3` to download it)"
    assert len(protocol_server.requests) == 4  # a 404 is not retried
    assert ollama.get_circuit_state() == "CLOSED"


def test_other_404s_get_no_pull_hint(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, wire.route_missing(), wire.error("no such thing", 404))
    with pytest.raises(errors.NotFoundError) as info:
        ollama.chat(messages=MESSAGES, model="llama3")
    assert "ollama pull" not in str(info.value)  # Go's plain 404: the route is missing
    with pytest.raises(errors.NotFoundError) as info:
        ollama.chat(messages=MESSAGES, model="llama3")
    assert info.value.message == "no such thing (run `ollama pull <model>` to download it)"


@pytest.mark.parametrize(
    "reply",
    [
        wire.error("too many requests", 429, headers={"retry-after": "2"}),
        wire.error("an error was encountered while running the model", 500),
        wire.error("could not reach ollama.com", 502),
        wire.error("server busy, please try again.  maximum pending requests exceeded", 503),
        Reply.drop_connection(),
    ],
    ids=["429", "500", "502", "503-queue-full", "dropped"],
)
def test_transient_failures_are_retried(
    ollama: Backend, protocol_server: ProtocolServer, clock: FakeClock, reply: Reply
) -> None:
    protocol_server.on("POST", CHAT, reply, Reply.json(wire.chat("ok")))
    assert ollama.chat(messages=MESSAGES, model="llama3").text == "ok"
    assert len(protocol_server.requests) == 2
    assert len(clock.sleeps) == 1
    if reply.status == 429:
        assert clock.sleeps == [2.0]


def test_retries_exhausted_raise_the_last_error(
    ollama: Backend, protocol_server: ProtocolServer
) -> None:
    ollama.max_retries = 2
    protocol_server.on("POST", CHAT, default=wire.error("busy", 503))
    with pytest.raises(errors.ServerError, match="busy"):
        asyncio.run(ollama.achat(messages=MESSAGES, model="llama3"))
    assert len(protocol_server.requests) == 3


@pytest.mark.parametrize(
    "reply",
    [
        Reply.raw(b"not json at all"),
        Reply.raw(b'{"model": "llama3", "message": {"role": "assis'),
        Reply.text("<html><body>Bad gateway page</body></html>", content_type="text/html"),
        Reply.json({"model": "llama3", "done": False}),
        Reply.json({"model": "llama3", "message": "hi"}),
        Reply.json({"model": "llama3", "message": {"role": "assistant", "content": 5}}),
        Reply.json({"model": "x", "message": {"content": "", "tool_calls": [{"f": 1}]}}),
        Reply.json({**wire.chat(), "eval_count": "many"}),
        Reply.json([1, 2, 3]),
    ],
    ids=[
        "not-json",
        "truncated",
        "html",
        "no-message",
        "message-not-object",
        "content-not-text",
        "bad-tool-calls",
        "bad-counter",
        "not-object",
    ],
)
def test_malformed_chat_replies(
    ollama: Backend, protocol_server: ProtocolServer, reply: Reply
) -> None:
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        ollama.chat(messages=MESSAGES, model="llama3")
    assert "ollama" in str(info.value)
    assert len(protocol_server.requests) == 1


@pytest.mark.parametrize(
    ("path", "method", "reply", "match"),
    [
        ("/api/embed", "POST", Reply.json(wire.embed([[1.0]])), "asked for 2 embeddings, got 1"),
        ("/api/embed", "POST", Reply.json({"embeddings": [["a"], [1]]}), "list of numbers"),
        ("/api/embed", "POST", Reply.json({"model": "m"}), "no embeddings"),
        ("/api/generate", "POST", Reply.json({"model": "m", "done": True}), "no response"),
        ("/api/generate", "POST", Reply.json({"response": 3}), "not text"),
        ("/api/tags", "GET", Reply.json({"models": [{"size": 1}]}), "no name"),
        ("/api/tags", "GET", Reply.json({"data": []}), "no models list"),
        ("/api/tags", "GET", Reply.raw(b"<html>"), "not valid JSON"),
    ],
)
def test_malformed_other_replies(
    ollama: Backend,
    protocol_server: ProtocolServer,
    path: str,
    method: str,
    reply: Reply,
    match: str,
) -> None:
    protocol_server.on(method, path, default=reply)
    with pytest.raises(errors.MalformedResponseError, match=match):
        if path == "/api/embed":
            ollama.embed(input=["a", "b"], model="m")
        elif path == "/api/generate":
            ollama.generate(prompt="p", model="m")
        else:
            ollama.list_models()


def test_error_line_mid_stream_raises(ollama: Backend, protocol_server: ProtocolServer) -> None:
    lines = [*wire.chat_stream(["Yes", "."], done=False)]
    lines.append({"error": "an error was encountered while running the model"})
    protocol_server.on("POST", CHAT, default=Reply.ndjson(lines))
    got = []
    with pytest.raises(errors.ServerError, match="encountered while running") as info:
        for chunk in ollama.stream(messages=MESSAGES, model="llama3"):
            got.append(chunk.text)
    assert got == ["Yes", "."]
    assert len(protocol_server.requests) == 1  # chunks were delivered: not retried
    assert info.value.body == lines[-1]


def test_error_as_first_line_is_retried(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST",
        CHAT,
        Reply.ndjson([{"error": "model runner has unexpectedly stopped"}]),
        Reply.ndjson(wire.chat_stream(["ok"])),
    )
    assert [c.text for c in ollama.stream(messages=MESSAGES, model="llama3")] == ["ok", ""]
    assert len(protocol_server.requests) == 2


def test_async_error_line(ollama: Backend, protocol_server: ProtocolServer) -> None:
    lines = [*wire.chat_stream(["a"], done=False), {"error": "boom"}]
    protocol_server.on("POST", CHAT, Reply.ndjson(lines, split=4))

    async def consume() -> list[str]:
        return [c.text async for c in ollama.astream(messages=MESSAGES, model="llama3")]

    with pytest.raises(errors.ServerError, match="boom"):
        asyncio.run(consume())


def test_stream_without_done_line_is_cut(ollama: Backend, protocol_server: ProtocolServer) -> None:
    ollama.max_retries = 0
    protocol_server.on("POST", CHAT, Reply.ndjson(wire.chat_stream(["a"], done=False)))
    with pytest.raises(errors.ConnectionError, match="end marker"):
        list(ollama.stream(messages=MESSAGES, model="llama3"))


def test_stream_cut_mid_way(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST", CHAT, default=Reply.ndjson(wire.chat_stream(["a", "b", "c"]), cut_after=2)
    )
    got = []
    with pytest.raises(errors.ConnectionError, match="stream"):
        for chunk in ollama.stream(messages=MESSAGES, model="llama3"):
            got.append(chunk.text)
    assert got == ["a", "b"]
    assert len(protocol_server.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply.ndjson(b'{"model": "llama3", "message": {"content": "a"}, "done": false}\n{oops\n'),
        Reply.text("<html>proxy login</html>", content_type="text/html"),
        Reply.ndjson([[1, 2]]),
    ],
    ids=["bad-line", "html", "not-object"],
)
def test_malformed_stream(ollama: Backend, protocol_server: ProtocolServer, reply: Reply) -> None:
    ollama.max_retries = 0
    protocol_server.on("POST", CHAT, reply)
    with pytest.raises(errors.MalformedResponseError):
        list(ollama.stream(messages=MESSAGES, model="llama3"))


def test_stream_error_status_is_retried(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, wire.error("busy", 503), Reply.ndjson(wire.chat_stream(["x"])))
    assert [c.text for c in ollama.stream(messages=MESSAGES, model="llama3")] == ["x", ""]


def test_stream_missing_model(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, wire.model_missing("nope"))
    with pytest.raises(errors.NotFoundError, match='model "nope" not found'):
        list(ollama.stream(messages=MESSAGES, model="nope"))
    assert len(protocol_server.requests) == 1


def test_connection_refused_names_the_server_and_says_to_start_it(clock: FakeClock) -> None:
    with ProtocolServer() as server:
        url = server.base_url
    backend = get_backend("ollama", base_url=url, clock=clock, max_retries=0)
    for call in (
        lambda: backend.chat(messages=MESSAGES, model="llama3"),
        lambda: list(backend.stream(messages=MESSAGES, model="llama3")),
        lambda: backend.list_models(),
        lambda: asyncio.run(backend.aembed(input="x", model="all-minilm")),
    ):
        with pytest.raises(errors.ConnectionError) as info:
            call()
        assert isinstance(info.value, ConnectionError)
        message = info.value.message
        assert message.startswith(f"could not connect to {url}/api (ConnectError: ")
        assert message.endswith(
            "; is the server running and the base URL right? "
            "(is Ollama running? start it with `ollama serve`)"
        )


def test_bearer_token_sent_and_never_shown(
    protocol_server: ProtocolServer, clock: FakeClock, secret: str
) -> None:
    backend = get_backend(
        "ollama",
        base_url=protocol_server.base_url,
        metadata={"ollama_api_key": secret},
        clock=clock,
    )
    protocol_server.on("POST", CHAT, wire.error(f"invalid token {secret}", 401))
    with pytest.raises(errors.AuthenticationError) as info:
        backend.chat(messages=MESSAGES, model="llama3")
    assert protocol_server.requests[0].headers["authorization"] == f"Bearer {secret}"
    for text in (str(info.value), repr(info.value), json.dumps(info.value.body)):
        assert secret not in text
    assert secret not in repr(backend) and secret not in repr(backend.settings)
    assert secret not in json.dumps(backend.get_key_usage_stats())
    assert secret not in json.dumps(backend.get_usage_stats())
