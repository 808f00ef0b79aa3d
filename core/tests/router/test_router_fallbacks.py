"""Router fallbacks: order, error classes, chains, cooldown waits, exact request counts."""

from __future__ import annotations

import asyncio

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.router import Router
from ipfs_accelerate_py.router_types import NoDeploymentAvailableError, RoutedChatResponse
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
user = wire.user
ok = wire.chat_reply


def counts(servers: list[ProtocolServer], path: str = CHAT) -> list[int]:
    """Requests each server saw on ``path``."""
    return [len(s.requests_to(path)) for s in servers]


def test_one_deployment_answers_with_one_attempt(route, servers, clock) -> None:
    servers[0].on("POST", CHAT, default=ok("hi"))
    router = route({"smart": [0]})
    reply = router.chat(model="smart", messages=user())
    assert isinstance(reply, RoutedChatResponse) and reply.text == "hi"
    assert reply.deployment == "d0"
    assert [(a.deployment, a.outcome, a.reason) for a in reply.attempts] == [
        ("d0", "ok", "primary")
    ]
    assert servers[0].requests_to(CHAT)[0].json()["model"] == "model-0"
    assert reply["text"] == "hi"  # still reads like the guide's dict


def test_fallback_order_and_error_classes(route, servers, clock) -> None:
    servers[0].on("POST", CHAT, default=wire.error_reply(529))
    servers[1].on("POST", CHAT, default=wire.error_reply(429, {"retry-after": "20"}))
    servers[2].on("POST", CHAT, default=wire.error_reply(503))
    servers[3].on("POST", CHAT, default=ok("from d3"))
    router = route(
        {"smart": [0, 1], "backup": [2], "last": [3]}, fallbacks={"smart": ["backup", "last"]}
    )
    reply = router.chat(model="smart", messages=user())
    assert reply.text == "from d3"
    assert [(a.deployment, a.error, a.reason) for a in reply.attempts] == [
        ("d0", "OverloadedError", "primary"),
        ("d1", "RateLimitError", "fallback"),
        ("d2", "ServerError", "fallback"),
        ("d3", None, "fallback"),
    ]
    assert counts(servers) == [1, 1, 1, 1]


def test_timeout_and_dropped_connection_fall_back(route, servers, clock) -> None:
    servers[0].on("POST", CHAT, default=Reply.json(wire.chat_completion("late"), delay=2.0))
    servers[1].on("POST", CHAT, default=Reply.drop_connection())
    servers[2].on("POST", CHAT, default=ok("d2"))
    router = route({"smart": [0, 1, 2]})
    reply = router.chat(model="smart", messages=user(), timeout=0.2)
    assert reply.text == "d2"
    assert [a.error for a in reply.attempts] == ["TimeoutError", "ConnectionError", None]


def test_bad_request_is_not_a_fallback(route, servers, clock) -> None:
    servers[0].on("POST", CHAT, default=wire.error_reply(400))
    servers[1].on("POST", CHAT, default=ok())
    router = route({"smart": [0, 1]})
    with pytest.raises(errors.InvalidRequestError) as info:
        router.chat(model="smart", messages=user())
    assert [a.deployment for a in info.value.attempts] == ["d0"]
    assert counts(servers) == [1, 0, 0, 0]


def test_exhausted_chain_raises_the_last_real_error(route, servers, clock) -> None:
    servers[0].on("POST", CHAT, default=wire.error_reply(500))
    servers[1].on("POST", CHAT, default=wire.error_reply(503))
    router = route({"smart": [0], "b": [1]}, fallbacks={"smart": ["b"]})
    with pytest.raises(errors.ServerError) as info:
        router.chat(model="smart", messages=user())
    assert info.value.status_code == 503
    assert [a.deployment for a in info.value.attempts] == ["d0", "d1"]


def test_context_window_error_goes_to_the_larger_model_only(route, servers, clock) -> None:
    too_long = wire.error(
        "This model's maximum context length is 8192 tokens.", code="context_length_exceeded"
    )
    servers[0].on("POST", CHAT, default=Reply.json(too_long, status=400))
    servers[1].on("POST", CHAT, default=ok("general fallback"))
    servers[2].on("POST", CHAT, default=ok("long context"))
    router = route(
        {"smart": [0], "backup": [1], "long": [2]},
        fallbacks={"smart": ["backup"]},
        context_window_fallbacks={"smart": ["long"]},
    )
    reply = router.chat(model="smart", messages=user())
    assert reply.text == "long context"
    assert [(a.deployment, a.reason) for a in reply.attempts] == [
        ("d0", "primary"),
        ("d2", "context_window"),
    ]
    assert counts(servers) == [1, 0, 1, 0]


