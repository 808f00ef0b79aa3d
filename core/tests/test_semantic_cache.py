"""The semantic cache on the loopback backend, with the real local MiniLM embedder: what hits,
what never does, and how many requests the server saw."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.errors import InvalidArgumentError
from ipfs_accelerate_py.resilience.cache import SemanticCache
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
embedder_mod = pytest.importorskip("ipfs_accelerate_py.embedder")
try:
    embedder_mod.find_model_dir("mini")
except Exception:  # pragma: no cover - only where scripts/setup did not install the weights
    pytest.skip("all-MiniLM-L6-v2 weights not installed", allow_module_level=True)

CHAT = "/v1/chat/completions"
PAIRS = Path(__file__).parents[1] / "src/ipfs_accelerate_py/testing/cache_pairs.tsv"


def _echo(request: RecordedRequest) -> Reply:
    body = request.json()
    if body.get("stream"):
        return Reply.sse(wire.chat_stream(["an ", "answer"]))
    return Reply.json(wire.chat_completion(f"answer to {body['messages'][-1]['content']}"))


@pytest.fixture
def server(protocol_server: ProtocolServer) -> ProtocolServer:
    protocol_server.on("POST", CHAT, default=_echo)
    return protocol_server


@pytest.fixture
def cached(backend: Backend, server: ProtocolServer) -> Backend:
    backend.enable_semantic_cache(similarity_threshold=0.88, cache_size=100, ttl=60)
    return backend


def ask(backend: Backend, text: str, **kw: object) -> str:
    return backend.chat(messages=[{"role": "user", "content": text}], model="m", **kw).text


def pairs() -> list[tuple[str, str, str, str]]:
    rows = [line.rstrip("\n").split("\t") for line in PAIRS.read_text("utf-8").splitlines()]
    return [(r[0], r[1], r[2], r[3]) for r in rows if r and not r[0].startswith("#")]


def test_guide_pair_hits_at_default_not_at_guide_setting(
    cached: Backend, server: ProtocolServer
) -> None:
    first = ask(cached, "Explain quantum computing")
    assert ask(cached, "What is quantum computing?") == first  # cosine 0.883 >= 0.88
    assert ask(cached, "Explain  quantum computing") == first  # exact (whitespace) fast path
    assert len(server.requests) == 1
    stats = cached.get_cache_stats()
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (2, 1, 66.67)
    cached.enable_semantic_cache(similarity_threshold=0.92)  # the guide's setting: a new cache
    ask(cached, "Explain quantum computing")
    ask(cached, "What is quantum computing?")
    assert len(server.requests) == 3


def test_scope_model_temperature_system_and_turns(cached: Backend, server: ProtocolServer) -> None:
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    cached.chat(messages=msgs, model="m")
    cached.chat(messages=msgs, model="other-model")
    cached.chat(messages=msgs, model="m", temperature=0)
    cached.chat(messages=msgs, model="m", system="Answer in French")
    cached.chat(messages=msgs, model="m", max_tokens=5)
    earlier = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    cached.chat(messages=earlier + msgs, model="m")
    assert len(server.requests) == 6  # none answered from another's entry
    for kw in ({}, {"temperature": 0}, {"system": "Answer in French"}, {"max_tokens": 5}):
        cached.chat(messages=msgs, model="m", **kw)  # type: ignore[arg-type]
    assert len(server.requests) == 6
    assert cached.get_cache_stats()["hits"] == 4


def test_sampled_requests_only_when_opted_in(backend: Backend, server: ProtocolServer) -> None:
    backend.enable_semantic_cache()
    ask(backend, "Tell me a joke", temperature=0.7)
    ask(backend, "Tell me a joke", temperature=0.7)
    assert len(server.requests) == 2
    assert backend.get_cache_stats()["misses"] == 0  # not looked up at all
    backend.enable_semantic_cache(cache_sampled=True)
    ask(backend, "Tell me a joke", temperature=0.7)
    ask(backend, "Tell me a joke", temperature=0.7)
    assert len(server.requests) == 3


def test_labelled_pairs_guard_and_hit_rate() -> None:
    """Every must-not pair stays a miss at the default threshold; paraphrases mostly hit."""
    from ipfs_accelerate_py.caching import DEFAULT_SIMILARITY_THRESHOLD
    from ipfs_accelerate_py.embedder import local_embedder

    rows = pairs()
    assert len(rows) >= 300
    emb = local_embedder()
    a = emb.embed([r[2] for r in rows])
    b = emb.embed([r[3] for r in rows])
    hits: dict[str, list[bool]] = {}
    for i, (label, category, left, right) in enumerate(rows):
        cache = SemanticCache(
            similarity_threshold=DEFAULT_SIMILARITY_THRESHOLD, cache_size=10, ttl=None,
            clock=FakeClock(),
        )  # fmt: skip
        from ipfs_accelerate_py.types import ChatResponse

        cache.put("s", left, a[i], ChatResponse(text="x"), 0.0)
        hit = cache.search("s", right, b[i]) is not None
        hits.setdefault(label if label == "hit" else category, []).append(hit)
        if label == "miss":
            assert not hit, (category, left, right)
    assert {"number", "date", "quote", "entity", "negation", "order", "related"} <= set(hits)
    assert sum(hits["hit"]) / len(hits["hit"]) >= 0.8


def test_guard_refuses_near_misses_through_the_backend(
    cached: Backend, server: ProtocolServer
) -> None:
    for a, b in [
        ("Sort the list in ascending order", "Sort the list in descending order"),
        ("Convert USD to EUR", "Convert EUR to USD"),
        ("Coffee with sugar", "Coffee without sugar"),
        ("How do I enable JavaScript in Chrome?", "How do I disable JavaScript in Chrome?"),
        ("Convert 5 km to miles", "Convert 50 km to miles"),
        ('Translate "good morning" to French', 'Translate "good night" to French'),
        ("What is the capital of France?", "What is the capital of Germany?"),
        ("What happened on January 1?", "What happened on February 1?"),
    ]:
        assert ask(cached, a) != ask(cached, b)
    assert len(server.requests) == 16


def test_ttl_and_lru(backend: Backend, server: ProtocolServer, clock: FakeClock) -> None:
    backend.enable_semantic_cache(cache_size=2, ttl=10)
    ask(backend, "What is gravity?")
    clock.advance(11)
    ask(backend, "What is gravity?")  # expired
    assert len(server.requests) == 2
    ask(backend, "What is a volcano?")
    ask(backend, "What is a mortgage?")  # evicts gravity, the least recently used
    ask(backend, "What is a volcano?")
    ask(backend, "What is gravity?")
    assert len(server.requests) == 5
    assert backend.get_cache_stats()["size"] == 2


def test_stream_is_stored_and_replayed(cached: Backend, server: ProtocolServer) -> None:
    msgs = [{"role": "user", "content": "Explain recursion"}]
    with cached.stream(messages=msgs, model="m") as s:
        first = list(s)
    with cached.stream(
        messages=[{"role": "user", "content": "What is recursion?"}], model="m"
    ) as s:
        again = list(s)
    assert len(server.requests) == 1
    assert "".join(c.text for c in again) == "".join(c.text for c in first) == "an answer"
    assert again[-1].done and again[-1].finish_reason == "stop"
    assert cached.chat(messages=msgs, model="m").text == "an answer"  # chat hits a streamed entry
    assert len(server.requests) == 1


def test_async_chat_and_stream_hit(cached: Backend, server: ProtocolServer) -> None:
    async def main() -> list[str]:
        msgs = [{"role": "user", "content": "How do vaccines work?"}]
        first = (await cached.achat(messages=msgs, model="m")).text
        second = (
            await cached.achat(
                messages=[{"role": "user", "content": "How does a vaccine work?"}], model="m"
            )
        ).text
        async with cached.astream(messages=msgs, model="m") as s:
            third = "".join([c.text async for c in s])
        return [first, second, third]

    first, second, third = asyncio.run(main())
    assert first == second == third
    assert len(server.requests) == 1


def test_cost_savings_from_the_price_file(cached: Backend, server: ProtocolServer) -> None:
    cached.usage.pricing.set_price("loopback", "m", 1_000_000.0, 1_000_000.0)
    ask(cached, "What is inflation?")
    ask(cached, "What is inflation?")
    usage = wire.usage()
    expected = float(usage["prompt_tokens"] + usage["completion_tokens"])
    assert cached.get_cache_stats()["cost_savings"] == pytest.approx(expected)


def test_persistent_cache_survives_restart(
    make_backend: Callable[..., Backend], server: ProtocolServer, tmp_path: Path
) -> None:
    path = str(tmp_path / "cache.sqlite")
    first = make_backend()
    first.enable_semantic_cache(path=path)
    ask(first, "What is photosynthesis?")
    first.disable_semantic_cache()
    second = make_backend()
    second.enable_semantic_cache(path=path)
    assert ask(second, "Explain photosynthesis") == "answer to What is photosynthesis?"
    assert len(server.requests) == 1


def test_bad_settings_are_named(backend: Backend) -> None:
    for kw, name in [
        ({"similarity_threshold": 1.5}, "similarity_threshold"),
        ({"cache_size": 0}, "cache_size"),
        ({"ttl": -1}, "ttl"),
        ({"embedding_model": ""}, "embedding_model"),
    ]:
        with pytest.raises(InvalidArgumentError, match=name):
            backend.enable_semantic_cache(**kw)  # type: ignore[arg-type]
    assert backend.get_cache_stats()["enabled"] is False


def test_backend_embedder(backend: Backend, server: ProtocolServer) -> None:
    """``"<backend>:<model>"`` embeds through that backend's pipeline."""

    def vectors(request: RecordedRequest) -> Reply:
        texts = request.json()["input"]
        return Reply.json(wire.embeddings([[1.0, float("quantum" in t)] for t in texts]))

    server.on("POST", "/v1/embeddings", default=vectors)
    backend.enable_semantic_cache(embedding_model="loopback:emb", similarity_threshold=0.99)
    ask(backend, "Explain quantum computing")
    ask(backend, "What is quantum computing?")
    assert [r.path for r in server.requests].count(CHAT) == 1
    assert len(server.requests_to("/v1/embeddings")) == 2


