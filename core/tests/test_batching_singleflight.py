"""Embedding batching and single-flight against the loopback server: how many requests it
saw, and that every caller got its own vector (threads and asyncio)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import attrs
import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

EMBED = "/v1/embeddings"
CHAT = "/v1/chat/completions"


def vector_of(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)) % 997)]


def _vectors(delay: float = 0.0) -> object:
    def reply(request: RecordedRequest) -> Reply:
        body = request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return Reply.json(wire.embeddings([vector_of(t) for t in texts]), delay=delay)

    return reply


@pytest.fixture
def server(protocol_server: ProtocolServer) -> ProtocolServer:
    protocol_server.on("POST", EMBED, default=_vectors())
    return protocol_server


def sizes(server: ProtocolServer) -> list[int]:
    return [len(r.json()["input"]) for r in server.requests_to(EMBED)]


def test_100_threads_batch_into_5_to_10_requests(backend: Backend, server: ProtocolServer) -> None:
    backend.enable_embedding_batching(max_batch_size=20, batch_timeout=0.2)
    texts = [f"This is text sample {i}" for i in range(100)]
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda t: backend.embed(input=t, model="e"), texts))
    assert [r.embedding for r in results] == [vector_of(t) for t in texts]
    assert 5 <= len(server.requests) <= 10
    assert sum(sizes(server)) == 100 and max(sizes(server)) <= 20
    stats = backend.get_batching_stats()
    assert stats["batched_requests"] == 100 and stats["batches"] == len(server.requests)


def test_100_tasks_batch_into_5_to_10_requests(backend: Backend, server: ProtocolServer) -> None:
    backend.enable_embedding_batching(max_batch_size=20, batch_timeout=0.2)
    texts = [f"text {i}" for i in range(100)]

    async def main() -> list[list[float]]:
        out = await asyncio.gather(*(backend.aembed(input=t, model="e") for t in texts))
        return [r.embedding for r in out]

    assert asyncio.run(main()) == [vector_of(t) for t in texts]
    assert 5 <= len(server.requests) <= 10


def test_guide_embedding_block_shape(backend: Backend, server: ProtocolServer) -> None:
    """The guide's 10 threaded single embeds with max_batch_size=20: one request."""
    backend.enable_embedding_batching(max_batch_size=20, batch_timeout=0.5, auto_batching=True)
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [
            pool.submit(backend.embed, input=f"This is text sample {i}", model="e")
            for i in range(10)
        ]
        results = [f.result() for f in futures]
    assert len(results) == 10
    assert len(server.requests) <= 2
    assert backend.get_batching_stats()["avg_batch_size"] >= 5


def test_models_and_formats_never_share_a_batch(backend: Backend, server: ProtocolServer) -> None:
    backend.enable_embedding_batching(max_batch_size=50, batch_timeout=0.2)
    calls = [("a", "float", None), ("b", "float", None), ("a", "float", 64)] * 4
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(
            pool.map(
                lambda c: backend.embed(
                    input=f"t-{c[0]}", model=c[0], encoding_format=c[1],
                    **({"dimensions": c[2]} if c[2] else {}),
                ),
                calls,
            )
        )  # fmt: skip
    seen = {(r.json()["model"], r.json().get("dimensions")) for r in server.requests_to(EMBED)}
    assert seen == {("a", None), ("b", None), ("a", 64)}
    assert len(server.requests) == 3


def test_failed_batch_fails_every_caller_and_retries_once_as_a_batch(
    make_backend: object, protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_retries=1)  # type: ignore[operator]
    protocol_server.on("POST", EMBED, default=wire.error_reply(500))
    backend.enable_embedding_batching(max_batch_size=8, batch_timeout=0.5)
    errs: list[BaseException] = []

    def call(i: int) -> None:
        try:
            backend.embed(input=f"x{i}", model="e")
        except errors.BackendError as exc:
            errs.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(errs) == 8 and all(isinstance(e, errors.ServerError) for e in errs)
    assert len(protocol_server.requests) == 2  # one batch, retried once: not 8 requests


