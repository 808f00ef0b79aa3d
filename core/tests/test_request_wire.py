"""The request a call puts on the wire, and the reply it reads back, are the same whichever
way it travels: the sync client, httpx's async pool, or aiohttp's pool (where a request
skips httpx's request and response objects): headers merged without duplicates,
the JSON body and its type, the query, a compressed reply, cookies, the per-call timeout, the
size limit, and a clear error for a request that cannot be sent."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.aio_transport import aiohttp_available
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"


@pytest.fixture(params=["sync", "async httpx", "async aiohttp", "async aiohttp, httpx objects"])
def via(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the test's calls travel. The last: aiohttp's pool through httpx's objects, the
    route a plugin with an ``authorize`` hook takes (the direct sender left out)."""
    name = str(request.param)
    if name != "sync":
        monkeypatch.setenv("IPFS_ACCELERATE_ASYNC_TRANSPORT", name.split()[1].rstrip(","))
    if name.startswith("async aiohttp") and not aiohttp_available():
        pytest.skip("the aio extra (httpx-aiohttp) is not installed")
    if name == "async aiohttp, httpx objects":
        from ipfs_accelerate_py import transport

        monkeypatch.setattr(transport, "sender", lambda *args: None)
    return name


def chats(backend: Backend, via: str, *calls: dict[str, Any]) -> list[Any]:
    """Make one chat call per keyword set, in order (async: all on one event loop, so on one
    client); each result is the reply's text or the exception raised."""
    if via == "sync":
        out: list[Any] = []
        for kw in calls:
            try:
                out.append(backend.chat(messages=wire.user(), model="m", **kw).text)
            except Exception as exc:
                out.append(exc)
        return out

    async def run() -> list[Any]:
        out: list[Any] = []
        for kw in calls:
            try:
                out.append((await backend.achat(messages=wire.user(), model="m", **kw)).text)
            except Exception as exc:
                out.append(exc)
        return out

    return asyncio.run(run())


def test_headers_are_merged_without_case_duplicates(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=wire.chat_reply("ok"))
    backend = make_backend()
    extra = {
        "AUTHORIZATION": "Bearer replaced",
        "x-client-request-id": "mine",
        "user-agent": "caller/1.0",
        "X-Count": 3,
    }
    assert chats(backend, via, {"extra_headers": extra}) == ["ok"]
    headers = protocol_server.requests[0].headers
    assert headers.get_all("authorization") == ["Bearer replaced"]
    assert headers.get_all("x-client-request-id") == ["mine"]
    assert headers.get_all("user-agent") == ["caller/1.0"]
    assert headers.get_all("x-count") == ["3"]  # numbers are accepted as header values
    assert headers.get_all("content-type") == ["application/json"]


def test_the_json_body_and_query_arrive_as_sent(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer, secret: str
) -> None:
    protocol_server.on("POST", CHAT, default=wire.chat_reply("ok"))
    backend = make_backend()
    sent = chats(
        backend,
        via,
        {"extra_body": {"note": "café ☕", "n": 2}, "extra_query": {"q": "a b&c", "v": "é"}},
    )
    assert sent == ["ok"]
    seen = protocol_server.requests[0]
    assert seen.json()["note"] == "café ☕" and seen.json()["n"] == 2
    assert seen.json()["messages"] == wire.user()
    assert seen.query == {"q": "a b&c", "v": "é"}
    assert seen.headers["authorization"] == f"Bearer {secret}"
    assert int(seen.headers["content-length"]) == len(seen.body)


def test_a_content_type_of_the_callers_own_is_kept(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=wire.chat_reply("ok"))
    backend = make_backend()
    own = "application/json; charset=utf-8"
    assert chats(backend, via, {"extra_headers": {"Content-Type": own}}) == ["ok"]
    assert protocol_server.requests[0].headers.get_all("content-type") == [own]


