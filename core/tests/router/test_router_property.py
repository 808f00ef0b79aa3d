"""Property: under any faults, no routed request is lost or answered twice."""

from __future__ import annotations

import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.router_types import NoDeploymentAvailableError
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import RecordedRequest, Reply

CHAT = "/v1/chat/completions"
FAULTS = ("ok", "ok", "429", "500", "529", "drop", "400")
CALLS = 8
DEPLOYMENTS = 3


def _reply(fault: str, tag: str) -> Reply:
    if fault == "ok":
        return wire.chat_reply(tag)
    if fault == "drop":
        return Reply.drop_connection()
    return wire.error_reply(int(fault))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.lists(st.sampled_from(FAULTS), min_size=DEPLOYMENTS, max_size=DEPLOYMENTS),
        min_size=CALLS,
        max_size=CALLS,
    ),
    strategy=st.sampled_from(["least-busy", "weighted", "lowest-latency", "usage-based"]),
)
def test_no_request_lost_or_answered_twice(route, servers, plan, strategy) -> None:
    answered: list[list[str]] = [[] for _ in range(CALLS)]  # deployment index per 200 sent
    lock = threading.Lock()

    def script(index: int):
        def reply(request: RecordedRequest) -> Reply:
            tag = request.json()["messages"][0]["content"]
            call = int(tag.split("-")[1])
            fault = plan[call][index]
            if fault == "ok":
                with lock:
                    answered[call].append(f"d{index}")
            return _reply(fault, tag)

        return reply

    for i, server in enumerate(servers[:DEPLOYMENTS]):
        server.reset()
        server.on("POST", CHAT, default=script(i))
    router = route({"smart": list(range(DEPLOYMENTS))}, strategy=strategy, cooldown=1.0)
    results: list[object] = [None] * CALLS

    def call(i: int) -> None:
        try:
            results[i] = router.chat(
                model="smart", messages=[{"role": "user", "content": f"call-{i}"}]
            )
        except errors.BackendError as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CALLS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    seen = [
        [r.json()["messages"][0]["content"] for r in s.requests_to(CHAT)]
        for s in servers[:DEPLOYMENTS]
    ]
    for i, result in enumerate(results):
        tag = f"call-{i}"
        tried = [f"d{d}" for d in range(DEPLOYMENTS) if tag in seen[d]]
        assert all(seen[d].count(tag) <= 1 for d in range(DEPLOYMENTS))  # each deployment once
        assert result is not None  # never lost: a reply or an error
        if isinstance(result, errors.BackendError):
            assert answered[i] == [], (
                repr(result),
                [(a.deployment, a.error) for a in result.attempts],
                seen,
                plan[i],
            )  # a failed call got no 200 anywhere
            assert sorted(a.deployment for a in result.attempts) == sorted(tried)
            if isinstance(result, NoDeploymentAvailableError):
                # the untried ones were open or cooling past the deadline (breakers open
                # after five failures and stay open for 30 s)
                assert len(tried) < DEPLOYMENTS and result.retry_after > 0
            elif not isinstance(result, errors.InvalidRequestError):
                assert len(tried) == DEPLOYMENTS  # every deployment was tried first
        else:
            assert result.text == tag  # the answer to this request, not another's
            assert answered[i] == [result.deployment]  # answered exactly once
            assert [a.deployment for a in result.attempts][-1] == result.deployment
            assert sorted(a.deployment for a in result.attempts) == sorted(tried)
    assert all(d.in_flight == 0 for d in router.deployments())