def test_cancelling_one_caller_spares_the_others(backend: Backend, server: ProtocolServer) -> None:
    server.on("POST", EMBED, default=_vectors(delay=0.2))
    backend.enable_embedding_batching(max_batch_size=4, batch_timeout=0.05)

    async def main() -> list[object]:
        tasks = [asyncio.ensure_future(backend.aembed(input=f"t{i}", model="e")) for i in range(4)]
        await asyncio.sleep(0.1)  # the batch is in flight
        tasks[0].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    out = asyncio.run(main())
    assert isinstance(out[0], asyncio.CancelledError)
    assert [r.embedding for r in out[1:]] == [vector_of(f"t{i}") for i in (1, 2, 3)]  # type: ignore[attr-defined]
    assert len(server.requests) == 1


def test_server_batch_limit(backend: Backend, server: ProtocolServer) -> None:
    backend.spec = attrs.evolve(backend.spec, max_batch_inputs=4)
    backend.enable_embedding_batching(max_batch_size=20, batch_timeout=0.2)
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda i: backend.embed(input=f"t{i}", model="e"), range(12)))
    assert max(sizes(server)) <= 4 and sum(sizes(server)) == 12


def test_bad_batching_settings(backend: Backend) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="max_batch_size"):
        backend.enable_embedding_batching(max_batch_size=0)
    with pytest.raises(errors.InvalidArgumentError, match="batch_timeout"):
        backend.enable_embedding_batching(batch_timeout=-1)


def test_single_flight_embeds_threads(backend: Backend, server: ProtocolServer) -> None:
    server.on("POST", EMBED, default=_vectors(delay=0.3))
    with ThreadPoolExecutor(max_workers=8) as pool:
        out = list(pool.map(lambda _: backend.embed(input="same", model="e"), range(8)))
    assert {tuple(r.embedding) for r in out} == {tuple(vector_of("same"))}
    assert len(server.requests) == 1
    backend.single_flight = False
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: backend.embed(input="same", model="e"), range(4)))
    assert len(server.requests) == 5


def test_single_flight_deterministic_chats_async(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=Reply.json(wire.chat_completion("hi"), delay=0.3))
    msgs = [{"role": "user", "content": "Hello"}]

    async def main(**kw: object) -> list[str]:
        out = await asyncio.gather(
            *(backend.achat(messages=msgs, model="m", **kw) for _ in range(5))  # type: ignore[arg-type]
        )
        return [r.text for r in out]

    assert asyncio.run(main(temperature=0)) == ["hi"] * 5
    assert len(protocol_server.requests) == 1
    asyncio.run(main())  # no temperature: each call its own
    assert len(protocol_server.requests) == 6
    with backend.stream(messages=msgs, model="m", temperature=0):
        pass  # streams are never shared (nor sent until read)


def test_guide_class_reaches_the_settings(backend: Backend, server: ProtocolServer) -> None:
    from ipfs_accelerate_py.api_backends.base import GuideClient

    client = GuideClient(backend=backend)
    client.single_flight = False
    assert backend.single_flight is False
    client.enable_embedding_batching(max_batch_size=3, batch_timeout=0.01)
    assert client.get_batching_stats()["max_batch_size"] == 3
    assert client.get_cache_stats() == backend.get_cache_stats()


def test_a_long_input_list_is_cut_at_the_server_limit(
    backend: Backend, server: ProtocolServer
) -> None:
    backend.spec = attrs.evolve(backend.spec, max_batch_inputs=4)
    texts = [f"t{i}" for i in range(10)]
    out = backend.embed(input=texts, model="e")
    assert out.embeddings == [vector_of(t) for t in texts]
    assert sizes(server) == [4, 4, 2]
    assert out.usage is not None and out.usage.prompt_tokens == 3 * 8

    async def main() -> list[list[float]]:
        return (await backend.aembed(input=texts, model="e")).embeddings

    assert asyncio.run(main()) == [vector_of(t) for t in texts]
    assert sizes(server) == [4, 4, 2] * 2
