"""The Gemini plugin's success paths, sync and async, against a loopback Gemini server."""

from __future__ import annotations

import asyncio
import base64

import gemini_wire as wire
import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

GEN = "/v1beta/models/gemini-2.5-flash:generateContent"
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]
USER = {"role": "user", "parts": [{"text": "Hello, how are you?"}]}


def test_chat_sends_gemini_body_and_reads_reply(
    gemini: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    protocol_server.on("POST", GEN, Reply.json(wire.response("I'm well!")))
    result = gemini.chat(
        messages=MESSAGES,
        model="gemini-2.5-flash",
        system="You are a helpful assistant",
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        max_tokens=100,
        stop=["\n\n"],
        n=1,
        response_format={"type": "json_object"},
    )
    [req] = protocol_server.requests
    assert req.method == "POST" and req.query == {}
    assert req.headers["x-goog-api-key"] == secret
    assert "authorization" not in req.headers
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {
        "contents": [USER],
        "systemInstruction": {"parts": [{"text": "You are a helpful assistant"}]},
        "generationConfig": {
            "temperature": 0.7,
            "topP": 0.9,
            "topK": 40,
            "maxOutputTokens": 100,
            "stopSequences": ["\n\n"],
            "candidateCount": 1,
            "responseMimeType": "application/json",
        },
    }
    assert result.text == result["text"] == "I'm well!"
    assert result.model == wire.MODEL_VERSION
    assert result.finish_reason == "stop"
    assert result.id == "resp-abc123"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (8, 12)
    assert result.usage.total_tokens == 20
    stats = gemini.get_usage_stats()
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (8, 12)


def test_roles_and_history_map_to_contents(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", GEN, Reply.json(wire.response("4")))
    gemini.chat(
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": [{"type": "text", "text": "and 2+3?"}]},
        ],
        model="gemini-2.5-flash",
        stop="END",
    )
    body = protocol_server.requests[0].json()
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "2+2?"}]},
        {"role": "model", "parts": [{"text": "4"}]},
        {"role": "user", "parts": [{"text": "and 2+3?"}]},
    ]
    assert body["generationConfig"] == {"stopSequences": ["END"]}


def test_usage_extras_thoughts_and_cache(gemini: Backend, protocol_server: ProtocolServer) -> None:
    meta = wire.usage(10, 5, thoughtsTokenCount=30, cachedContentTokenCount=4)
    parts = [{"text": "thinking...", "thought": True}, {"text": "Answer."}]
    protocol_server.on("POST", GEN, Reply.json(wire.response(parts=parts, usage_metadata=meta)))
    result = gemini.chat(messages=MESSAGES, model="models/gemini-2.5-flash")
    assert result.text == "Answer."  # the thought summary is not the answer
    assert result.usage is not None
    assert result.usage.to_dict() == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 45,
        "thoughts_tokens": 30,
        "cached_tokens": 4,
    }


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("RECITATION", "content_filter"),
        ("OTHER", "other"),
    ],
)
def test_finish_reasons(
    gemini: Backend, protocol_server: ProtocolServer, raw: str, mapped: str
) -> None:
    protocol_server.on("POST", GEN, Reply.json(wire.response("partial", finish=raw)))
    assert gemini.chat(messages=MESSAGES).finish_reason == mapped


def test_default_model_and_json_schema(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", GEN, Reply.json(wire.response('{"a": 1}')))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    gemini.chat(
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        generation_config={"thinkingConfig": {"thinkingBudget": 0}},
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    )
    body = protocol_server.requests[0].json()  # no model given: gemini-2.5-flash
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
        "thinkingConfig": {"thinkingBudget": 0},
    }
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"


def test_tools_and_function_calls(gemini: Backend, protocol_server: ProtocolServer) -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    protocol_server.on("POST", GEN, Reply.json(wire.response(parts=[call])))
    result = gemini.chat(messages=MESSAGES, tools=wire.TOOLS, tool_choice="required")
    body = protocol_server.requests[0].json()
    assert body["tools"] == [{"functionDeclarations": [wire.TOOLS[0]["function"]]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert result.text == "" and result.finish_reason == "tool_calls"
    [tool_call] = result.tool_calls
    assert tool_call.name == "get_weather"
    assert tool_call.parsed_arguments() == {"city": "Paris"}

    # the call and its result go back as functionCall / functionResponse parts
    protocol_server.on("POST", GEN, Reply.json(wire.response("Sunny in Paris.")))
    history = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [tool_call.to_dict()]},
        {"role": "tool", "tool_call_id": tool_call.id, "content": '{"sky": "sunny"}'},
        {"role": "tool", "name": "get_time", "content": "noon"},
    ]
    gemini.chat(
        messages=history, tools=wire.TOOLS, tool_choice={"function": {"name": "get_weather"}}
    )
    body = protocol_server.requests[1].json()
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
            ],
        },
    ]
    assert body["toolConfig"]["functionCallingConfig"] == {
        "mode": "ANY",
        "allowedFunctionNames": ["get_weather"],
    }


