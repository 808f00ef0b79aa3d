"""Shared resilience state in a real redis-server, across 8 forked worker processes.

Every worker builds its own loopback backend (its own gate, breaker, key pool, usage) with
``shared_state=<url>``; the provider is one ProtocolServer; the assertions are on what that
server saw. Skips (saying why) only when no redis-server binary can be found.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.errors import CircuitOpenError
from ipfs_accelerate_py.resilience.shared import flush_all
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.redis_server import MISSING, RedisServer, find_redis_server
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

redis = pytest.importorskip("redis", reason="the redis client is core's [redis] extra")
pytestmark = [
    pytest.mark.skipif(find_redis_server() is None, reason=MISSING),
    pytest.mark.timeout(120),
]

CHAT = "/v1/chat/completions"
NAME = "loopback"  # conftest's loopback plugin
SECRET = "sk-loop-0123456789SECRETabcd"  # conftest's default key
WORKERS = 8
FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the module (each test uses its own namespace)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def namespace(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh namespace; a generous command timeout, since 8 workers may share 2 CPUs (a
    timeout means "decide locally", which would let a loaded test machine over-admit)."""
    monkeypatch.setenv("IPFS_ACCELERATE_REDIS_TIMEOUT", "3")
    return f"t{uuid.uuid4().hex[:10]}"


def _slow(delay: float) -> Reply:
    return Reply.json(openai_wire.chat_completion("ok"), delay=delay)


def _backend(server: ProtocolServer, url: str, ns: str, **options: Any) -> Any:
    return get_backend(
        NAME,
        api_key=SECRET,
        base_url=server.url("/v1"),
        shared_state=url,
        shared_namespace=ns,
        **options,
    )


def _chat(backend: Any, **options: Any) -> str:
    return str(backend.chat(messages=openai_wire.user(), model="m", **options).text)


def _run_workers(target: Callable[..., Any], *args: Any, n: int = WORKERS) -> list[Any]:
    """Run ``target(i, *args)`` in ``n`` forked processes; their results (or errors)."""
    results = FORK.SimpleQueue()  # put() is synchronous: safe before os._exit

    def main(i: int) -> None:
        try:
            results.put((i, target(i, *args)))
        except BaseException as err:  # reported to the parent
            results.put((i, f"error: {type(err).__name__}: {err}"))
        finally:
            flush_all()  # what an exiting process does at exit (os._exit skips atexit)
            os._exit(0)  # skip pytest's atexit machinery in the child

    procs = [FORK.Process(target=main, args=(i,)) for i in range(n)]
    for proc in procs:
        proc.start()
    out = dict(results.get() for _ in procs)
    for proc in procs:
        proc.join(10)
    return [out[i] for i in range(n)]


# --- the cluster-wide concurrency cap ------------------------------------------------------
def _concurrent_worker(i: int, server: ProtocolServer, url: str, ns: str) -> int:
    backend = _backend(server, url, ns, max_concurrent_requests=3)
    done = []

    def one() -> None:
        for _ in range(3):
            done.append(_chat(backend))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(done)