def test_context_window_without_a_chain_raises(route, servers, clock) -> None:
    too_long = wire.error("prompt is too long: 210000 tokens > 200000 maximum")
    servers[0].on("POST", CHAT, default=Reply.json(too_long, status=400))
    servers[1].on("POST", CHAT, default=ok())
    router = route({"smart": [0], "backup": [1]}, fallbacks={"smart": ["backup"]})
    with pytest.raises(errors.InvalidRequestError):
        router.chat(model="smart", messages=user())
    assert counts(servers) == [1, 0, 0, 0]


def test_content_filtered_reply_goes_to_the_configured_alternative(route, servers, clock) -> None:
    servers[0].on("POST", CHAT, default=ok("", finish_reason="content_filter"))
    servers[1].on("POST", CHAT, default=ok("alternative"))
    router = route({"smart": [0], "alt": [1]}, content_policy_fallbacks={"smart": ["alt"]})
    reply = router.chat(model="smart", messages=user())
    assert reply.text == "alternative"
    assert [(a.outcome, a.reason) for a in reply.attempts] == [
        ("content_filter", "primary"),
        ("ok", "content_policy"),
    ]
    # without an alternative, the filtered reply is returned as it is
    plain = route({"smart": [0]})
    assert plain.chat(model="smart", messages=user()).finish_reason == "content_filter"


def test_content_policy_error_goes_to_the_alternative(route, servers, clock) -> None:
    body = wire.error("The response was filtered", code="content_filter")
    servers[0].on("POST", CHAT, default=Reply.json(body, status=400))
    servers[1].on("POST", CHAT, default=ok("alt"))
    router = route({"smart": [0], "alt": [1]}, content_policy_fallbacks={"smart": ["alt"]})
    assert router.chat(model="smart", messages=user()).text == "alt"


def test_waits_for_the_first_deployment_to_come_back(route, servers, clock: FakeClock) -> None:
    servers[0].on("POST", CHAT, wire.error_reply(429, {"retry-after": "7"}), default=ok("A"))
    servers[1].on("POST", CHAT, wire.error_reply(429, {"retry-after": "3"}), default=ok("B"))
    router = route({"smart": [0, 1]})
    with pytest.raises(errors.RateLimitError):
        router.chat(model="smart", messages=user())  # both limited: the last error, retry_after
    assert counts(servers) == [1, 1, 0, 0]
    clock.sleeps.clear()
    reply = router.chat(model="smart", messages=user())  # both cool: wait for B (3 s)
    assert reply.text == "B" and clock.sleeps == [pytest.approx(3.0)]
    assert counts(servers) == [1, 2, 0, 0]


def test_deadline_shorter_than_cooldown_fails_with_soonest_retry(route, servers, clock) -> None:
    servers[0].on("POST", CHAT, wire.error_reply(429, {"retry-after": "30"}), default=ok())
    router = route({"smart": [0]})
    with pytest.raises(errors.RateLimitError):
        router.chat(model="smart", messages=user())
    with pytest.raises(NoDeploymentAvailableError) as info:
        router.chat(model="smart", messages=user(), deadline=5)
    assert info.value.retry_after == pytest.approx(30.0)
    assert counts(servers) == [1, 0, 0, 0]  # nothing sent while cooling


def test_open_breaker_is_waited_out_then_probed(route, servers, clock: FakeClock) -> None:
    servers[0].on("POST", CHAT, wire.error_reply(500), default=ok("back"))
    router = route(
        {"smart": [0]}, backend_options={0: {"failure_threshold": 1, "reset_timeout": 4.0}}
    )
    with pytest.raises(errors.ServerError):
        router.chat(model="smart", messages=user())
    assert router.deployments("smart")[0].backend.circuit_state == "OPEN"
    reply = router.chat(model="smart", messages=user())
    assert reply.text == "back" and clock.sleeps == [pytest.approx(4.0)]
    assert counts(servers) == [2, 0, 0, 0]


def test_unknown_alias_and_bad_options(route, servers, clock) -> None:
    router = route({"smart": [0]})
    with pytest.raises(errors.InvalidArgumentError, match="'nope' is not a router alias"):
        router.chat(model="nope", messages=user())
    with pytest.raises(errors.InvalidArgumentError, match="deadline"):
        router.chat(model="smart", messages=user(), deadline="soon")
    with pytest.raises(errors.ConfigurationError, match="strategy"):
        Router(strategy="random")
    assert counts(servers) == [0, 0, 0, 0]


def test_embed_falls_back(route, servers, clock) -> None:
    servers[0].on("POST", EMBED, default=wire.error_reply(503))
    servers[1].on("POST", EMBED, default=Reply.json(wire.embeddings([[0.5, 0.25]])))
    router = route({"emb": [0, 1]})
    reply = router.embed(model="emb", input="x")
    assert reply.embedding == [0.5, 0.25]
    assert [a.error for a in reply.attempts] == ["ServerError", None]


