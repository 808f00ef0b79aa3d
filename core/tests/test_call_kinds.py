"""The second call kind: a plain Python callable (an SDK, a local model) under the same
pipeline as HTTP calls — gate, breaker, keys (credential objects), retries, usage — sync and
async, plain and streamed, with the SDK's exceptions mapped by the call's ``classify``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from ipfs_accelerate_py import errors, plugins
from ipfs_accelerate_py.calls import CallableCall, Credential
from ipfs_accelerate_py.config import BackendSpec
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.types import ChatRequest, ChatResponse, ModelInfo, StreamChunk, Usage

NAME = "pycall"
SPEC = BackendSpec(
    name=NAME,
    package="ipfs-accelerate-pycall-test",
    default_base_url="sdk://local",
    api_key_env=("PYCALL_KEY",),
    model_required=False,
    http=False,
)


class Throttled(Exception):
    """What the fake SDK raises when rate limited."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"slow down for {retry_after}s")
        self.retry_after = retry_after


class Denied(Exception):
    """What the fake SDK raises for bad credentials."""


def classify(exc: BaseException) -> errors.BackendError | None:
    if isinstance(exc, Throttled):
        return errors.RateLimitError(str(exc), status_code=429, retry_after=exc.retry_after)
    if isinstance(exc, Denied):
        return errors.AuthenticationError(f"denied: {exc}", status_code=403)
    return None


