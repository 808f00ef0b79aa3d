"""Structured outputs through the router: native and forced-tool modes, validation, the one
retry with the validation errors, and fallback keeping the same contract."""

from __future__ import annotations

import json

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.structured import StructuredOutputError, spec_of, validate
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer

CHAT = "/v1/chat/completions"
user = wire.user
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["city", "population"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
GOOD = json.dumps({"city": "Paris", "population": 2_100_000})
BAD = json.dumps({"city": "Paris"})


def bodies(server: ProtocolServer) -> list[dict]:
    return [r.json() for r in server.requests_to(CHAT)]


def test_native_mode_valid_reply_is_parsed(route, servers) -> None:
    servers[0].on("POST", CHAT, default=wire.chat_reply(GOOD))
    router = route({"smart": [0]})
    reply = router.chat(model="smart", messages=user(), response_format=FORMAT)
    assert reply.parsed == {"city": "Paris", "population": 2_100_000}
    assert bodies(servers[0])[0]["response_format"] == FORMAT


def test_invalid_reply_is_retried_once_with_the_errors(route, servers) -> None:
    servers[0].on(
        "POST", CHAT, wire.chat_reply(BAD), default=wire.chat_reply("```json\n" + GOOD + "\n```")
    )
    router = route({"smart": [0]})
    reply = router.chat(model="smart", messages=user("Paris?"), response_format=FORMAT)
    assert reply.parsed["population"] == 2_100_000 and reply.text == GOOD
    retry = bodies(servers[0])[1]["messages"]
    assert retry[1] == {"role": "assistant", "content": BAD}
    assert (
        retry[2]["role"] == "user"
        and "missing required property 'population'" in retry[2]["content"]
    )
    assert [(a.outcome, a.reason) for a in reply.attempts] == [
        ("invalid", "primary"),
        ("ok", "validation_retry"),
    ]
    assert [a.usage.total_tokens for a in reply.attempts] == [21, 21]  # both calls counted


def test_still_invalid_falls_back_to_the_next_deployment(route, servers) -> None:
    servers[0].on("POST", CHAT, default=wire.chat_reply("not json"))
    servers[1].on("POST", CHAT, default=wire.chat_reply(GOOD))
    router = route({"smart": [0, 1]})
    reply = router.chat(model="smart", messages=user(), response_format=FORMAT)
    assert reply.parsed["city"] == "Paris"
    assert [a.error for a in reply.attempts] == [
        "StructuredOutputError",
        "StructuredOutputError",
        None,
    ]
    assert [len(s.requests_to(CHAT)) for s in servers[:2]] == [2, 1]


def test_opt_out_of_the_retry_and_the_final_error(route, servers) -> None:
    servers[0].on("POST", CHAT, default=wire.chat_reply(BAD))
    router = route({"smart": [0]}, validation_retry=False)
    with pytest.raises(StructuredOutputError) as info:
        router.chat(model="smart", messages=user(), response_format=FORMAT)
    assert isinstance(info.value, errors.MalformedResponseError)
    assert info.value.errors == ["$: missing required property 'population'"]
    assert len(servers[0].requests_to(CHAT)) == 1
    router2 = route({"smart": [1]})
    servers[1].on("POST", CHAT, default=wire.chat_reply(BAD))
    with pytest.raises(StructuredOutputError):
        router2.chat(model="smart", messages=user(), response_format=FORMAT, validation_retry=False)
    assert len(servers[1].requests_to(CHAT)) == 1


def test_tools_mode_forces_a_function_call(route, deploy, servers, clock) -> None:
    from ipfs_accelerate_py.router import Router

    call = wire.tool_call("call_1", "city", GOOD)
    servers[0].on(
        "POST", CHAT, default=wire.chat_reply(None, tool_calls=[call], finish_reason="tool_calls")
    )
    router = Router(clock=clock)
    router.add_deployment("smart", deploy(0), "m", structured_output="tools")
    reply = router.chat(model="smart", messages=user(), response_format=FORMAT)
    assert reply.parsed == {"city": "Paris", "population": 2_100_000} and reply.text == GOOD
    body = bodies(servers[0])[0]
    assert "response_format" not in body
    assert body["tools"][0]["function"]["name"] == "city"
    assert body["tools"][0]["function"]["parameters"] == SCHEMA
    assert body["tool_choice"] == {"type": "function", "function": {"name": "city"}}


def test_json_object_only_needs_json(route, servers) -> None:
    servers[0].on("POST", CHAT, default=wire.chat_reply('{"anything": [1, 2]}'))
    router = route({"smart": [0]})
    reply = router.chat(model="smart", messages=user(), response_format={"type": "json_object"})
    assert reply.parsed == {"anything": [1, 2]}


def test_bad_response_format_is_an_invalid_argument(route, servers) -> None:
    router = route({"smart": [0]})
    with pytest.raises(errors.InvalidArgumentError, match="response_format"):
        router.chat(model="smart", messages=user(), response_format={"type": "xml"})
    with pytest.raises(errors.InvalidArgumentError, match="json_schema"):
        spec_of({"type": "json_schema"})
    assert servers[0].requests == []


@pytest.mark.parametrize(
    ("value", "schema", "expected"),
    [
        (1, {"type": "integer"}, []),
        (1.0, {"type": "integer"}, []),
        (1.5, {"type": "integer"}, ["$: expected integer, got number"]),
        (True, {"type": "number"}, ["$: expected number, got boolean"]),
        (None, {"type": "string", "nullable": True}, []),
        (None, {"type": ["string", "null"]}, []),
        ("x", {"enum": ["a", "b"]}, ["$: 'x' is not one of ['a', 'b']"]),
        (
            [1, "a"],
            {"type": "array", "items": {"type": "integer"}},
            ["$[1]: expected integer, got string"],
        ),
        (
            {"a": {"b": 1}},
            {"properties": {"a": {"properties": {"b": {"type": "string"}}}}},
            ["$.a.b: expected string, got integer"],
        ),
        (
            {"x": 1},
            {"type": "object", "additionalProperties": False},
            ["$: property 'x' is not allowed"],
        ),
        (
            {"x": 1},
            {"type": "object", "additionalProperties": {"type": "string"}},
            ["$.x: expected string, got integer"],
        ),
        (3, {"anyOf": [{"type": "string"}, {"type": "integer"}]}, []),
        (
            3.5,
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            ["$: matches none of the anyOf alternatives"],
        ),
        ([], {"type": "array", "minItems": 1}, ["$: needs at least 1 items"]),
        (-1, {"type": "integer", "minimum": 0}, ["$: must be >= 0"]),
    ],
)
def test_validator(value: object, schema: dict, expected: list[str]) -> None:
    assert validate(value, schema) == expected