def test_the_provider_never_sees_more_than_the_shared_cap(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    protocol_server.on("POST", CHAT, default=_slow(0.03))
    done = _run_workers(_concurrent_worker, protocol_server, redis_server.url, namespace)
    assert done == [12] * WORKERS
    assert len(protocol_server.requests_to(CHAT)) == 12 * WORKERS
    assert protocol_server.max_in_flight == 3


def _async_worker(i: int, server: ProtocolServer, url: str, ns: str) -> int:
    async def main() -> int:
        backend = _backend(server, url, ns, max_concurrent_requests=4)
        replies = await asyncio.gather(
            *(backend.achat(messages=openai_wire.user(), model="m") for _ in range(10))
        )
        await backend.aclose()
        return len(replies)

    return asyncio.run(main())


def test_async_callers_share_the_cap_too(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    protocol_server.on("POST", CHAT, default=_slow(0.02))
    done = _run_workers(_async_worker, protocol_server, redis_server.url, namespace, n=4)
    assert done == [10] * 4
    assert protocol_server.max_in_flight == 4


# --- rpm across workers ------------------------------------------------------------------
def _rpm_worker(i: int, server: ProtocolServer, url: str, ns: str) -> int:
    # a compressed clock: "per minute" is a 5 s window here
    backend = _backend(server, url, ns, rpm=120, rate_window=5.0, max_concurrent_requests=50)
    return sum(1 for _ in range(20) if _chat(backend))


def test_rpm_holds_in_every_window_across_workers(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    protocol_server.on("POST", CHAT, default=openai_wire.chat_reply("ok"))
    assert _run_workers(_rpm_worker, protocol_server, redis_server.url, namespace) == [20] * 8
    times = sorted(r.started for r in protocol_server.requests_to(CHAT))
    assert len(times) == 160
    worst = max(sum(1 for t in times if start <= t < start + 5.0) for start in times)
    assert worst <= 120
    assert times[-1] - times[0] >= 4.5  # the 121st request really waited for the window


# --- a 429 rests the key for every worker -----------------------------------------------
def _late_worker(i: int, server: ProtocolServer, url: str, ns: str) -> str:
    backend = _backend(server, url, ns)
    return _chat(backend)


def test_a_429_rests_the_key_in_every_worker(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    limited = Reply.json({"error": {"message": "slow down"}}, 429, {"retry-after": "2"})
    protocol_server.on("POST", CHAT, limited, default=openai_wire.chat_reply("ok"))
    first = _backend(protocol_server, redis_server.url, namespace)
    ran = threading.Thread(target=_chat, args=(first,))
    ran.start()  # it gets the 429, rests the key (shared), waits 2 s and retries
    keys = first.default_endpoint.keys
    while not keys.stats()["default"]["rate_limited"]:  # the 429 is accounted (and queued)
        time.sleep(0.005)
    assert first.default_endpoint.shared.store.flush()
    assert _run_workers(_late_worker, protocol_server, redis_server.url, namespace) == ["ok"] * 8
    ran.join()
    seen = protocol_server.requests_to(CHAT)
    assert len(seen) == 1 + 1 + WORKERS
    assert all(r.started - seen[0].started >= 1.9 for r in seen[1:])


# --- the breaker opened by one worker fails fast in all -------------------------------
def _breaker_worker(i: int, server: ProtocolServer, url: str, ns: str) -> str:
    backend = _backend(server, url, ns, failure_threshold=2, reset_timeout=30.0, max_retries=0)
    try:
        _chat(backend)
    except CircuitOpenError as err:
        return f"open {err.retry_after is not None and err.retry_after > 20} {err.retry_after}"
    return "sent"


def test_a_breaker_opened_by_one_worker_fails_fast_in_the_others(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    protocol_server.on("POST", CHAT, default=Reply.json({"error": {"message": "down"}}, 500))
    first = _backend(
        protocol_server,
        redis_server.url,
        namespace,
        failure_threshold=2,
        reset_timeout=30.0,
        max_retries=0,
    )
    for _ in range(2):
        with pytest.raises(Exception, match="down"):
            _chat(first)
    assert first.default_endpoint.shared.store.flush()
    out = _run_workers(_breaker_worker, protocol_server, redis_server.url, namespace)
    assert all(o.startswith("open True") for o in out), out
    assert len(protocol_server.requests_to(CHAT)) == 2


def test_half_open_admits_one_probe_cluster_wide(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    protocol_server.on(
        "POST",
        CHAT,
        Reply.json({"error": {"message": "down"}}, 500),
        default=_slow(0.5),
    )
    opts = {"failure_threshold": 1, "reset_timeout": 0.3, "success_threshold": 1}
    backends = [
        _backend(protocol_server, redis_server.url, namespace, max_retries=0, **opts)
        for _ in range(4)
    ]
    with pytest.raises(Exception, match="down"):
        _chat(backends[0])
    assert backends[0].default_endpoint.shared.store.flush()
    time.sleep(0.35)  # now half-open
    outcomes: list[str] = []

    def probe(b: Any) -> None:
        try:
            outcomes.append(_chat(b))
        except CircuitOpenError:
            outcomes.append("refused")

    threads = [threading.Thread(target=probe, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused", "refused", "refused"]
    assert len(protocol_server.requests_to(CHAT)) == 2


# --- usage totals --------------------------------------------------------------------------
def _usage_worker(i: int, server: ProtocolServer, url: str, ns: str) -> int:
    backend = _backend(server, url, ns)
    for _ in range(i + 1):
        _chat(backend)
    assert backend.default_endpoint.shared.store.flush(5.0)
    return i + 1


def test_usage_totals_are_the_sum_of_what_the_provider_returned(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    protocol_server.on("POST", CHAT, default=openai_wire.chat_reply("ok"))
    calls = sum(_run_workers(_usage_worker, protocol_server, redis_server.url, namespace))
    from ipfs_accelerate_py.resilience.shared_usage import shared_usage

    rows = shared_usage(redis_server.url, namespace)
    assert len(rows) == 1
    row = rows[0]
    assert (row.backend, row.endpoint, row.model) == (NAME, "default", "m")
    assert row.requests == calls == len(protocol_server.requests_to(CHAT))
    assert (row.prompt_tokens, row.completion_tokens) == (9 * calls, 12 * calls)
    # the key is named by a hash, never in clear: nothing in Redis holds the secret
    client = redis.Redis.from_url(redis_server.url)
    for key in client.scan_iter(f"{namespace}:*"):
        assert SECRET.encode() not in key
        if client.type(key) == b"hash":
            assert all(SECRET.encode() not in k for k in client.hkeys(key))
    assert SECRET not in row.key and SECRET[-8:] not in row.key
    # any process reads the totals: `ipfs-accelerate usage --shared URL`
    import json
    import subprocess
    import sys

    cli = [sys.executable, "-m", "ipfs_accelerate_py.cli", "usage", "--shared", redis_server.url]
    shown = subprocess.run(
        [*cli, "--namespace", namespace, "--json"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    [listed] = json.loads(shown.stdout)["rows"]
    assert (listed["requests"], listed["prompt_tokens"]) == (calls, 9 * calls)
    table = subprocess.run(
        [*cli, "--namespace", namespace], capture_output=True, text=True, timeout=60
    )
    assert NAME in table.stdout and SECRET not in table.stdout + table.stderr


# --- a killed worker's slots come back ------------------------------------------------------
def test_a_killed_workers_slots_come_back_after_the_lease_expires(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    from ipfs_accelerate_py.resilience.redis_state import RedisState

    hold = threading.Event()
    protocol_server.on(
        "POST",
        CHAT,
        Reply.json({}, wait_for=hold),
        Reply.json({}, wait_for=hold),
        default=openai_wire.chat_reply("ok"),
    )
    store = RedisState(redis_server.url, namespace=namespace, lease_ttl=1.0)

    def holder() -> None:
        backend = get_backend(
            NAME,
            api_key=SECRET,
            base_url=protocol_server.url("/v1"),
            shared_state=store,
            max_concurrent_requests=2,
        )
        threads = [threading.Thread(target=_chat, args=(backend,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    child = FORK.Process(target=holder)
    child.start()
    while len(protocol_server.requests_to(CHAT)) < 2:
        time.sleep(0.01)
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join()
    backend = get_backend(
        NAME,
        api_key=SECRET,
        base_url=protocol_server.url("/v1"),
        shared_state=store,
        max_concurrent_requests=2,
    )
    started = time.monotonic()
    assert _chat(backend) == "ok"
    waited = time.monotonic() - started
    assert 0.3 < waited < 3.0  # blocked until the dead worker's leases expired
    hold.set()


# --- Redis stopped and started mid-run -----------------------------------------------------
def test_redis_stopped_and_restarted_mid_run_fails_no_call(
    loopback_plugin: Any,
    protocol_server: ProtocolServer,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol_server.on("POST", CHAT, default=_slow(0.005))
    with RedisServer() as own:
        backend = _backend(protocol_server, own.url, namespace, max_concurrent_requests=4)
        store = backend.default_endpoint.shared.store
        errors: list[BaseException] = []
        stop = threading.Event()
        count = [0]

        def loop() -> None:
            while not stop.is_set():
                try:
                    _chat(backend)
                    count[0] += 1
                except BaseException as err:
                    errors.append(err)

        with caplog.at_level(logging.WARNING, logger="ipfs_accelerate_py.shared"):
            threads = [threading.Thread(target=loop) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.3)
            own.stop()
            time.sleep(0.8)
            own.start()
            time.sleep(1.5)  # past the retry interval: back on shared state
            stop.set()
            for t in threads:
                t.join()
        assert not errors
        assert count[0] > 50
        said = [r.getMessage() for r in caplog.records]
        assert sum("unreachable" in m for m in said) == 1  # one outage, one warning
        assert sum("is back" in m for m in said) == 1
        assert store.flush(3.0)
        rows = store.usage()  # Redis restarted empty; calls made while it was down resent
        assert 0 < rows[0].requests <= count[0]


def test_an_answer_sent_before_the_outage_began_does_not_end_it(
    namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A command in flight when Redis fails may still be answered after another command's
    failure began the outage: that answer is older news and must not end it (it used to log a
    false "is back", and the next failure of the same outage warned a second time)."""
    from ipfs_accelerate_py.resilience.redis_state import RedisState
    from ipfs_accelerate_py.resilience.state import Limits

    with RedisServer() as own:
        store = RedisState(own.url, namespace=namespace, timeout=3.0, retry_interval=0.3)
        verdicts: list[str] = []

        def admit() -> None:
            verdicts.append(store.admit("s", "k", Limits(), 0).verdict)

        admit()  # the store now holds one pooled connection
        admin = redis.Redis.from_url(own.url)
        with caplog.at_level(logging.WARNING, logger="ipfs_accelerate_py.shared"):
            admin.config_set("maxclients", 2)  # the store's and admin's: a third is refused
            admin.client_pause(1500, all=True)  # a command on the pooled connection waits
            threads = [threading.Thread(target=admit) for _ in range(2)]
            for t in threads:  # one waits on the pooled connection, one fails to connect
                t.start()
            for t in threads:
                t.join()
            own.stop()  # the same outage goes on
            time.sleep(0.4)
            admit()  # past the retry interval: tried, failed, decided locally
            own.start()
            time.sleep(0.4)
            admit()  # answered by Redis: the outage is over
        store.close()
    assert verdicts == ["go"] * 5  # no call failed (the refused ones decided locally)
    said = [r.getMessage() for r in caplog.records]
    changes = [
        "down" if "unreachable" in m else "up" for m in said if "unreachable" in m or "is back" in m
    ]
    assert changes == ["down", "up"]  # one outage: one warning, one recovery


def test_no_shared_state_by_default(backend: Any) -> None:
    ep = backend.default_endpoint
    assert ep.shared is None and ep.gate.cluster is None


def test_bad_shared_settings_are_refused(loopback_plugin: Any) -> None:
    from ipfs_accelerate_py.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="rpm"):
        get_backend(NAME, api_key=SECRET, base_url="http://127.0.0.1:9/v1", rpm=10)
    with pytest.raises(ConfigurationError, match="redis://"):
        get_backend(NAME, api_key=SECRET, base_url="http://127.0.0.1:9/v1", shared_state="x")
    with pytest.raises(ConfigurationError, match="rpm"):
        get_backend(
            NAME,
            api_key=SECRET,
            base_url="http://127.0.0.1:9/v1",
            shared_state="redis://127.0.0.1:9/0",
            rpm=-1,
        )


# --- in one process: two backends stand for two processes (their local state is apart) ---
def test_a_key_rested_elsewhere_sends_the_call_to_another_key(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    limited = Reply.json({"error": {"message": "slow down"}}, 429, {"retry-after": "30"})
    protocol_server.on("POST", CHAT, limited, default=openai_wire.chat_reply("ok"))
    a, b = (_backend(protocol_server, redis_server.url, namespace) for _ in range(2))
    for backend in (a, b):
        backend.add_api_key("second", "sk-second-0123456789abcdefXYZ")
    assert _chat(a) == "ok"  # 429 on the default key, the retry goes to "second"
    assert a.default_endpoint.shared.store.flush()
    assert _chat(b) == "ok" and _chat(b) == "ok"  # b never tries the rested key
    keys = [r.headers["authorization"] for r in protocol_server.requests_to(CHAT)]
    assert keys[0] == f"Bearer {SECRET}"
    assert all(k.endswith("XYZ") for k in keys[1:]) and len(keys) == 4


def test_the_retry_budget_is_shared(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    from ipfs_accelerate_py.errors import BackendError

    protocol_server.on("POST", CHAT, default=Reply.json({"error": {"message": "down"}}, 503))
    opts = {"max_retries": 3, "initial_retry_delay": 0.0, "failure_threshold": 1000}
    a, b = (_backend(protocol_server, redis_server.url, namespace, **opts) for _ in range(2))
    for backend in (a, b):
        backend.default_endpoint.budget.capacity = 10  # two retries' worth (cost 5 each)
    with pytest.raises(BackendError):
        _chat(a)  # 1 try + 2 retries drain the shared bucket
    with pytest.raises(BackendError, match="retry budget"):
        _chat(b)  # b's own bucket is full, the shared one is empty: no retry
    assert len(protocol_server.requests_to(CHAT)) == 3 + 1


def test_tpm_waits_for_tokens_and_is_corrected_from_usage(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    protocol_server.on("POST", CHAT, default=openai_wire.chat_reply("ok"))  # 21 tokens each
    backend = _backend(protocol_server, redis_server.url, namespace, tpm=60, rate_window=1.0)
    started = time.monotonic()
    for _ in range(6):
        _chat(backend, max_tokens=5)
        backend.default_endpoint.shared.store.flush()
    elapsed = time.monotonic() - started
    # 6 x 21 = 126 real tokens at 60 per second: at least ~1 s of waiting, not the estimate's
    assert 0.8 < elapsed < 6.0


def test_the_cache_store_serves_one_process_from_another(redis_server: RedisServer) -> None:
    np = pytest.importorskip("numpy")
    from ipfs_accelerate_py.resilience.redis_cache import CacheStore, RedisCacheStore

    ns = f"c{uuid.uuid4().hex[:8]}"
    writer, reader = RedisCacheStore(redis_server.url, namespace=ns), None
    reader = RedisCacheStore(redis_server.url, namespace=ns)
    assert isinstance(writer, CacheStore)
    writer.set("exact", "prompt-1", b"answer", ttl=0.3)
    assert reader.get("exact", "prompt-1") == b"answer"
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((50, 16)).astype(np.float32)
    writer.add_vectors("s", [(f"id{i}", vecs[i], f"p{i}".encode()) for i in range(50)], ttl=0.3)
    near = vecs[7] + 0.01 * rng.standard_normal(16).astype(np.float32)  # a "paraphrase"
    best = reader.search("s", near, k=2)
    assert best[0][0] == "id7" and best[0][2] == b"p7" and best[0][1] > 0.99
    assert best[0][1] >= best[1][1]
    time.sleep(0.35)
    assert reader.get("exact", "prompt-1") is None
    assert reader.search("s", near) == []  # expired
    writer.clear("s")


def _cache_worker(i: int, server: ProtocolServer, url: str, ns: str) -> int:
    """Worker 0 asks first; the others ask the same or a similar question afterwards."""
    backend = _backend(server, url, ns)
    backend.enable_semantic_cache(similarity_threshold=0.85, ttl=60)
    question = "Explain quantum computing" if i == 0 else "Explain quantum computing briefly"
    if i:
        time.sleep(1.0)  # after worker 0's answer is stored
    reply = backend.chat(messages=[{"role": "user", "content": question}], model="m")
    assert reply.text == "ok"
    return int(backend.get_cache_stats()["hits"])


def test_one_processs_answer_serves_anothers_paraphrase(
    loopback_plugin: Any, protocol_server: ProtocolServer, redis_server: RedisServer, namespace: str
) -> None:
    pytest.importorskip("tokenizers")
    from ipfs_accelerate_py.embedder import local_embedder

    try:
        local_embedder("mini")
    except Exception as exc:  # the model's weights are not installed here
        pytest.skip(f"the local embedder cannot load: {exc}")
    protocol_server.on("POST", CHAT, default=openai_wire.chat_reply("ok"))
    hits = _run_workers(_cache_worker, protocol_server, redis_server.url, namespace, n=3)
    assert len(protocol_server.requests_to(CHAT)) == 1  # the other workers' answers: Redis
    assert sorted(hits) == [0, 1, 1]


def test_local_state_is_a_state_store_and_import_loads_no_redis() -> None:
    import subprocess
    import sys

    from ipfs_accelerate_py.resilience.state import LocalState, StateStore

    assert isinstance(LocalState(), StateStore)
    code = (
        "import sys, ipfs_accelerate_py; from ipfs_accelerate_py.core import get_backend; "
        "print('redis' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _steady_worker(i: int, server: ProtocolServer, url: str, ns: str, seconds: float) -> str:
    backend = _backend(server, url, ns, max_concurrent_requests=4)
    ok = failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            _chat(backend)
            ok += 1
        except Exception:
            failed += 1
    return f"{ok > 0} {failed}"


def test_redis_restarted_under_8_workers_fails_no_call(
    loopback_plugin: Any, protocol_server: ProtocolServer, namespace: str
) -> None:
    protocol_server.on("POST", CHAT, default=_slow(0.01))
    with RedisServer() as own:

        def bounce() -> None:
            time.sleep(0.8)
            own.stop()
            time.sleep(0.8)
            own.start()

        bouncer = threading.Thread(target=bounce)
        bouncer.start()
        out = _run_workers(_steady_worker, protocol_server, own.url, namespace, 3.5)
        bouncer.join()
    assert out == ["True 0"] * WORKERS


def test_a_slow_redis_delays_calls_by_its_timeout_only(
    loopback_plugin: Any,
    protocol_server: ProtocolServer,
    redis_server: RedisServer,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IPFS_ACCELERATE_REDIS_TIMEOUT", "0.2")
    protocol_server.on("POST", CHAT, default=openai_wire.chat_reply("ok"))
    backend = _backend(protocol_server, redis_server.url, namespace)
    assert _chat(backend) == "ok"
    admin = redis.Redis.from_url(redis_server.url)
    admin.client_pause(1500)  # every other client's command now waits 1.5 s
    started = time.monotonic()
    results = [_chat(backend) for _ in range(5)]
    elapsed = time.monotonic() - started
    assert results == ["ok"] * 5
    assert elapsed < 1.2  # one timeout (0.2 s), then local state until the retry interval
    time.sleep(1.6)
    assert _chat(backend) == "ok"
