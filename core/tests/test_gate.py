"""Tests for the per-endpoint priority gate (threads, asyncio tasks, several loops)."""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import gc
import random
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from ipfs_accelerate_py.errors import ConfigurationError, QueueFullError, TimeoutError
from ipfs_accelerate_py.resilience.gate import Priority, PriorityGate
from ipfs_accelerate_py.testing.waiting import await_until, wait_until

WAIT = 10.0  # upper bound for every blocking wait: a bug fails the test instead of hanging it
HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW
KEY = {HIGH: "high_priority", NORMAL: "normal_priority", LOW: "low_priority"}

T = TypeVar("T")


# --------------------------------------------------------------------------- helpers


def spawn(fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
    """Run ``fn(*args)`` in a new daemon thread; the future re-raises its exception."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


class LoopThread:
    """An event loop running in a background thread, for async waiters next to threads."""

    def __enter__(self) -> LoopThread:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def __exit__(self, *exc_info: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


def admit(gate: PriorityGate, priority: Priority, order: list[str], label: str) -> None:
    """Thread waiter: take a slot, record the admission, give the slot back."""
    gate.acquire(priority, timeout=WAIT)
    order.append(label)
    gate.release()


async def aadmit(gate: PriorityGate, priority: Priority, order: list[str], label: str) -> None:
    """Async waiter: take a slot, record the admission, give the slot back."""
    await gate.aacquire(priority, timeout=WAIT)
    order.append(label)
    gate.release()


def hold(gate: PriorityGate, admitted: list[str], label: str, until: threading.Event) -> None:
    """Thread waiter that keeps its slot until ``until`` is set."""
    with gate.slot(timeout=WAIT):
        admitted.append(label)
        assert until.wait(WAIT)


async def ahold(
    gate: PriorityGate, admitted: list[str], label: str, until: threading.Event
) -> None:
    """Async waiter that keeps its slot until ``until`` is set, without blocking its loop."""
    async with gate.aslot(timeout=WAIT):
        admitted.append(label)
        await await_until(until.is_set)


def idle(max_concurrent: int, capacity: int) -> dict[str, int]:
    return {
        "size": 0,
        "active_requests": 0,
        "capacity": capacity,
        "max_concurrent": max_concurrent,
    }


# ------------------------------------------------------------------ concurrency bound


def test_threads_and_tasks_on_two_loops_share_one_bound() -> None:
    gate = PriorityGate(max_concurrent=5, queue_size=1000, name="stress")
    lock = threading.Lock()
    current = peak = done = 0

    def enter() -> None:
        nonlocal current, peak
        with lock:
            current += 1
            peak = max(peak, current)
            assert current <= 5

    def leave() -> None:
        nonlocal current, done
        with lock:
            current -= 1
            done += 1

    def sync_call(i: int) -> None:
        with gate.slot(Priority(i % 3), timeout=WAIT):
            enter()
            time.sleep(0.0005)
            leave()

    async def async_call(i: int) -> None:
        async with gate.aslot(Priority(i % 3), timeout=WAIT):
            enter()
            await asyncio.sleep(0.0005)
            leave()

    async def many(start: int) -> None:
        await asyncio.gather(*(async_call(i) for i in range(start, start + 100)))

    threads = [spawn(sync_call, i) for i in range(200)]
    other_loop = spawn(asyncio.run, many(100))  # 100 tasks on a loop in a second thread
    asyncio.run(many(0))  # 100 tasks on this thread's loop while the threads run
    for future in [*threads, other_loop]:
        future.result(timeout=WAIT * 3)

    assert done == 400
    assert peak == 5
    assert gate.info() == idle(5, 1000)


def test_timeouts_and_cancellations_racing_grants_never_leak() -> None:
    gate = PriorityGate(max_concurrent=2, queue_size=1000)
    rng = random.Random(20240601)
    outcomes: list[str] = []

    def sync_call(priority: Priority, timeout: float) -> None:
        try:
            with gate.slot(priority, timeout=timeout):
                time.sleep(0.0003)
            outcomes.append("ok")
        except TimeoutError:
            outcomes.append("timeout")

    async def async_call(priority: Priority, timeout: float) -> None:
        async with gate.aslot(priority, timeout=timeout):
            await asyncio.sleep(0.0003)

    async def many() -> None:
        loop = asyncio.get_running_loop()
        tasks = []
        for _ in range(150):
            task = loop.create_task(async_call(Priority(rng.randrange(3)), rng.random() / 200))
            if rng.random() < 0.5:
                loop.call_later(rng.random() / 200, task.cancel)
            tasks.append(task)
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            assert result is None or isinstance(result, TimeoutError | asyncio.CancelledError)
            outcomes.append(type(result).__name__)

    params = [(Priority(rng.randrange(3)), rng.random() / 200) for _ in range(150)]
    threads = [spawn(sync_call, *p) for p in params]
    asyncio.run(many())
    for future in threads:
        future.result(timeout=WAIT * 3)

    assert len(outcomes) == 300
    assert gate.info() == idle(2, 1000)
    gate.acquire(timeout=0)
    gate.acquire(timeout=0)
    with pytest.raises(TimeoutError):
        gate.acquire(timeout=0)
    gate.release()
    gate.release()


# ---------------------------------------------------------------------------- ordering


def test_admission_order_is_high_normal_low() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()
    order: list[str] = []
    futures = []
    for priority in (LOW, NORMAL, HIGH):
        futures.append(spawn(admit, gate, priority, order, priority.name))
        wait_until(lambda p=priority: gate.status()[KEY[p]] == 1)  # type: ignore[misc]
    assert gate.status() == {
        "high_priority": 1,
        "normal_priority": 1,
        "low_priority": 1,
        "active_requests": 1,
        "size": 3,
    }
    gate.release()
    for future in futures:
        future.result(timeout=WAIT)
    assert order == ["HIGH", "NORMAL", "LOW"]
    assert gate.info() == idle(1, 10)


def test_first_come_first_served_within_a_level() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()
    order: list[str] = []
    futures = []
    for n, label in enumerate("abcde", start=1):
        futures.append(spawn(admit, gate, NORMAL, order, label))
        wait_until(lambda n=n: gate.status()["normal_priority"] == n)  # type: ignore[misc]
    gate.release()
    for future in futures:
        future.result(timeout=WAIT)
    assert order == list("abcde")


def test_mixed_thread_and_async_waiters_keep_the_order() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()
    order: list[str] = []
    futures: list[concurrent.futures.Future[None]] = []
    arrivals = [
        ("thread", LOW),
        ("async", NORMAL),
        ("thread", HIGH),
        ("async", HIGH),
        ("async", LOW),
        ("thread", NORMAL),
    ]
    with LoopThread() as lt:
        for kind, priority in arrivals:
            label = f"{kind}-{priority.name}"
            before = gate.status()[KEY[priority]]
            if kind == "thread":
                futures.append(spawn(admit, gate, priority, order, label))
            else:
                futures.append(lt.submit(aadmit(gate, priority, order, label)))
            wait_until(lambda p=priority, b=before: gate.status()[KEY[p]] == b + 1)  # type: ignore[misc]
        gate.release()
        for future in futures:
            future.result(timeout=WAIT)
    assert order == [
        "thread-HIGH",
        "async-HIGH",
        "async-NORMAL",
        "thread-NORMAL",
        "thread-LOW",
        "async-LOW",
    ]
    assert gate.info() == idle(1, 10)


def test_a_newcomer_cannot_barge_ahead_of_a_waiter() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()
    admitted: list[str] = []
    done = threading.Event()
    waiter = spawn(hold, gate, admitted, "waiter", done)
    wait_until(lambda: gate.status()["size"] == 1)
    gate.release()  # handed straight to the waiter: active stays 1
    assert gate.info()["active_requests"] == 1
    assert gate.info()["size"] == 0
    with pytest.raises(TimeoutError):
        gate.acquire(HIGH, timeout=0)
    done.set()
    waiter.result(timeout=WAIT)
    assert admitted == ["waiter"]
    assert gate.info() == idle(1, 10)


# -------------------------------------------------------------------------- queue full


def test_full_queue_refuses_at_once_and_changes_nothing() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=2, name="openai")
    gate.acquire()
    order: list[str] = []
    futures = []
    for n in (1, 2):
        futures.append(spawn(admit, gate, LOW, order, str(n)))
        wait_until(lambda n=n: gate.status()["size"] == n)  # type: ignore[misc]
    before = gate.status()
    started = time.monotonic()
    with pytest.raises(QueueFullError, match="2 waiting, queue_size 2, max_concurrent 1") as info:
        gate.acquire(HIGH, timeout=WAIT)
    assert "openai" in str(info.value)
    assert info.value.provider is None
    with pytest.raises(QueueFullError):
        asyncio.run(gate.aacquire(HIGH, timeout=WAIT))
    assert time.monotonic() - started < WAIT / 2
    assert gate.status() == before
    gate.release()
    for future in futures:
        future.result(timeout=WAIT)
    assert order == ["1", "2"]
    assert gate.info() == idle(1, 2)


def test_queue_size_zero_allows_no_waiting() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=0)
    gate.acquire()
    with pytest.raises(QueueFullError, match="0 waiting, queue_size 0"):
        gate.acquire(HIGH)
    with pytest.raises(QueueFullError):
        asyncio.run(gate.aacquire())
    assert gate.info() == {"size": 0, "active_requests": 1, "capacity": 0, "max_concurrent": 1}
    gate.release()
    gate.acquire(timeout=0)  # a free slot is still taken at once
    gate.release()
    assert gate.info() == idle(1, 0)


def test_queue_size_can_change_at_runtime() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=0)
    gate.acquire()
    gate.queue_size = 1
    order: list[str] = []
    future = spawn(admit, gate, NORMAL, order, "w")
    wait_until(lambda: gate.status()["size"] == 1)
    with pytest.raises(QueueFullError):
        gate.acquire()
    gate.release()
    future.result(timeout=WAIT)
    assert order == ["w"]


# --------------------------------------------------------- timeouts and cancellation


def test_thread_timeout_leaves_the_queue_and_leaks_nothing() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10, name="slow")
    gate.acquire()
    order: list[str] = []
    behind = spawn(admit, gate, LOW, order, "behind")
    wait_until(lambda: gate.status()["size"] == 1)
    with pytest.raises(TimeoutError, match=r"waited 0\.05 s in the queue of gate 'slow'") as info:
        gate.acquire(HIGH, timeout=0.05)
    assert isinstance(info.value, builtins.TimeoutError)
    assert gate.status() == {
        "high_priority": 0,
        "normal_priority": 0,
        "low_priority": 1,
        "active_requests": 1,
        "size": 1,
    }
    gate.release()
    behind.result(timeout=WAIT)
    assert order == ["behind"]
    assert gate.info() == idle(1, 10)
    gate.acquire(timeout=0)
    gate.release()


def test_async_timeout_leaves_the_queue_and_leaks_nothing() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()

    async def main() -> None:
        with pytest.raises(TimeoutError, match=r"waited 0\.05 s"):
            await gate.aacquire(HIGH, timeout=0.05)

    asyncio.run(main())
    assert gate.status()["size"] == 0
    gate.release()
    assert gate.info() == idle(1, 10)
    asyncio.run(gate.aacquire(timeout=0))
    gate.release()


def test_cancelled_async_waiter_leaves_the_queue() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)

    async def main() -> None:
        gate.acquire()
        task = asyncio.create_task(gate.aacquire(HIGH))
        await await_until(lambda: gate.status()["high_priority"] == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gate.status()["size"] == 0
        gate.release()

    asyncio.run(main())
    assert gate.info() == idle(1, 10)


def test_waiter_cancelled_from_another_thread_leaves_the_queue() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()
    with LoopThread() as lt:
        future = lt.submit(gate.aacquire(NORMAL))
        wait_until(lambda: gate.status()["size"] == 1)
        future.cancel()
        wait_until(lambda: gate.status()["size"] == 0)
    gate.release()
    assert gate.info() == idle(1, 10)
    gate.acquire(timeout=0)
    gate.release()


@pytest.mark.parametrize("wake_first", [False, True], ids=["cancel-before-wake", "wake-first"])
def test_slot_granted_to_a_waiter_being_cancelled_is_passed_on(wake_first: bool) -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    order: list[str] = []

    async def main() -> None:
        gate.acquire()
        doomed = asyncio.create_task(gate.aacquire(HIGH))
        await await_until(lambda: gate.status()["high_priority"] == 1)
        behind = asyncio.create_task(aadmit(gate, LOW, order, "behind"))
        await await_until(lambda: gate.status()["low_priority"] == 1)
        # the slot now belongs to `doomed`, which has not run yet
        if wake_first:  # released on its loop: its future gets its result at once
            gate.release()
        else:  # released from another thread: the wake waits for the loop's next turn
            releaser = threading.Thread(target=gate.release)
            releaser.start()
            releaser.join()
        assert gate.info()["active_requests"] == 1
        assert not doomed.done()
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await asyncio.wait_for(behind, WAIT)

    asyncio.run(main())
    assert order == ["behind"]
    assert gate.info() == idle(1, 10)
    gate.acquire(timeout=0)
    gate.release()


# ------------------------------------------------------------------------ event loops


def test_successive_asyncio_run_calls_share_the_gate() -> None:
    gate = PriorityGate(max_concurrent=2, queue_size=100)
    for _ in range(3):
        peak = current = 0

        async def call() -> None:
            nonlocal peak, current
            async with gate.aslot(timeout=WAIT):
                current += 1
                peak = max(peak, current)
                await asyncio.sleep(0.001)
                current -= 1

        async def main() -> None:
            await asyncio.gather(*(call() for _ in range(20)))

        asyncio.run(main())
        assert peak == 2
        assert gate.info() == idle(2, 100)


def test_asyncio_run_ending_with_a_queued_waiter_cleans_it_up() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()

    async def leave_a_waiter_behind() -> None:
        asyncio.get_running_loop().create_task(gate.aacquire())
        await await_until(lambda: gate.status()["size"] == 1)

    asyncio.run(leave_a_waiter_behind())  # asyncio.run cancels the queued task
    assert gate.status()["size"] == 0
    gate.release()
    assert gate.info() == idle(1, 10)
    asyncio.run(gate.aacquire(timeout=0))
    gate.release()


def test_waiter_whose_loop_was_closed_does_not_eat_the_slot() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()
    loop = asyncio.new_event_loop()
    task = loop.create_task(gate.aacquire(HIGH))
    for _ in range(100):
        loop.run_until_complete(asyncio.sleep(0))
        if gate.status()["high_priority"] == 1:
            break
    assert gate.status()["high_priority"] == 1
    loop.close()  # the waiter can never be woken now

    order: list[str] = []
    behind = spawn(admit, gate, LOW, order, "behind")
    wait_until(lambda: gate.status()["low_priority"] == 1)
    gate.release()  # handed to the dead waiter, which passes it on
    behind.result(timeout=WAIT)
    assert order == ["behind"]
    assert gate.info() == idle(1, 10)

    del task  # closing its coroutine later must not release the slot a second time
    gc.collect()
    assert gate.info() == idle(1, 10)
    gate.acquire(timeout=0)
    gate.release()


# ---------------------------------------------------------------------------- settings


def test_raising_max_concurrent_admits_waiters_at_once() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()
    admitted: list[str] = []
    done = threading.Event()
    with LoopThread() as lt:
        futures = [spawn(hold, gate, admitted, "t1", done)]
        wait_until(lambda: gate.status()["size"] == 1)
        futures.append(lt.submit(ahold(gate, admitted, "a1", done)))
        wait_until(lambda: gate.status()["size"] == 2)
        futures.append(spawn(hold, gate, admitted, "t2", done))
        wait_until(lambda: gate.status()["size"] == 3)

        gate.max_concurrent = 3
        wait_until(lambda: len(admitted) == 2)
        assert sorted(admitted) == ["a1", "t1"]  # the first two in line, woken together
        assert gate.info()["size"] == 1
        gate.max_concurrent = 4
        wait_until(lambda: len(admitted) == 3)
        assert gate.info() == {"size": 0, "active_requests": 4, "capacity": 10, "max_concurrent": 4}
        done.set()
        for future in futures:
            future.result(timeout=WAIT)
    gate.release()
    assert gate.info() == idle(4, 10)


def test_lowering_max_concurrent_drains_before_admitting() -> None:
    gate = PriorityGate(max_concurrent=3, queue_size=10)
    for _ in range(3):
        gate.acquire()
    gate.max_concurrent = 1
    order: list[str] = []
    future = spawn(admit, gate, NORMAL, order, "w")
    wait_until(lambda: gate.status()["size"] == 1)
    gate.release()
    gate.release()
    assert gate.info()["active_requests"] == 1
    assert gate.info()["size"] == 1
    gate.release()
    future.result(timeout=WAIT)
    assert order == ["w"]
    assert gate.info() == idle(1, 10)


def test_disabling_admits_every_waiter_and_every_newcomer() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=10)
    gate.acquire()
    admitted: list[str] = []
    done = threading.Event()
    with LoopThread() as lt:
        futures = [
            spawn(hold, gate, admitted, "t1", done),
            spawn(hold, gate, admitted, "t2", done),
            lt.submit(ahold(gate, admitted, "a1", done)),
        ]
        wait_until(lambda: gate.status()["size"] == 3)
        gate.enabled = False
        wait_until(lambda: len(admitted) == 3)
        assert gate.info() == {"size": 0, "active_requests": 4, "capacity": 10, "max_concurrent": 1}
        gate.acquire(timeout=0)
        asyncio.run(gate.aacquire(timeout=0))
        assert gate.info()["active_requests"] == 6
        gate.release()
        gate.release()
        done.set()
        for future in futures:
            future.result(timeout=WAIT)
    gate.release()
    assert gate.info() == idle(1, 10)

    gate.enabled = True
    gate.acquire()
    with pytest.raises(TimeoutError):
        gate.acquire(timeout=0)
    gate.release()


def test_a_gate_created_disabled_has_no_limit() -> None:
    gate = PriorityGate(max_concurrent=1, queue_size=0, enabled=False)
    assert gate.enabled is False
    for _ in range(10):
        gate.acquire(timeout=0)
    assert gate.info()["active_requests"] == 10
    for _ in range(10):
        gate.release()
    assert gate.info() == idle(1, 0)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_bad_max_concurrent_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_concurrent"):
        PriorityGate(max_concurrent=bad)
    gate = PriorityGate(max_concurrent=2)
    with pytest.raises(ConfigurationError):
        gate.max_concurrent = bad
    assert gate.max_concurrent == 2


@pytest.mark.parametrize("bad", [-1, 2.0, None])
def test_bad_queue_size_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="queue_size"):
        PriorityGate(queue_size=bad)
    gate = PriorityGate(queue_size=7)
    with pytest.raises(ConfigurationError):
        gate.queue_size = bad
    assert gate.queue_size == 7


# ------------------------------------------------------------------ priority parsing


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, NORMAL),
        ("HIGH", HIGH),
        ("high", HIGH),
        ("High", HIGH),
        ("NORMAL", NORMAL),
        ("normal", NORMAL),
        ("LOW", LOW),
        ("low", LOW),
        (0, HIGH),
        (1, NORMAL),
        (2, LOW),
        (Priority.LOW, LOW),
    ],
)
def test_priority_parse_accepts(value: Any, expected: Priority) -> None:
    assert Priority.parse(value) is expected


@pytest.mark.parametrize("bad", ["urgent", "", 3, -1, 1.0, True, [1]])
def test_priority_parse_rejects(bad: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        Priority.parse(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "HIGH" in message
    assert "NORMAL" in message
    assert "LOW" in message


def test_acquire_parses_its_priority() -> None:
    gate = PriorityGate(max_concurrent=1)
    gate.acquire("high")  # type: ignore[arg-type]
    gate.release()
    with pytest.raises(ConfigurationError, match="urgent"):
        gate.acquire("urgent")  # type: ignore[arg-type]
    assert gate.info()["active_requests"] == 0


# ------------------------------------------------------------------- misuse, reports


def test_release_without_acquire_is_a_runtime_error() -> None:
    gate = PriorityGate(name="x")
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        gate.release()
    gate.acquire()
    gate.release()
    with pytest.raises(RuntimeError):
        gate.release()
    assert gate.info() == idle(5, 100)


def test_slot_releases_when_the_block_raises() -> None:
    gate = PriorityGate(max_concurrent=1)
    with pytest.raises(ValueError, match="boom"), gate.slot():
        raise ValueError("boom")

    async def main() -> None:
        with pytest.raises(ValueError, match="boom"):
            async with gate.aslot():
                raise ValueError("boom")

    asyncio.run(main())
    assert gate.info() == idle(1, 100)


def test_info_and_status_report_the_defaults() -> None:
    gate = PriorityGate()
    assert gate.info() == {"size": 0, "active_requests": 0, "capacity": 100, "max_concurrent": 5}
    assert gate.status() == {
        "high_priority": 0,
        "normal_priority": 0,
        "low_priority": 0,
        "active_requests": 0,
        "size": 0,
    }
    assert gate.enabled is True
    assert "PriorityGate" in repr(gate)
