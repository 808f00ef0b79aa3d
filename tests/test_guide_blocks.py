"""Every Python block of the quickstart guide, run as written against loopback servers.

Only credentials and base URLs are set, through the environment (see ``guide_world``). The
blocks run in one namespace in guide order, because later blocks use names earlier ones made
(``messages``, ``client``); each block is its own test, and asking for one runs the blocks
before it first. Blocks that show shell commands, and the features another issue builds,
are skipped with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from guide_world import (
    CLAUDE_PIECES,
    CLAUDE_TEXT,
    GEMINI_IMAGE_TEXT,
    GEMINI_PIECES,
    GEMINI_TEXT,
    GROQ_BULLETS,
    GROQ_JSON,
    GROQ_PIECES,
    GROQ_TEXT,
    IMAGE_URL,
    OLLAMA_PIECES,
    OLLAMA_TEXT,
    OPENAI_TEXT,
    OPENAI_VECTOR,
    TGI_CHAT_TEXT,
    TGI_TEXT,
    GuideWorld,
    gemini_wire,
)

from ipfs_accelerate_py.testing.guide import CodeBlock, python_blocks, run_block

BLOCKS = python_blocks()
SHELL = re.compile(r"^\s*python3? \S+\.py\b", re.MULTILINE)
ISSUE_10 = ("5. Semantic Caching", "6. Request Batching")


def skip_reason(block: CodeBlock, world: GuideWorld | None = None) -> str | None:
    """Why the runner does not execute ``block`` (None: it runs)."""
    if SHELL.search(block.code):
        return (
            "shell commands (the guide's test scripts), fenced as python: covered by "
            "`ipfs-accelerate check` and tests/test_cli_check.py"
        )
    if any(block.under(h) for h in ISSUE_10) and not _has_semantic_cache():
        return "issue 10"
    if world is not None and block.under("Using Ollama API") and not world.ollama_on_guide_port:
        return (
            "the block's metadata names http://localhost:11434/api and port 11434 is taken "
            "(an Ollama server is running here?)"
        )
    return None


def _has_semantic_cache() -> bool:
    from ipfs_accelerate_py.api_backends import GuideClient
    from ipfs_accelerate_py.backend import Backend

    return hasattr(Backend, "enable_semantic_cache") or hasattr(
        GuideClient, "enable_semantic_cache"
    )


@attrs.define
class GuideRun:
    """The blocks run so far, in order, in one namespace."""

    world: GuideWorld
    namespace: dict[str, Any] = attrs.field(factory=lambda: {"__name__": "__guide__"})
    printed: dict[int, str] = attrs.field(factory=dict)
    failed: dict[int, BaseException] = attrs.field(factory=dict)
    done: int = 0

    def through(self, index: int) -> str:
        """Run every block up to ``index`` not run yet; return what block ``index`` printed."""
        while self.done <= index:
            block = BLOCKS[self.done]
            if skip_reason(block, self.world) is None:
                try:
                    self.printed[self.done] = run_block(block, self.namespace)
                except BaseException as exc:
                    self.failed[self.done] = exc
            self.done += 1
        if index in self.failed:
            raise self.failed[index]
        earlier = sorted(i for i in self.failed if i < index)
        assert not earlier or index in self.printed, f"blocks {earlier} failed first"
        return self.printed[index]


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuideRun]:
    """The servers, the environment, and a working directory holding the guide's test.jpg."""
    workdir: Path = tmp_path_factory.mktemp("guide")
    (workdir / "test.jpg").write_bytes(gemini_wire.JPEG)
    world = GuideWorld()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        world.start(mp)
        try:
            yield GuideRun(world)
        finally:
            world.stop()