def test_heavy_imports_wait_for_the_first_embedding(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import ipfs_accelerate_py\n"
        "from conftest import LoopbackPlugin\n"
        "from ipfs_accelerate_py import plugins\n"
        "from ipfs_accelerate_py.core import get_backend\n"
        "plugins.register(LoopbackPlugin())\n"
        "b = get_backend('loopback', api_key='k' * 16, base_url='http://127.0.0.1:9/v1')\n"
        "b.enable_embedding_batching()\n"
        "print(sorted(m for m in ('numpy', 'tokenizers', 'safetensors') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_large_scope_search_finds_what_a_full_scan_finds() -> None:
    """Past 16k rows a scope is searched through sign codes first; the results agree."""
    import numpy as np

    from ipfs_accelerate_py.types import ChatResponse

    rng = np.random.default_rng(3)
    n = 20_000
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cache = SemanticCache(
        similarity_threshold=0.9, cache_size=n, ttl=None, clock=FakeClock(), guard=False
    )
    for i in range(n):
        cache.put("s", f"p{i}", vectors[i], ChatResponse(text=str(i)), 0.0)
    for j in rng.integers(0, n, 50):
        probe = vectors[j] + 0.015 * rng.standard_normal(384).astype(np.float32)
        probe /= np.linalg.norm(probe)
        assert float(probe @ vectors[j]) >= 0.9
        hit = cache.search("s", f"q{j}", probe)
        assert hit is not None and hit.text == str(j)
    far = rng.standard_normal(384).astype(np.float32)
    assert cache.search("s", "far", far / np.linalg.norm(far)) is None


def test_threads_share_one_cache(cached: Backend, server: ProtocolServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    questions = ["What is gravity?", "Explain gravity", "What is a volcano?"] * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda q: ask(cached, q), questions))
    stats = cached.get_cache_stats()
    assert stats["hits"] + stats["misses"] == len(questions)
    assert len(server.requests) == stats["misses"] and stats["size"] <= 3
    assert {a for a, q in zip(answers, questions, strict=True) if "volcano" in q} == {
        "answer to What is a volcano?"
    }