def test_a_gzip_reply_is_decoded(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    body = gzip.compress(json.dumps(wire.chat_completion("squeezed")).encode())
    protocol_server.on("POST", CHAT, default=Reply.raw(body, headers={"content-encoding": "gzip"}))
    backend = make_backend()
    assert chats(backend, via, {}) == ["squeezed"]
    assert "gzip" in protocol_server.requests[0].headers["accept-encoding"]


def test_a_cookie_the_server_sets_is_sent_back(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST",
        CHAT,
        Reply.json(wire.chat_completion("first"), headers={"set-cookie": "route=b7; Path=/"}),
        default=wire.chat_reply("second"),
    )
    backend = make_backend()
    assert chats(backend, via, {}, {}) == ["first", "second"]
    first, second = protocol_server.requests
    assert "cookie" not in first.headers
    assert second.headers.get_all("cookie") == ["route=b7"]


def test_the_per_call_timeout_bounds_a_slow_reply(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=Reply.json(wire.chat_completion("late"), delay=2.0))
    backend = make_backend(max_retries=0, timeout=30)
    [result] = chats(backend, via, {"timeout": 0.3})
    assert isinstance(result, errors.TimeoutError), result


def test_an_oversized_reply_is_refused(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_retries=0)
    backend.default_endpoint.transport.max_body = 1000
    protocol_server.on(
        "POST",
        CHAT,
        Reply.json({"x": "y" * 5000}),  # declared too long
        Reply(headers={"content-type": "application/json"}, chunks=[b"z" * 600] * 5),
    )
    declared, chunked = chats(backend, via, {}, {})
    for result in (declared, chunked):
        assert isinstance(result, errors.MalformedResponseError), result
        assert "1,000 byte limit" in str(result)


def test_a_header_value_with_a_line_break_is_an_invalid_argument(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer, secret: str
) -> None:
    protocol_server.on("POST", CHAT, default=wire.chat_reply("ok"))
    backend = make_backend(max_retries=2)
    [result] = chats(backend, via, {"extra_headers": {"x-note": "one\r\nx-injected: two"}})
    assert isinstance(result, errors.InvalidArgumentError), result
    assert secret not in str(result) and secret not in repr(result)
    assert protocol_server.requests == []  # nothing sent, nothing retried


def test_a_body_json_cannot_encode_is_an_invalid_argument(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=wire.chat_reply("ok"))
    backend = make_backend()
    nan, obj = chats(
        backend, via, {"extra_body": {"t": float("nan")}}, {"extra_body": {"t": object()}}
    )
    for result in (nan, obj):
        assert isinstance(result, errors.InvalidArgumentError), result
        assert "could not be encoded" in str(result)
    assert protocol_server.requests == []


def test_a_corrupt_compressed_reply_is_malformed_and_sent_once(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST", CHAT, default=Reply.raw(b"not gzip at all", headers={"content-encoding": "gzip"})
    )
    backend = make_backend(max_retries=2)
    [result] = chats(backend, via, {})
    assert isinstance(result, errors.MalformedResponseError), result
    assert len(protocol_server.requests) == 1  # a POST is not sent again for a bad body


def test_reply_headers_read_as_httpx_reads_them(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    """Latin-1 bytes decode as Latin-1; a name sent twice reads as its values joined."""
    protocol_server.on(
        "POST",
        CHAT,
        wire.error_reply(400, {"x-request-id": "café-1"}),
        # the scripted server writes header lines as given: this value makes two headers
        wire.error_reply(400, {"x-request-id": "a\r\nx-request-id: b"}),
    )
    backend = make_backend(max_retries=0)
    latin, twice = chats(backend, via, {}, {})
    assert isinstance(latin, errors.BackendError) and isinstance(twice, errors.BackendError)
    assert latin.provider_request_id == "café-1"
    assert twice.provider_request_id == "a, b"


def test_a_header_value_outside_ascii_is_an_invalid_argument(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=wire.chat_reply("ok"))
    backend = make_backend()
    [result] = chats(backend, via, {"extra_headers": {"x-user": "José"}})
    assert isinstance(result, errors.InvalidArgumentError), result
    assert protocol_server.requests == []


def test_the_environments_proxy_carries_every_call(
    via: str,
    loopback_plugin: object,
    secret: str,
    protocol_server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``HTTP_PROXY`` is honoured on every route (streams too), as httpx's clients honour it;
    the scripted server plays the proxy for a host that does not exist."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@" + protocol_server.base_url.split("//")[1])
    protocol_server.on(
        "POST",
        CHAT,
        default=lambda r: (
            Reply.sse(wire.chat_stream(["p", "x"]))
            if r.json().get("stream")
            else wire.chat_reply("via proxy")
        ),
    )
    backend = get_backend("loopback", api_key=secret, base_url="http://llm.invalid/v1")
    try:
        assert chats(backend, via, {}) == ["via proxy"]
        assert _streamed(backend, via) == "px"
    finally:
        backend.close()
    for seen in protocol_server.requests:
        assert seen.headers["host"] == "llm.invalid"
        assert seen.headers["proxy-authorization"] == "Basic dXNlcjpwdw=="  # user:pw


def _streamed(backend: Backend, via: str) -> str:
    if via == "sync":
        return "".join(c.text for c in backend.stream(messages=wire.user(), model="m"))

    async def stream() -> str:
        return "".join([c.text async for c in backend.astream(messages=wire.user(), model="m")])

    return asyncio.run(stream())


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.1:{port}", "example.test, 127.0.0.1"])
def test_no_proxy_keeps_a_host_off_the_proxy(
    via: str,
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
) -> None:
    """A host (or host:port) that ``NO_PROXY`` names is reached directly: the proxy here
    does not exist, so a call sent to it would fail."""
    with ProtocolServer() as gone:
        dead = gone.base_url  # nothing listens there once the block ends
    port = protocol_server.base_url.rsplit(":", 1)[1]
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", dead)
    monkeypatch.setenv("NO_PROXY", no_proxy.format(port=port))
    protocol_server.on("POST", CHAT, default=wire.chat_reply("direct"))
    backend = make_backend(max_retries=0)
    assert chats(backend, via, {}) == ["direct"]


def test_a_proxy_that_cannot_be_reached_is_a_connection_error(
    via: str,
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with ProtocolServer() as gone:
        dead = gone.base_url
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", dead.replace("http://", "http://user:hunter2@"))
    backend = make_backend(max_retries=0)
    [result] = chats(backend, via, {})
    assert isinstance(result, errors.ConnectionError), result
    assert "could not connect" in str(result) and "hunter2" not in str(result)
    assert protocol_server.requests == []


class _RawServer:
    """Answers every request on 127.0.0.1 with fixed bytes, sent in parts 50 ms apart, then
    closes: framing the scripted server would never send."""

    def __init__(self, *parts: bytes) -> None:
        import socket
        import threading

        self.parts = parts
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import time

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                size = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < size:
                    body += conn.recv(65536)
                for part in self.parts:
                    conn.sendall(part)
                    time.sleep(0.05)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_a_malformed_chunk_size_mid_body_fails_and_never_hangs(
    via: str, loopback_plugin: object, secret: str, stream: bool
) -> None:
    """After a bad chunk size aiohttp 3.14 drops its read timer without failing the body:
    the wait is bounded by the read timeout there; the other routes fail at once."""
    import time

    kind = b"text/event-stream" if stream else b"application/json"
    server = _RawServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"id"\r\n',
        b"ZZ\r\nnot a chunk\r\n",
    )
    backend = get_backend(
        "loopback", api_key=secret, base_url=server.url, max_retries=0, timeout=1.0
    )
    start = time.monotonic()
    try:
        if not stream:
            [result] = chats(backend, via, {})
        else:
            try:
                result = _streamed(backend, via)
            except Exception as exc:
                result = exc
    finally:
        backend.close()
        server.close()
    assert isinstance(result, (errors.ConnectionError, errors.TimeoutError)), result
    assert time.monotonic() - start < 5


def test_a_gzip_bomb_is_refused_at_the_size_limit(
    via: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    """The limit counts the body as decoded: 64 MB of zeros sent as 64 KB of gzip stop at
    the 1 MB limit set here, as an error naming it, and nothing is retried."""
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
    assert len(bomb) < 100_000
    protocol_server.on("POST", CHAT, default=Reply.raw(bomb, headers={"content-encoding": "gzip"}))
    backend = make_backend(max_retries=2)
    backend.default_endpoint.transport.max_body = 1 << 20
    [result] = chats(backend, via, {})
    assert isinstance(result, errors.MalformedResponseError), result
    assert "1,048,576 byte limit" in str(result)
    assert len(protocol_server.requests) == 1


def test_on_aiohttps_pool_calls_and_streams_skip_httpx(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The route the "async aiohttp" cases above take is the direct one: every request goes
    through ``Direct.send`` and none through httpx's client."""
    import httpx

    from ipfs_accelerate_py.direct import Direct

    monkeypatch.setenv("IPFS_ACCELERATE_ASYNC_TRANSPORT", "aiohttp")
    if not aiohttp_available():
        pytest.skip("the aio extra (httpx-aiohttp) is not installed")
    direct: list[str] = []
    through_httpx: list[str] = []
    direct_send, httpx_send = Direct.send, httpx.AsyncClient.send

    async def spy_direct(self: Direct, method: str, url: str, *rest: Any) -> Any:
        direct.append(url)
        return await direct_send(self, method, url, *rest)

    async def spy_httpx(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        through_httpx.append(str(request.url))
        return await httpx_send(self, request, **kw)

    monkeypatch.setattr(Direct, "send", spy_direct)
    monkeypatch.setattr(httpx.AsyncClient, "send", spy_httpx)
    protocol_server.on(
        "POST",
        CHAT,
        default=lambda r: (
            Reply.sse(wire.chat_stream(["s"])) if r.json().get("stream") else wire.chat_reply("c")
        ),
    )
    backend = make_backend()
    assert chats(backend, "async aiohttp", {}) == ["c"]
    assert _streamed(backend, "async aiohttp") == "s"
    assert len(direct) == 2 and through_httpx == []