class FakeSDK:
    """Scripted outcomes, one per call: an exception to raise or a text to answer."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.calls: list[Credential | None] = []
        self.threads: list[str] = []
        self.lock = threading.Lock()

    def answer(self, credential: Credential | None, text: str) -> ChatResponse:
        with self.lock:
            self.calls.append(credential)
            self.threads.append(threading.current_thread().name)
            outcome = self.script.pop(0) if self.script else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        who = credential.id if credential else "anonymous"
        return ChatResponse(text=f"{outcome}: {text} as {who}", usage=Usage.of(3, 4))

    def chunks(self, credential: Credential | None, text: str) -> Iterator[StreamChunk]:
        self.answer(credential, text)  # scripted failures happen before the first chunk
        for word in text.split():
            yield StreamChunk(text=word + " ")
        yield StreamChunk(usage=Usage.of(5, 0))
        yield StreamChunk(done=True, finish_reason="stop", usage=Usage(0, 7, 0))


class PyCallPlugin:
    """A backend served by Python code, the model for S3 through boto3."""

    def __init__(self, sdk: FakeSDK) -> None:
        self.sdk = sdk

    @hookimpl
    def register_backends(self, register: Callable[[BackendSpec], None]) -> None:
        register(SPEC)

    @hookimpl
    def chat(self, request: ChatRequest) -> CallableCall:
        text = request.messages[-1].text()
        return CallableCall(lambda cred: self.sdk.answer(cred, text), classify=classify)

    @hookimpl
    def stream(self, request: ChatRequest) -> CallableCall:
        text = request.messages[-1].text()
        return CallableCall(
            lambda cred: self.sdk.chunks(cred, text), classify=classify, stream=True
        )

    @hookimpl
    def list_models(self) -> CallableCall:
        pages = [["a", "b"], ["c"]]

        def page(n: int) -> CallableCall:
            return CallableCall(
                lambda cred: [ModelInfo(id=i) for i in pages[n]],
                next_page=(lambda _: page(n + 1)) if n + 1 < len(pages) else None,
            )

        return page(0)


@pytest.fixture
def sdk() -> Iterator[FakeSDK]:
    sdk = FakeSDK()
    plugin = PyCallPlugin(sdk)
    plugins.register(plugin)
    yield sdk
    plugins.unregister(plugin)


@pytest.fixture
def backend(sdk: FakeSDK, clock: FakeClock) -> Any:
    backend = get_backend(NAME, api_key=Credential("secret-0123456789", id="AKIA1"), clock=clock)
    yield backend
    backend.close()


USER = [{"role": "user", "content": "hello there"}]


def test_a_callable_answers_with_the_leased_credential(backend: Any, sdk: FakeSDK) -> None:
    reply = backend.chat(messages=USER)
    assert reply.text == "ok: hello there as AKIA1"
    assert sdk.calls[0] == Credential("secret-0123456789", id="AKIA1")
    stats = backend.get_usage_stats()
    assert stats["total_requests"] == 1 and stats["total_tokens"] == 7


def test_sdk_exceptions_are_classified_and_retried(
    backend: Any, sdk: FakeSDK, clock: FakeClock
) -> None:
    sdk.script = [Throttled(2.0), RuntimeError("socket hiccup"), "ok"]
    backend.add_api_key("second", Credential("other-secret-987654", id="AKIA2"))
    with pytest.raises(errors.ServerError) as info:  # an unknown exception is not retried
        backend.chat(messages=USER)
    assert "RuntimeError: socket hiccup" in str(info.value)
    assert info.value.provider == NAME and info.value.request_id
    # the 429 moved the call to the other key at once, no sleep
    assert [c.id for c in sdk.calls if c] == ["AKIA1", "AKIA2"]
    assert clock.sleeps == []


def test_authentication_errors_are_not_retried_and_do_not_trip_the_breaker(
    backend: Any, sdk: FakeSDK
) -> None:
    sdk.script = [Denied("bad key")] * 10
    for _ in range(6):
        with pytest.raises(errors.AuthenticationError, match="Authentication error"):
            backend.chat(messages=USER)
    assert len(sdk.calls) == 6 and backend.circuit_state == "CLOSED"


def test_server_failures_open_the_breaker_without_further_calls(backend: Any, sdk: FakeSDK) -> None:
    backend.failure_threshold = 2
    backend.max_retries = 0
    sdk.script = [TimeoutError("slow"), OSError("reset"), "ok"]
    with pytest.raises(errors.TimeoutError):
        backend.chat(messages=USER)
    with pytest.raises(errors.ConnectionError):
        backend.chat(messages=USER)
    with pytest.raises(errors.CircuitOpenError):
        backend.chat(messages=USER)
    assert len(sdk.calls) == 2


def test_async_runs_the_callable_off_the_event_loop(backend: Any, sdk: FakeSDK) -> None:
    async def main() -> list[str]:
        replies = await asyncio.gather(*(backend.achat(messages=USER) for _ in range(4)))
        return [r.text for r in replies]

    texts = asyncio.run(main())
    assert texts == ["ok: hello there as AKIA1"] * 4
    assert all(name != "MainThread" for name in sdk.threads)


def test_an_async_version_is_awaited_when_given(clock: FakeClock) -> None:
    seen: list[Credential | None] = []

    async def afn(cred: Credential | None) -> ChatResponse:
        seen.append(cred)
        return ChatResponse(text="async")

    spec = attrs.evolve(SPEC, name="pycall_async")

    class AsyncPlugin:
        @hookimpl
        def register_backends(self, register: Callable[[BackendSpec], None]) -> None:
            register(spec)

        @hookimpl
        def chat(self) -> CallableCall:
            return CallableCall(lambda cred: ChatResponse(text="sync"), afn=afn)

    plugin = AsyncPlugin()
    plugins.register(plugin)
    try:
        backend = get_backend("pycall_async", api_key="plain-key-0123456789", clock=clock)
        assert asyncio.run(backend.achat(messages=USER)).text == "async"
        assert backend.chat(messages=USER).text == "sync"
        assert seen == [Credential("plain-key-0123456789")]
    finally:
        plugins.unregister(plugin)


def test_streams_from_a_callable_merge_usage_and_retry_before_the_first_chunk(
    backend: Any, sdk: FakeSDK, clock: FakeClock
) -> None:
    sdk.script = [Throttled(0.5), "ok"]
    chunks = list(backend.stream(messages=USER))
    assert "".join(c.text for c in chunks) == "hello there "
    final = chunks[-1]
    assert final.done and final.finish_reason == "stop"
    assert final.usage is not None and (
        final.usage.prompt_tokens,
        final.usage.completion_tokens,
    ) == (5, 7)
    assert clock.sleeps == [0.5]  # one key: the retry waited out the retry-after


def test_async_streams_from_a_callable(backend: Any) -> None:
    async def main() -> list[str]:
        return [c.text async for c in backend.astream(messages=USER)]

    assert "".join(asyncio.run(main())) == "hello there "


def test_callable_listings_follow_pages(backend: Any) -> None:
    assert [m.id for m in backend.list_models()] == ["a", "b", "c"]
    assert [m.id for m in asyncio.run(backend.alist_models())] == ["a", "b", "c"]


def test_credentials_never_show_their_secret(backend: Any) -> None:
    cred = Credential("secret-0123456789", id="AKIA1")
    assert "secret-0123456789" not in repr(cred)
    assert "secret-0123456789" not in repr(backend.get_key_usage_stats())


def test_a_slow_callable_does_not_block_other_tasks(backend: Any, sdk: FakeSDK) -> None:
    original = sdk.answer

    def slow(cred: Credential | None, text: str) -> ChatResponse:
        time.sleep(0.2)
        return original(cred, text)

    sdk.answer = slow  # type: ignore[method-assign]

    async def main() -> float:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await backend.achat(messages=USER)
        task.cancel()
        return ticks

    assert asyncio.run(main()) >= 5