def test_function_call_ids_round_trip(gemini: Backend, protocol_server: ProtocolServer) -> None:
    call = {"functionCall": {"id": "fc-7", "name": "f", "args": {}}}
    protocol_server.on("POST", GEN, Reply.json(wire.response(parts=[call])))
    [tool_call] = gemini.chat(messages=MESSAGES, tools=wire.TOOLS).tool_calls
    assert tool_call.id == "fc-7"
    protocol_server.on("POST", GEN, Reply.json(wire.response("ok")))
    gemini.chat(
        messages=[
            *MESSAGES,
            {"role": "assistant", "tool_calls": [tool_call.to_dict()]},
            {"role": "tool", "tool_call_id": "fc-7", "content": "[1, 2]"},
        ]
    )
    contents = protocol_server.requests[1].json()["contents"]
    assert contents[1]["parts"][0]["functionCall"]["id"] == "fc-7"
    assert contents[2]["parts"][0]["functionResponse"] == {
        "name": "f",
        "response": {"result": [1, 2]},
        "id": "fc-7",
    }


def test_achat_across_successive_event_loops(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", GEN, default=Reply.json(wire.response("async hi")))

    async def one() -> str:
        return (await gemini.achat(messages=MESSAGES, temperature=0.1)).text

    assert asyncio.run(one()) == "async hi"
    assert asyncio.run(one()) == "async hi"
    assert len(protocol_server.requests) == 2
    assert protocol_server.requests[1].json()["generationConfig"] == {"temperature": 0.1}


def test_generate_text_from_a_prompt(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", GEN, default=Reply.json(wire.response("Once upon a time")))
    result = gemini.generate(prompt="Tell a story", max_tokens=5)
    assert result["generated_text"] == "Once upon a time"
    assert protocol_server.requests[0].json() == {
        "contents": [{"role": "user", "parts": [{"text": "Tell a story"}]}],
        "generationConfig": {"maxOutputTokens": 5},
    }
    again = asyncio.run(gemini.agenerate(prompt="Tell a story"))
    assert again.text == "Once upon a time"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (wire.JPEG, "image/jpeg"),
        (wire.PNG, "image/png"),
        (wire.GIF, "image/gif"),
        (wire.WEBP, "image/webp"),
    ],
)
def test_image_bytes_become_inline_data(
    gemini: Backend, protocol_server: ProtocolServer, data: bytes, mime: str
) -> None:
    protocol_server.on("POST", GEN, Reply.json(wire.response("A picture.")))
    content = [{"type": "image", "data": data}, {"type": "text", "text": "Describe"}]
    gemini.chat(messages=[{"role": "user", "content": content}])
    parts = protocol_server.requests[0].json()["contents"][0]["parts"]
    assert parts == [
        {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}},
        {"text": "Describe"},
    ]


def test_openai_style_image_urls(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", GEN, Reply.json(wire.response("ok")))
    url = "data:image/png;base64," + base64.b64encode(wire.PNG).decode()
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.jpg"}},
    ]
    gemini.chat(messages=[{"role": "user", "content": content}])
    parts = protocol_server.requests[0].json()["contents"][0]["parts"]
    assert parts[1] == {
        "inlineData": {"mimeType": "image/png", "data": base64.b64encode(wire.PNG).decode()}
    }
    assert parts[2] == {
        "fileData": {"fileUri": "https://example.invalid/cat.jpg", "mimeType": "image/jpeg"}
    }


def test_tuned_model_names_are_kept(gemini: Backend, protocol_server: ProtocolServer) -> None:
    path = "/v1beta/tunedModels/my-model-123:generateContent"
    protocol_server.on("POST", path, Reply.json(wire.response("tuned")))
    assert gemini.chat(messages=MESSAGES, model="tunedModels/my-model-123").text == "tuned"


@pytest.mark.parametrize(
    ("model", "prompt_price", "output_price"),
    [
        ("gemini-2.5-flash", 0.3, 2.5),
        ("models/gemini-2.5-pro", 1.25, 10.0),
        ("gemini-2.5-flash-lite", 0.1, 0.4),
        ("gemini-2.0-flash-001", 0.1, 0.4),
        ("gemini-1.5-flash-8b", 0.0375, 0.15),
    ],
)
def test_cost_from_the_gemini_price_list(
    gemini: Backend,
    protocol_server: ProtocolServer,
    model: str,
    prompt_price: float,
    output_price: float,
) -> None:
    path = f"/v1beta/models/{model.removeprefix('models/')}:generateContent"
    usage = wire.usage(1_000, 2_000)
    protocol_server.on("POST", path, Reply.json(wire.response("x", usage_metadata=usage)))
    gemini.chat(messages=MESSAGES, model=model)
    expected = (1_000 * prompt_price + 2_000 * output_price) / 1e6
    assert gemini.get_usage_stats()["estimated_cost_usd"] == pytest.approx(expected, abs=1e-6)
