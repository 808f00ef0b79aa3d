"""Tests for ipfs_accelerate_py.testing: the loopback ProtocolServer and its pytest fixture."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from ipfs_accelerate_py.testing import ProtocolServer, RecordedRequest, Reply
from ipfs_accelerate_py.testing.waiting import wait_until


@pytest.fixture
def server() -> Iterator[ProtocolServer]:
    with ProtocolServer() as srv:
        yield srv


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, verify=False, timeout=5.0) as c:
        yield c


# -- scripting -------------------------------------------------------------------------


def test_scripted_replies_in_order_then_default(
    server: ProtocolServer, client: httpx.Client
) -> None:
    server.on(
        "POST",
        "/v1/x",
        Reply.json({"n": 1}),
        Reply.json({"error": "slow down"}, status=429, headers={"retry-after": "2"}),
        default=Reply.text("fallback"),
    )
    first = client.post(server.url("/v1/x"))
    second = client.post(server.url("/v1/x"))
    assert first.json() == {"n": 1}
    assert first.headers["content-type"] == "application/json"
    assert second.status_code == 429
    assert second.headers["retry-after"] == "2"
    for _ in range(3):
        r = client.post(server.url("/v1/x"))
        assert (r.status_code, r.text, r.headers["content-type"]) == (200, "fallback", "text/plain")
    assert [r.index for r in server.requests] == [0, 1, 2, 3, 4]
    assert server.unexpected == []


def test_on_replaces_script_and_method_is_case_insensitive(
    server: ProtocolServer, client: httpx.Client
) -> None:
    server.on("get", "/a", Reply.text("old"), Reply.text("old2"))
    server.on("GET", "/a", Reply.text("new"))
    assert client.get(server.url("/a")).text == "new"
    assert client.get(server.url("/a")).status_code == 500  # exhausted, no default


def test_unexpected_route_gets_500_and_is_recorded(
    server: ProtocolServer, client: httpx.Client
) -> None:
    server.on("POST", "/known", Reply.json({}))
    r = client.get(server.url("/known?x=1"))
    assert r.status_code == 500
    assert r.json() == {"error": {"message": "no reply scripted for GET /known"}}
    r = client.post(server.url("/proxy/v1/other"), content=b"zz")
    assert r.json() == {"error": {"message": "no reply scripted for POST /proxy/v1/other"}}
    assert [(u.method, u.path) for u in server.unexpected] == [
        ("GET", "/known"),
        ("POST", "/proxy/v1/other"),
    ]
    assert len(server.requests) == 2


def test_callable_replies_see_the_request(server: ProtocolServer, client: httpx.Client) -> None:
    def echo(req: RecordedRequest) -> Reply:
        key = req.headers.get("authorization")
        status = 401 if key == "Bearer bad" else 200
        return Reply.json({"model": req.json()["model"], "key": key}, status=status)

    server.on("POST", "/chat", Reply.json({"first": True}), default=echo)
    assert client.post(server.url("/chat"), json={"model": "a"}).json() == {"first": True}
    r = client.post(server.url("/chat"), json={"model": "b"}, headers={"Authorization": "Bearer k"})
    assert r.json() == {"model": "b", "key": "Bearer k"}
    r = client.post(
        server.url("/chat"), json={"model": "c"}, headers={"Authorization": "Bearer bad"}
    )
    assert r.status_code == 401


def test_callable_that_raises_gives_500_and_is_kept(
    server: ProtocolServer, client: httpx.Client
) -> None:
    def boom(req: RecordedRequest) -> Reply:
        raise KeyError("nope")

    server.on("GET", "/boom", boom)
    r = client.get(server.url("/boom"))
    assert r.status_code == 500
    assert "KeyError" in r.json()["error"]["message"]
    assert isinstance(server.errors[0], KeyError)


def test_records_method_path_query_headers_body(
    server: ProtocolServer, client: httpx.Client
) -> None:
    server.on("PUT", "/proxy/v1/items", Reply.json({}, status=201))
    before = time.monotonic()
    r = client.put(
        server.url("/proxy/v1/items?alpha=1&beta=two&empty="),
        json={"hello": ["w", 1]},
        headers={"X-Api-Key": "sk-1", "x-multi": "a"},
    )
    assert r.status_code == 201
    (req,) = server.requests_to("/proxy/v1/items")
    assert (req.method, req.path, req.index) == ("PUT", "/proxy/v1/items", 0)
    assert req.query == {"alpha": "1", "beta": "two", "empty": ""}
    assert req.headers.get("x-api-key") == req.headers["X-API-KEY"] == "sk-1"
    assert "content-type" in req.headers
    assert req.headers.get("missing") is None
    assert req.json() == {"hello": ["w", 1]}
    assert json.loads(req.body) == {"hello": ["w", 1]}
    assert before <= req.started <= time.monotonic()
    assert server.requests_to("/proxy/v1/items", method="get") == []
    assert server.requests_to("/proxy/v1/items", method="PUT") == [req]


def test_chunked_request_body_is_read(server: ProtocolServer, client: httpx.Client) -> None:
    server.on("POST", "/up", default=lambda req: Reply.raw(req.body, content_type="x/y"))

    def gen() -> Iterator[bytes]:
        yield b"hello "
        yield b"world"

    r = client.post(server.url("/up"), content=gen())
    assert r.content == b"hello world"
    assert server.requests[0].headers["transfer-encoding"] == "chunked"
    assert client.post(server.url("/up"), content=b"again").content == b"again"


def test_raw_malformed_body_and_head(server: ProtocolServer, client: httpx.Client) -> None:
    server.on("GET", "/bad", Reply.raw(b'{"truncated": '))
    r = client.get(server.url("/bad"))
    assert r.content == b'{"truncated": '
    assert r.headers["content-length"] == "14"
    with pytest.raises(json.JSONDecodeError):
        r.json()
    server.on("HEAD", "/h", Reply.json({"x": 1}), Reply.json({}, status=204))
    r = client.head(server.url("/h"))
    assert r.status_code == 200
    assert r.content == b""
    assert client.head(server.url("/h")).status_code == 204
    assert server.connections == 1


def test_keep_alive_reuses_one_connection(server: ProtocolServer, client: httpx.Client) -> None:
    server.on("POST", "/k", default=Reply.json({"ok": True}))
    for i in range(20):
        assert client.post(server.url("/k"), json={"i": i}).json() == {"ok": True}
    assert server.connections == 1
    assert [r.json()["i"] for r in server.requests] == list(range(20))


def test_reset_clears_everything(server: ProtocolServer, client: httpx.Client) -> None:
    server.on("GET", "/r", default=Reply.text("x"))
    client.get(server.url("/r"))
    client.get(server.url("/nothing"))
    server.reset()
    assert (server.requests, server.unexpected, server.connections) == ([], [], 0)
    assert (server.in_flight, server.max_in_flight) == (0, 0)
    assert client.get(server.url("/r")).status_code == 500  # script cleared
    assert server.requests[0].index == 0


# -- streaming -------------------------------------------------------------------------


def test_sse_split_every_byte_arrives_intact(server: ProtocolServer, client: httpx.Client) -> None:
    reply = Reply.sse(
        ["hello", {"choices": [1]}, ("ping", "p"), "two\nlines", b": comment\n\n", "[DONE]"],
        split=1,
    )
    expected = (
        b"data: hello\n\n"
        b'data: {"choices": [1]}\n\n'
        b"event: ping\ndata: p\n\n"
        b"data: two\ndata: lines\n\n"
        b": comment\n\n"
        b"data: [DONE]\n\n"
    )
    assert reply.chunks is not None
    assert len(reply.chunks) == len(expected)
    server.on("POST", "/s", reply)
    with client.stream("POST", server.url("/s")) as r:
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["transfer-encoding"] == "chunked"
        assert b"".join(r.iter_bytes()) == expected


def test_split_modes() -> None:
    assert Reply.sse(["a", "b"]).chunks == [b"data: a\n\n", b"data: b\n\n"]
    assert Reply.sse(b"data: xyz\n\n", split=4).chunks == [b"data", b": xy", b"z\n\n"]
    assert Reply.sse(b"abcdef", split=[2, 2, 5, 99]).chunks == [b"ab", b"cde", b"f"]
    nd = Reply.ndjson([{"a": 1}, [2]])
    assert nd.chunks == [b'{"a": 1}\n', b"[2]\n"]
    assert nd.headers == {"content-type": "application/x-ndjson"}
    assert Reply.ndjson([{"a": 1}], split=1).chunks == [bytes([b]) for b in b'{"a": 1}\n']
    hdr = Reply.json({}, headers={"Content-Type": "application/problem+json"}).headers
    assert hdr == {"Content-Type": "application/problem+json"}


def test_ndjson_with_chunk_delay(server: ProtocolServer, client: httpx.Client) -> None:
    server.on("POST", "/api/chat", Reply.ndjson([{"i": 0}, {"i": 1}, {"i": 2}], chunk_delay=0.05))
    start = time.monotonic()
    with client.stream("POST", server.url("/api/chat")) as r:
        lines = [json.loads(line) for line in r.iter_lines()]
    assert lines == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert 0.1 <= time.monotonic() - start < 1.0


def test_cut_after_breaks_the_chunked_body(server: ProtocolServer, client: httpx.Client) -> None:
    server.on("POST", "/s", Reply.sse(["a", "b", "c", "d"], cut_after=2), default=Reply.text("ok"))
    got: list[bytes] = []

    def read_all() -> None:
        with client.stream("POST", server.url("/s")) as r:
            for chunk in r.iter_bytes():
                got.append(chunk)

    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        read_all()
    assert b"".join(got) == b"data: a\n\ndata: b\n\n"
    assert server.in_flight == 0
    assert client.post(server.url("/s")).text == "ok"  # the cut connection was not reused
    assert server.connections == 2


def test_cut_after_all_chunks_still_omits_terminator(
    server: ProtocolServer, client: httpx.Client
) -> None:
    server.on("GET", "/n", Reply.ndjson([{"a": 1}, {"b": 2}], cut_after=2, chunk_delay=0.01))
    lines: list[str] = []

    def read_all() -> None:
        with client.stream("GET", server.url("/n")) as r:
            lines.extend(r.iter_lines())

    with pytest.raises(httpx.RemoteProtocolError):
        read_all()
    assert lines == ['{"a": 1}', '{"b": 2}']


def test_cut_after_without_chunks_truncates_body(
    server: ProtocolServer, client: httpx.Client
) -> None:
    server.on("GET", "/t", Reply.json({"long": "x" * 50}, cut_after=10))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url("/t"))


# -- faults and timing -----------------------------------------------------------------


def test_drop_closes_without_reply(server: ProtocolServer, client: httpx.Client) -> None:
    server.on("POST", "/d", Reply.drop_connection(), Reply.json({"ok": 1}))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(server.url("/d"), json={"x": 1})
    assert server.requests[0].json() == {"x": 1}
    assert server.in_flight == 0
    assert client.post(server.url("/d")).json() == {"ok": 1}
    assert server.connections == 2


def test_delay_is_honoured(server: ProtocolServer, client: httpx.Client) -> None:
    server.on("GET", "/slow", Reply.text("z", delay=0.2), Reply.text("z", delay=1.0))
    start = time.monotonic()
    assert client.get(server.url("/slow")).text == "z"
    assert 0.2 <= time.monotonic() - start < 0.9
    with pytest.raises(httpx.ReadTimeout):
        client.get(server.url("/slow"), timeout=0.1)


def test_wait_for_holds_request_in_flight(server: ProtocolServer, client: httpx.Client) -> None:
    gate = threading.Event()
    server.on("GET", "/held", Reply.json({"done": True}, wait_for=gate))
    result: list[httpx.Response] = []
    t = threading.Thread(target=lambda: result.append(client.get(server.url("/held"))))
    t.start()
    wait_until(lambda: server.in_flight == 1)
    time.sleep(0.05)
    assert result == []
    assert server.in_flight == 1
    gate.set()
    t.join(2)
    assert result[0].json() == {"done": True}
    assert (server.in_flight, server.max_in_flight) == (0, 1)


def test_max_in_flight_counts_concurrent_requests(server: ProtocolServer) -> None:
    gate = threading.Event()
    server.on("POST", "/c", default=Reply.json({}, wait_for=gate))
    statuses: list[int] = []
    lock = threading.Lock()
    with httpx.Client(trust_env=False, verify=False, timeout=5.0) as c:

        def call() -> None:
            status = c.post(server.url("/c")).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=call) for _ in range(20)]
        for t in threads:
            t.start()
        wait_until(lambda: server.in_flight == 20)
        assert server.max_in_flight == 20
        gate.set()
        for t in threads:
            t.join(5)
    assert statuses == [200] * 20
    assert (server.in_flight, server.max_in_flight, len(server.requests)) == (0, 20, 20)
    assert sorted(r.index for r in server.requests) == list(range(20))


def test_200_concurrent_connections_held_at_once(server: ProtocolServer) -> None:
    gate = threading.Event()
    server.on("POST", "/many", default=lambda req: Reply.json(req.json(), wait_for=gate))
    results: dict[int, int] = {}

    def call(i: int) -> None:
        # One client per thread: httpcore's shared pool is slow with 200 waiters.
        with httpx.Client(trust_env=False, verify=False, timeout=10.0) as c:
            results[i] = c.post(server.url("/many"), json={"i": i}).json()["i"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    wait_until(lambda: server.in_flight == 200, timeout=5.0)
    gate.set()
    for t in threads:
        t.join(5)
    assert results == {i: i for i in range(200)}
    assert (server.connections, server.max_in_flight, server.in_flight) == (200, 200, 0)


def test_in_flight_is_zero_once_client_has_the_reply(server: ProtocolServer) -> None:
    # A client-side gate of 3 must never be seen as 4 by the server, even momentarily.
    server.on("POST", "/g", default=Reply.sse(["a", "b"]))
    server.on("GET", "/g", default=Reply.text("x"))
    sem = threading.Semaphore(3)
    with httpx.Client(trust_env=False, verify=False, timeout=5.0) as c:

        def call(i: int) -> None:
            for _ in range(15):
                with sem:
                    if i % 2:
                        c.post(server.url("/g")).read()
                    else:
                        c.get(server.url("/g"))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(server.requests) == 120
    assert server.max_in_flight <= 3


def test_async_client_stream(server: ProtocolServer) -> None:
    server.on("POST", "/a", Reply.sse([{"n": i} for i in range(5)], split=3))

    async def main() -> bytes:
        async with (
            httpx.AsyncClient(trust_env=False, verify=False) as c,
            c.stream("POST", server.url("/a"), json={}) as r,
        ):
            return b"".join([chunk async for chunk in r.aiter_bytes()])

    assert asyncio.run(main()) == b"".join(f'data: {{"n": {i}}}\n\n'.encode() for i in range(5))


# -- lifecycle -------------------------------------------------------------------------


def test_stop_is_prompt_with_blocked_request_and_idle_connections() -> None:
    server = ProtocolServer().start()
    never = threading.Event()
    server.on("GET", "/block", Reply.text("x", wait_for=never))
    server.on("GET", "/ok", Reply.text("ok"))
    idle = httpx.Client(trust_env=False, verify=False)
    assert idle.get(server.url("/ok")).text == "ok"  # leaves an idle keep-alive connection
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            httpx.get(server.url("/block"), trust_env=False, verify=False, timeout=5.0)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=blocked)
    t.start()
    wait_until(lambda: server.in_flight == 1)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 1.0
    t.join(2)
    assert len(errors) == 1
    assert server.in_flight == 0
    idle.close()
    server.stop()  # idempotent


def test_stop_unbinds_and_base_url_needs_start() -> None:
    server = ProtocolServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.base_url.startswith("http://127.0.0.1:")
        port = int(server.base_url.rsplit(":", 1)[1])
        assert server.url("v1/x") == f"{server.base_url}/v1/x"
        with pytest.raises(RuntimeError):
            server.start()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_ipv6_loopback() -> None:
    try:
        server = ProtocolServer(host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        server.on("GET", "/six", Reply.text("6"))
        assert server.base_url.startswith("http://[::1]:")
        assert httpx.get(server.url("/six"), trust_env=False, verify=False).text == "6"
    finally:
        server.stop()


def test_callable_stopping_server_does_not_hang() -> None:
    server = ProtocolServer().start()
    server.on("GET", "/stop", lambda req: (server.stop(), Reply.text("bye"))[1])
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url("/stop"), trust_env=False, verify=False, timeout=3.0)


def test_pytest_fixture(protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/f", Reply.text("fixture"))
    assert httpx.get(protocol_server.url("/f"), trust_env=False, verify=False).text == "fixture"
    assert len(protocol_server.requests) == 1