def test_embed_falls_back_with_numpy_output(route, servers, clock) -> None:
    np = pytest.importorskip("numpy")
    servers[0].on("POST", EMBED, default=wire.error_reply(503))
    servers[1].on("POST", EMBED, default=wire.embeddings_reply([[0.5, 0.25]]))
    router = route({"emb": [0, 1]})
    reply = router.embed(model="emb", input="x", encoding_format="base64", output="numpy")
    assert isinstance(reply.embeddings, np.ndarray) and reply.embeddings.dtype == np.float32
    assert reply.embedding.tolist() == [0.5, 0.25]
    assert [a.error for a in reply.attempts] == ["ServerError", None]
    assert servers[1].requests[0].json()["encoding_format"] == "base64"


def test_async_fallback_and_wait(route, servers, clock: FakeClock) -> None:
    servers[0].on("POST", CHAT, default=wire.error_reply(529))
    servers[1].on("POST", CHAT, wire.error_reply(429, {"retry-after": "2"}), default=ok("B"))
    router = route({"smart": [0, 1]})

    async def main() -> tuple[object, object]:
        with pytest.raises(errors.RateLimitError):
            await router.achat(model="smart", messages=user())
        reply = await router.achat(model="smart", messages=user())
        emb_err = None
        try:
            await router.aembed(model="smart", input="x")
        except errors.BackendError as err:
            emb_err = err
        return reply, emb_err

    reply, _ = asyncio.run(main())
    assert reply.text == "B"  # type: ignore[attr-defined]
    assert [a.deployment for a in reply.attempts] == ["d1"]  # type: ignore[attr-defined]
    assert 2.0 in [pytest.approx(s) for s in clock.sleeps]


def test_router_builds_backends_by_name(
    loopback_plugin: object, servers: list[ProtocolServer], clock: FakeClock, secret: str
) -> None:
    servers[0].on("POST", CHAT, default=wire.error_reply(500))
    servers[1].on("POST", CHAT, default=ok("second"))
    with Router(clock=clock) as router:
        for i in (0, 1):
            router.add_deployment(
                "smart", "loopback", "m", api_key=secret, base_url=servers[i].url("/v1")
            )
        assert router.chat(model="smart", messages=user()).text == "second"
        assert counts(servers) == [1, 1, 0, 0]  # max_retries=0 by default in a router
        assert secret not in repr(router) + repr(router.deployments()) + repr(
            router.get_deployment_stats()
        )


def test_open_breaker_is_skipped_without_a_request(route, servers) -> None:
    servers[0].on("POST", CHAT, wire.error_reply(500), default=ok("A"))
    servers[1].on("POST", CHAT, default=ok("B"))
    router = route(
        {"smart": [0, 1]}, backend_options={0: {"failure_threshold": 1, "reset_timeout": 60.0}}
    )
    first = router.chat(model="smart", messages=user())
    assert [(a.deployment, a.error) for a in first.attempts] == [
        ("d0", "ServerError"),
        ("d1", None),
    ]
    for _ in range(4):  # d0's circuit is open: every call goes to d1, d0 sees nothing
        assert router.chat(model="smart", messages=user()).deployment == "d1"
    assert counts(servers)[:2] == [1, 5]
    assert router.get_deployment_stats()["d0"]["available_in"] == pytest.approx(60.0)


def test_budgets_apply_to_streams(route, servers) -> None:
    from ipfs_accelerate_py.budgets import Budget, BudgetExceededError

    servers[0].on("POST", CHAT, default=Reply.sse(wire.chat_stream(["a", "b"])))
    router = route({"smart": [0]}, budgets=[Budget("s", "user", max_tokens=2000)])
    with router.stream(model="smart", messages=user(), user="u", max_tokens=1000) as stream:
        assert "".join(c.text for c in stream) == "ab"
    assert router.budget_spent("s", "u")[1] == 11  # the stream's reported usage: 9 + 2
    with (
        pytest.raises(BudgetExceededError),
        router.stream(model="smart", messages=user(), user="u", max_tokens=1990) as stream,
    ):
        list(stream)
    assert counts(servers)[0] == 1


def test_a_rate_limited_key_does_not_cool_the_whole_deployment(route, servers) -> None:
    servers[0].on(
        "POST", CHAT, wire.error_reply(429, {"retry-after": "30"}), default=ok("other key")
    )
    servers[1].on("POST", CHAT, default=ok("B"))
    router = route({"smart": [0, 1]})
    router.deployments("smart")[0].backend.add_api_key("second", "sk-second-0123456789")
    assert router.chat(model="smart", messages=user()).deployment == "d1"  # d0's key limited
    # d0 still has a free key: it is not cooling, and its next call uses the other key
    assert router.get_deployment_stats()["d0"]["available_in"] == 0.0
    reply = router.chat(model="smart", messages=user())
    assert reply.text == "other key"
    keys = [r.headers["authorization"] for r in servers[0].requests_to(CHAT)]
    assert keys[0] != keys[1]
