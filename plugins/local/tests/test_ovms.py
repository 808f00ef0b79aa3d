"""``ovms``: KServe v2 REST, TensorFlow-Serving predict and the OpenAI ``/v3`` endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.api_backends import ovms as ovms_api
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

np = pytest.importorskip("numpy")

METADATA = {
    "name": "resnet",
    "versions": ["1"],
    "platform": "OpenVINO",
    "inputs": [{"name": "0", "datatype": "FP32", "shape": [1, 224, 224, 3]}],
    "outputs": [{"name": "1463", "datatype": "FP32", "shape": [1, 1000]}],
}
NOT_FOUND = {"error": "Model with requested name is not found"}
MESSAGES = [{"role": "user", "content": "Hello"}]


def infer_reply(*outputs: dict) -> Reply:
    """An OVMS KServe infer reply."""
    return Reply.json(
        {"model_name": "m", "model_version": "1", "id": "1", "outputs": list(outputs)}
    )


def tensor(name: str, datatype: str, shape: list[int], data: list) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


@pytest.fixture
def client(ovms: Backend) -> ovms_api:
    """The guide class bound to the fixture's backend (which runs on the fake clock)."""
    return ovms_api(backend=ovms)


def test_health_checks(make: Callable[..., Backend], protocol_server: ProtocolServer) -> None:
    client = ovms_api(metadata={"ovms_base_url": protocol_server.url("/")})
    client.max_retries = 0
    protocol_server.on("GET", "/v2/health/live", Reply.raw(b"{}"))
    protocol_server.on("GET", "/v2/health/ready", Reply.raw(b"{}"), Reply.raw(b"", status=503))
    protocol_server.on("GET", "/v2/models/resnet/ready", Reply.raw(b"{}"))
    protocol_server.on("GET", "/v2/models/nope/versions/2/ready", Reply.json(NOT_FOUND, status=404))
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    assert client.is_server_ready() is False
    assert client.is_model_ready("resnet") is True
    assert asyncio.run(client.ais_model_ready("nope", version=2)) is False
    assert client.get_usage_stats()["estimated_cost_usd"] == 0
    client.close()


def test_metadata_sync_and_async(ovms: Backend, protocol_server: ProtocolServer) -> None:
    from ipfs_accelerate_local import ovms as calls

    protocol_server.on("GET", "/v2/models/resnet", default=Reply.json(METADATA))
    protocol_server.on("GET", "/v2/models/resnet/versions/1", default=Reply.json(METADATA))
    assert ovms.request(calls.metadata_call("resnet"))["inputs"][0]["name"] == "0"
    assert asyncio.run(ovms.arequest(calls.metadata_call("resnet", 1)))["platform"] == "OpenVINO"