def _lines(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


def _check_metadata(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == "" and ns["metadata"]["ollama_model"] == "llama3"


def _check_openai(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines(OPENAI_TEXT, str(OPENAI_VECTOR), str([IMAGE_URL]))
    chat, embed, image = world.openai.requests
    assert chat.json() == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant"},
            {"role": "user", "content": "Hello, how are you?"},
        ],
        "temperature": 0.7,
        "max_tokens": 100,
    }
    assert embed.json() == {
        "model": "text-embedding-3-small",
        "input": ["This is a sample text"],
        "encoding_format": "float",
    }
    assert image.json()["size"] == "1024x1024" and image.json()["n"] == 1
    assert {r.headers["authorization"] for r in world.openai.requests} == {"Bearer your-key-here"}


def _check_claude(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines(CLAUDE_TEXT, "".join(CLAUDE_PIECES))
    plain, streamed = world.claude.requests
    assert streamed.json()["stream"] is True and "stream" not in plain.json()
    assert {r.headers["x-api-key"] for r in world.claude.requests} == {"your-key-here"}


def _check_ollama(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines("Available models: 2 found", OLLAMA_TEXT, "".join(OLLAMA_PIECES))
    assert [r.path for r in world.ollama.requests] == ["/api/tags", "/api/chat", "/api/chat"]


def _check_tgi(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines(TGI_TEXT, TGI_CHAT_TEXT)
    assert [r.path for r in world.tgi.requests] == ["/generate", "/v1/chat/completions"]


def _check_tei(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    lines = out.splitlines()
    assert lines[:2] == ["Embedding dimensionality: 384", "Generated 2 embeddings"]
    label, value = lines[2].split(": ")
    assert label == "Similarity between texts" and float(value) == pytest.approx(0.5**0.5)
    assert [r.path for r in world.tei.requests] == ["/embed", "/info", "/embed"]


def _check_groq(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    lines = out.splitlines()
    assert lines[0] == GROQ_TEXT
    assert lines[1:3] == GROQ_BULLETS.splitlines()
    assert lines[3].startswith("Usage statistics: {'prompt_tokens': 18, 'completion_tokens': 40")
    assert lines[4] == GROQ_JSON
    assert lines[5] == "Streaming response: " + "".join(GROQ_PIECES)
    assert lines[-1] == "Done!"
    assert len(world.groq.requests_to("/openai/v1/chat/completions")) == 4


def _check_gemini(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines(
        GEMINI_TEXT, GEMINI_IMAGE_TEXT, "".join(GEMINI_PIECES), "Response complete"
    )
    _chat, image, stream = world.gemini.requests
    assert image.path.endswith("/gemini-1.5-pro-vision:generateContent")
    assert image.json()["contents"][0]["parts"][0]["inlineData"]["mimeType"] == "image/jpeg"
    assert stream.query == {"alt": "sse"}


def _check_groq_models(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    lines = out.splitlines()
    assert lines[:5] == [
        "Total models available: 8",
        "Chat models available: 6",
        "Vision models available: 1",
        "Audio models available: 2",
        "Is mistral-saba-24b compatible with chat: True",
    ]
    assert lines[5] == "Model: llama-3.1-8b-instant" and len(lines) == 5 + 3 * 4


def _check_usage(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    # a fresh client, one chat with llama3-8b-8192 (18 + 12 tokens), the guide's `messages`
    assert out == _lines("Total tokens used: 30", "Estimated cost: $2e-06", "Total requests: 1")
    last = world.groq.requests_to("/openai/v1/chat/completions")[-1].json()
    assert last["messages"] == ns["messages"]
    assert ns["groq_api"].get_usage_stats()["total_requests"] == 0  # reset by the block


def _check_queueing(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == ""
    client = ns["client"]
    assert (client.max_concurrent_requests, client.queue_size) == (3, 50)
    last = world.openai.requests[-1]
    assert last.headers["authorization"] == "Bearer different-api-key"  # the new endpoint's key
    assert client.get_usage_stats(ns["endpoint_id"])["total_requests"] == 1


def _check_backoff(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines("Current circuit state: CLOSED")
    client = ns["client"]
    assert (client.max_retries, client.max_retry_delay, client.failure_threshold) == (5, 30, 5)


def _check_dotenv(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == ""
    assert ns["client"].backend.settings.api_key == "sk-env-openai-0000000000000000"


def _check_handlers(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == ""
    assert callable(ns["process_prompt"])  # run in tests/test_guide_handlers.py


def _check_errors(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines(GROQ_TEXT)


def _check_queue_info(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines("Queue size: 0 requests", "Active requests: 0", "Queue capacity: 100")
    assert world.openai.requests[-1].headers["x-client-request-id"] == "req_12345"


def _check_priority(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines(
        "High priority queue: 0 requests",
        "Normal priority queue: 0 requests",
        "Low priority queue: 0 requests",
    )


def _check_breaker(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert out == _lines("Circuit state: CLOSED", "Recent failures: 0", "Failure rate: 0.00%")
    assert ns["client"].circuit_success_threshold == 3


def _check_keys(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert world.openai.requests[-1].headers["authorization"] == "Bearer sk-def456..."
    assert "Key: key2\n  Requests: 1\n  Tokens: 21\n" in out
    assert "sk-def456" not in out  # stats never show a key


def _check_semantic_cache(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    # runs only once enable_semantic_cache exists (issue 10): the block must run to the end
    assert all(
        line.split(":")[0] in ("Cache hits", "Cache misses", "Hit rate", "Estimated savings")
        for line in out.splitlines()
    )
    assert 1 <= len(world.claude.requests) <= 2  # the second question may be a cache hit


def _check_batching(out: str, world: GuideWorld, ns: dict[str, Any]) -> None:
    assert len(ns["results"]) == 10
    assert 1 <= len(world.openai.requests) <= 10  # batched into fewer requests, or not
    assert all(
        line.split(":")[0]
        in ("Batches processed", "Requests batched", "Average batch size", "Estimated savings")
        for line in out.splitlines()
    )


CHECKS: dict[str, Callable[[str, GuideWorld, dict[str, Any]], None]] = {
    "Method 3: Metadata Dictionary": _check_metadata,
    "Using OpenAI API": _check_openai,
    "Using Claude API": _check_claude,
    "Using Ollama API": _check_ollama,
    "Using Hugging Face TGI": _check_tgi,
    "Using Hugging Face TEI": _check_tei,
    "Using Groq API": _check_groq,
    "Using Gemini API": _check_gemini,
    "Groq API Models and Capabilities": _check_groq_models,
    "1. Usage Tracking and Statistics": _check_usage,
    "2. Request Queueing and Concurrency Control": _check_queueing,
    "3. Exponential Backoff with Circuit Breaker": _check_backoff,
    "4. Environment Variables and .env Support": _check_dotenv,
    "Creating Endpoint Handlers": _check_handlers,
    "Error Handling": _check_errors,
    "1. Queue and Backoff System (COMPLETED)": _check_queue_info,
    "2. Priority Queue System": _check_priority,
    "3. Circuit Breaker Pattern": _check_breaker,
    "4. API Key Multiplexing": _check_keys,
    "5. Semantic Caching": _check_semantic_cache,
    "6. Request Batching": _check_batching,
}


def test_every_python_block_is_covered() -> None:
    """Each block is either checked here or skipped for a stated reason: none is forgotten."""
    for block in BLOCKS:
        assert block.headings[-1] in CHECKS or SHELL.search(block.code), block.headings


@pytest.mark.parametrize(
    "index", range(len(BLOCKS)), ids=[f"line{b.line}-{b.headings[-1]}" for b in BLOCKS]
)
def test_guide_block(guide: GuideRun, index: int) -> None:
    block = BLOCKS[index]
    reason = skip_reason(block, guide.world)
    if reason is not None:
        pytest.skip(reason)
    before = {n: len(s.requests) for n, s in guide.world.servers.items()}
    out = guide.through(index)
    CHECKS[block.headings[-1]](out, _Since(guide.world, before), guide.namespace)  # type: ignore[arg-type]
    assert guide.world.unexpected() == {}


class _Since:
    """The world's servers, seeing only the requests a block made (for its own checks)."""

    def __init__(self, world: GuideWorld, before: dict[str, int]) -> None:
        self._world = world
        self._before = before

    def __getattr__(self, name: str) -> Any:
        return _ServerSince(self._world.servers[name], self._before[name])


class _ServerSince:
    def __init__(self, server: Any, start: int) -> None:
        self._server = server
        self._start = start

    @property
    def requests(self) -> list[Any]:
        return self._server.requests[self._start :]

    def requests_to(self, path: str) -> list[Any]:
        return [r for r in self.requests if r.path == path]