def test_infer_one_array_reads_the_input_name_once(
    client: ovms_api, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("GET", "/v2/models/resnet", Reply.json(METADATA))
    out = [0.1, 0.7, 0.2]
    protocol_server.on(
        "POST",
        "/v2/models/resnet/infer",
        default=infer_reply(tensor("1463", "FP32", [1, 3], out)),
    )
    image = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    first = client.infer("resnet", image)
    second = asyncio.run(client.ainfer("resnet", image))
    for result in (first, second):
        assert result.dtype == np.float32 and result.shape == (1, 3)
        np.testing.assert_allclose(result, np.array([out], dtype=np.float32))
    assert len(protocol_server.requests_to("/v2/models/resnet")) == 1
    sent = protocol_server.requests_to("/v2/models/resnet/infer")[0].json()
    assert sent == {
        "inputs": [
            {"name": "0", "shape": [1, 2, 3], "datatype": "FP32", "data": [0, 1, 2, 3, 4, 5]}
        ]
    }


def test_infer_named_inputs_and_every_datatype(
    client: ovms_api, protocol_server: ProtocolServer
) -> None:
    outputs = [
        tensor("fp16", "FP16", [2], [0.5, -2.0]),
        tensor("bf16", "BF16", [1, 2], [[1.5, 3.0]]),  # nested data is valid too
        tensor("mask", "BOOL", [2, 1], [True, False]),
        tensor("label", "BYTES", [2], ["cat", "chat noir é"]),
        tensor("ids", "INT64", [3], [1, -2, 2**40]),
        tensor("u8", "UINT8", [2, 2], [0, 1, 2, 255]),
        tensor("empty", "FP32", [0, 4], []),
    ]
    protocol_server.on("POST", "/v2/models/multi/versions/3/infer", infer_reply(*outputs))
    result = client.infer(
        "multi",
        {
            "text": np.array(["hello", "wörld"], dtype=object),
            "flags": np.array([[True], [False]]),
            "half": np.array([1.5, 2.25], dtype=np.float16),
            "bf": np.array([1.0, 2.0], dtype=np.float32),
        },
        version=3,
        outputs=["fp16", "label"],
        datatypes={"bf": "BF16"},
    )
    sent = protocol_server.requests[0].json()
    assert [(i["name"], i["datatype"], i["shape"], i["data"]) for i in sent["inputs"]] == [
        ("text", "BYTES", [2], ["hello", "wörld"]),
        ("flags", "BOOL", [2, 1], [True, False]),
        ("half", "FP16", [2], [1.5, 2.25]),
        ("bf", "BF16", [2], [1.0, 2.0]),
    ]
    assert sent["outputs"] == [{"name": "fp16"}, {"name": "label"}]
    assert set(result) == {o["name"] for o in outputs}
    assert result["fp16"].dtype == np.float16 and result["fp16"].tolist() == [0.5, -2.0]
    assert result["bf16"].dtype == np.float32 and result["bf16"].shape == (1, 2)
    assert result["mask"].dtype == bool and result["mask"].shape == (2, 1)
    assert result["label"].tolist() == [b"cat", "chat noir é".encode()]
    assert result["ids"].dtype == np.int64 and result["ids"][2] == 2**40
    assert result["u8"].dtype == np.uint8 and result["u8"].shape == (2, 2)
    assert result["empty"].shape == (0, 4)


@pytest.mark.parametrize(
    "bad",
    [
        tensor("o", "FP32", [2, 2], [1.0, 2.0, 3.0]),  # shape needs 4
        tensor("o", "FP32", [2], [1.0, "x"]),
        tensor("o", "INT8", [1], [300]),
        tensor("o", "INT32", [1], [1.5]),
        tensor("o", "BOOL", [1], [1]),
        tensor("o", "BYTES", [1], [5]),
        tensor("o", "FP16", [1], [1e6]),
        tensor("o", "COMPLEX", [1], [1]),
        tensor("o", "FP32", [-1], []),
        tensor("o", "FP32", "2", [1, 2]),
        {"name": "o", "datatype": "FP32", "shape": [1]},
        {"name": "o", "datatype": "FP32", "shape": [1], "data": 1.0},
        ["not", "an", "object"],
    ],
)
def test_bad_kserve_tensor_is_malformed(
    client: ovms_api, protocol_server: ProtocolServer, bad: object
) -> None:
    protocol_server.on("POST", "/v2/models/m/infer", default=infer_reply(bad))  # type: ignore[arg-type]
    with pytest.raises(errors.MalformedResponseError, match="KServe reply"):
        client.infer("m", np.zeros(1, dtype=np.float32), input_name="x")
    assert len(protocol_server.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text("<html><body>Bad Gateway</body></html>", content_type="text/html"),
        Reply.json({"model_name": "m", "outputs": []}),
        Reply.json({"predictions": [1]}),
        Reply.raw(b'{"outputs": [{"name": "o", "data'),
    ],
)
def test_malformed_infer_replies(
    client: ovms_api, protocol_server: ProtocolServer, reply: Reply
) -> None:
    protocol_server.on("POST", "/v2/models/m/infer", default=reply)
    with pytest.raises(errors.MalformedResponseError):
        client.infer("m", {"x": np.zeros(1, dtype=np.float32)})
    with pytest.raises(errors.MalformedResponseError):
        asyncio.run(client.ainfer("m", {"x": np.zeros(1, dtype=np.float32)}))


def test_infer_errors_map_to_core_classes(
    client: ovms_api, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", "/v2/models/gone/infer", Reply.json(NOT_FOUND, status=404))
    shape_error = {"error": "Invalid input shape - Expected: (1,3,224,224); Actual: (1,3)"}
    protocol_server.on("POST", "/v2/models/m/infer", Reply.json(shape_error, status=400))
    with pytest.raises(errors.NotFoundError, match="requested name is not found"):
        client.infer("gone", {"x": [1.0]})
    with pytest.raises(errors.InvalidRequestError, match="Invalid input shape"):
        client.infer("m", {"x": [1.0]})
    assert len(protocol_server.requests) == 2


def test_infer_retries_unavailable(client: ovms_api, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST",
        "/v2/models/m/infer",
        Reply.json({"error": "Model is not loaded yet"}, status=503),
        infer_reply(tensor("o", "FP32", [1], [2.0])),
    )
    assert client.infer("m", {"x": [1.0]}).tolist() == [2.0]
    assert len(protocol_server.requests) == 2


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", {"x": [1.0]}), "model"),
        (("../admin", {"x": [1.0]}), "not a valid model name"),
        (("m", {"x": np.array([1 + 2j])}), "cannot carry"),
        (("m", {"x": [b"\xff"]}), "UTF-8"),
        (("m", {"x": [float("nan")]}), "NaN"),
        (("m", {}), "must not be empty"),
    ],
)
def test_bad_inputs_fail_before_sending(
    client: ovms_api, protocol_server: ProtocolServer, args: tuple, match: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=match):
        client.infer(*args)
    assert protocol_server.requests == []


def test_predict_sync_and_async(client: ovms_api, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST", "/v1/models/resnet:predict", default=Reply.json({"predictions": [[0.1, 0.9]]})
    )
    protocol_server.on(
        "POST", "/v1/models/resnet/versions/2:predict", Reply.json({"error": "bad"}, status=400)
    )
    assert client.predict("resnet", np.ones((1, 2), dtype=np.float32)) == [[0.1, 0.9]]
    assert asyncio.run(client.apredict("resnet", [[1.0, 1.0]])) == [[0.1, 0.9]]
    assert protocol_server.requests[0].json() == {"instances": [[1.0, 1.0]]}
    with pytest.raises(errors.InvalidRequestError, match="bad"):
        client.predict("resnet", [[1.0]], version=2)


def test_v3_openai_endpoints(ovms: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST",
        "/v3/chat/completions",
        default=Reply.json(wire.chat_completion("hi", model="llama3")),
    )
    protocol_server.on("POST", "/v3/embeddings", default=Reply.json(wire.embeddings([[1.0, 2.0]])))
    protocol_server.on("GET", "/v3/models", default=Reply.json(wire.models(["llama3"], "OVMS")))
    completion = {
        "choices": [{"index": 0, "text": "!", "finish_reason": "stop"}],
        "model": "llama3",
        "object": "text_completion",
        "usage": wire.usage(1, 1),
    }
    protocol_server.on("POST", "/v3/completions", Reply.json(completion))
    assert ovms.chat(messages=MESSAGES, model="llama3").text == "hi"
    assert asyncio.run(ovms.aembed(input="x", model="gte")).embedding == [1.0, 2.0]
    assert ovms.embed(input="x", model="gte").embedding == [1.0, 2.0]
    assert [m.id for m in ovms.list_models()] == ["llama3"]
    assert [m.id for m in asyncio.run(ovms.alist_models())] == ["llama3"]
    assert asyncio.run(ovms.achat(messages=MESSAGES, model="llama3")).text == "hi"
    assert ovms.generate(prompt="Hi", model="llama3").text == "!"
    assert protocol_server.requests[0].json()["model"] == "llama3"
    stats = ovms.get_usage_stats()
    assert (stats["estimated_cost_usd"], stats["unpriced_models"]) == (0, [])


def test_v3_stream_sync_and_async(ovms: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST", "/v3/chat/completions", default=Reply.sse(wire.chat_stream(["Hé", "llo"]), split=5)
    )
    assert "".join(c.text for c in ovms.stream(messages=MESSAGES, model="llama3")) == "Héllo"

    async def collect() -> str:
        return "".join([c.text async for c in ovms.astream(messages=MESSAGES, model="llama3")])

    assert asyncio.run(collect()) == "Héllo"
    body = protocol_server.requests[0].json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_v3_chat_needs_a_model(ovms: Backend, protocol_server: ProtocolServer) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="OVMS_MODEL"):
        ovms.chat(messages=MESSAGES)
    assert protocol_server.requests == []
