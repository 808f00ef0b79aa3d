"""hf_tei success paths, sync and async: embed, batch splitting, similarity, rerank, sparse."""

from __future__ import annotations

import asyncio
import importlib.util
import math
from typing import Any

import hf_wire as wire
import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

needs_numpy = pytest.mark.skipif(
    importlib.util.find_spec("numpy") is None,
    reason="calculate_similarity needs numpy, which this plugin does not install",
)


MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def embed_reply(delay: float = 0.0) -> Any:
    """A TEI ``/embed`` that answers one vector per input, derived from the text."""

    def reply(request: RecordedRequest) -> Reply:
        return Reply.json([wire.vector_for(t) for t in request.json()["inputs"]], delay=delay)

    return reply


def test_generate_embedding(tei_client: Any, protocol_server: ProtocolServer, secret: str) -> None:
    protocol_server.on("POST", "/embed", default=embed_reply())
    vector = tei_client.generate_embedding(MODEL, "This is a text.")
    assert vector == wire.vector_for("This is a text.") and len(vector) == 4
    [req] = protocol_server.requests
    assert req.json() == {"inputs": ["This is a text."]}
    assert req.headers["authorization"] == f"Bearer {secret}"
    assert asyncio.run(tei_client.agenerate_embedding(None, "abc")) == wire.vector_for("abc")


def test_embed_passes_normalize_and_truncate(
    tei_backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", "/embed", default=embed_reply())
    result = tei_backend.embed(input=["a", "bb"], normalize=False, truncate=True)
    assert protocol_server.requests[0].json() == {
        "inputs": ["a", "bb"],
        "normalize": False,
        "truncate": True,
    }
    assert result.embeddings == [wire.vector_for("a"), wire.vector_for("bb")]
    assert result["embedding"] == wire.vector_for("a")


def test_batch_embed_splits_by_max_client_batch_size(
    tei_client: Any, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("GET", "/info", default=Reply.json(wire.tei_info(2)))
    protocol_server.on("POST", "/embed", default=embed_reply(delay=0.2))
    texts = [f"text number {'x' * i}" for i in range(5)]
    vectors = tei_client.batch_embed(MODEL, texts)
    assert vectors == [wire.vector_for(t) for t in texts]
    sent = [r.json()["inputs"] for r in protocol_server.requests_to("/embed")]
    assert sorted(sent) == sorted([texts[0:2], texts[2:4], texts[4:5]])
    assert protocol_server.max_in_flight >= 2  # sub-batches ran concurrently
    assert tei_client.batch_embed(MODEL, texts[:2]) == [wire.vector_for(t) for t in texts[:2]]
    assert len(protocol_server.requests_to("/info")) == 1  # read once per endpoint


def test_abatch_embed_gathers(tei_client: Any, protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/info", default=Reply.json(wire.tei_info(3)))
    protocol_server.on("POST", "/embed", default=embed_reply(delay=0.2))
    texts = [chr(ord("a") + i) * (i + 1) for i in range(7)]
    vectors = asyncio.run(tei_client.abatch_embed(MODEL, texts))
    assert vectors == [wire.vector_for(t) for t in texts]
    assert sorted(len(r.json()["inputs"]) for r in protocol_server.requests_to("/embed")) == [
        1,
        3,
        3,
    ]
    assert protocol_server.max_in_flight >= 2
    assert len(protocol_server.requests_to("/info")) == 1


@needs_numpy
def test_numpy_output_from_embed_and_across_sub_batches(
    tei_client: Any, protocol_server: ProtocolServer
) -> None:
    import numpy as np

    protocol_server.on("GET", "/info", default=Reply.json(wire.tei_info(2)))
    protocol_server.on("POST", "/embed", default=embed_reply())
    texts = [chr(ord("a") + i) * (i + 1) for i in range(5)]
    expected = np.asarray([wire.vector_for(t) for t in texts], dtype=np.float32)
    one = tei_client.backend.embed(input=texts[:2], output="numpy")  # /embed sends floats
    assert one.embeddings.dtype == np.float32 and np.array_equal(one.embeddings, expected[:2])
    row = tei_client.generate_embedding(MODEL, texts[0], output="numpy")
    assert row.shape == (4,) and np.array_equal(row, expected[0])
    joined = tei_client.batch_embed(MODEL, texts, output="numpy")  # 3 sub-batches, one array
    assert joined.shape == (5, 4) and np.array_equal(joined, expected)
    joined = asyncio.run(tei_client.abatch_embed(MODEL, texts, output="numpy"))
    assert np.array_equal(joined, expected)
    assert all("output" not in r.json() for r in protocol_server.requests_to("/embed"))


def test_batch_too_large_is_resplit_and_remembered(
    tei_client: Any, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("GET", "/info", default=Reply.json(wire.tei_info(4)))

    def strict(request: RecordedRequest) -> Reply:
        inputs = request.json()["inputs"]
        if len(inputs) > 2:
            message = f"batch size {len(inputs)} > maximum allowed batch size 2"
            return wire.error_reply(422, message, "Validation")
        return Reply.json([wire.vector_for(t) for t in inputs])

    protocol_server.on("POST", "/embed", default=strict)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    assert tei_client.batch_embed(MODEL, texts) == [wire.vector_for(t) for t in texts]
    sizes = [len(r.json()["inputs"]) for r in protocol_server.requests_to("/embed")]
    assert sorted(sizes) == [1, 2, 2, 4]  # [4] refused, split as the server said; [1] fine
    before = len(protocol_server.requests_to("/embed"))
    assert tei_client.batch_embed(MODEL, texts[:4]) == [wire.vector_for(t) for t in texts[:4]]
    after = [len(r.json()["inputs"]) for r in protocol_server.requests_to("/embed")[before:]]
    assert after == [2, 2]  # the learned limit, no refused attempt


def test_payload_too_large_413_is_halved(tei_client: Any, protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/info", default=Reply.json(wire.tei_info(8)))

    def limited(request: RecordedRequest) -> Reply:
        inputs = request.json()["inputs"]
        if len(inputs) > 1:
            return Reply.text("Failed to buffer the request body: length limit exceeded", 413)
        return Reply.json([wire.vector_for(t) for t in inputs])

    protocol_server.on("POST", "/embed", default=limited)
    texts = ["one", "two", "three"]
    assert asyncio.run(tei_client.abatch_embed(MODEL, texts)) == [wire.vector_for(t) for t in texts]
    sizes = [len(r.json()["inputs"]) for r in protocol_server.requests_to("/embed")]
    assert sorted(sizes) == [1, 1, 1, 2, 3]


def test_other_422_is_not_resplit(tei_client: Any, protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/info", default=Reply.json(wire.tei_info(8)))
    protocol_server.on(
        "POST",
        "/embed",
        default=wire.error_reply(422, "Input validation error: inputs too long", "Tokenizer"),
    )
    with pytest.raises(errors.InvalidRequestError, match="inputs too long") as info:
        tei_client.batch_embed(MODEL, ["a", "b"])
    assert info.value.code == "Tokenizer"
    assert len(protocol_server.requests_to("/embed")) == 1


def test_batch_embed_without_info_route_uses_default(
    tei_client: Any, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("GET", "/info", default=Reply.json({"error": "not found"}, status=404))
    protocol_server.on("POST", "/embed", default=embed_reply())
    texts = [f"t{i}" for i in range(40)]
    assert tei_client.batch_embed(MODEL, texts) == [wire.vector_for(t) for t in texts]
    assert sorted(len(r.json()["inputs"]) for r in protocol_server.requests_to("/embed")) == [
        8,
        32,
    ]


@needs_numpy
def test_calculate_similarity(tei_client: Any) -> None:
    assert tei_client.calculate_similarity([1.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)
    assert tei_client.calculate_similarity([1.0, 0.0], [0.0, 2.0]) == pytest.approx(0.0)
    assert tei_client.calculate_similarity([1, 2, 3], [-1, -2, -3]) == pytest.approx(-1.0)
    value = tei_client.calculate_similarity([1.0, 1.0], [1.0, 0.0])
    assert isinstance(value, float) and value == pytest.approx(1 / math.sqrt(2))
    with pytest.raises(errors.InvalidArgumentError, match="one length"):
        tei_client.calculate_similarity([1.0], [1.0, 2.0])
    with pytest.raises(errors.InvalidArgumentError, match="zero vector"):
        tei_client.calculate_similarity([0.0, 0.0], [1.0, 2.0])


def test_rerank(tei_client: Any, protocol_server: ProtocolServer) -> None:
    ranks = [{"index": 1, "score": 0.98}, {"index": 0, "score": 0.02}]
    protocol_server.on("POST", "/rerank", default=Reply.json(ranks))
    texts = ["Deep Learning is not...", "Deep learning is..."]
    assert tei_client.rerank("What is Deep Learning?", texts) == ranks
    assert asyncio.run(tei_client.arerank("q", texts, return_text=True)) == ranks
    first, second = (r.json() for r in protocol_server.requests)
    assert first == {"query": "What is Deep Learning?", "texts": texts}
    assert second == {"query": "q", "texts": texts, "return_text": True}


def test_embed_sparse(tei_client: Any, protocol_server: ProtocolServer) -> None:
    sparse = [[{"index": 2003, "value": 0.5}, {"index": 7, "value": 1.25}]]
    protocol_server.on("POST", "/embed_sparse", Reply.json(sparse))
    assert tei_client.embed_sparse("What is BERT?") == sparse
    assert protocol_server.requests[0].json() == {"inputs": ["What is BERT?"]}


def test_base64_goes_to_openai_route(tei_backend: Backend, protocol_server: ProtocolServer) -> None:
    vectors = [[0.5, -1.25]]
    protocol_server.on(
        "POST",
        "/v1/embeddings",
        Reply.json(openai_wire.embeddings(vectors, encoding_format="base64")),
    )
    assert tei_backend.embed(input="x", encoding_format="base64").embeddings == vectors
    assert protocol_server.requests[0].json() == {
        "model": "tei",
        "input": ["x"],
        "encoding_format": "base64",
    }


def test_info_health_and_handler(tei_client: Any, protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/info", default=Reply.json(wire.tei_info(16)))
    protocol_server.on("GET", "/health", default=Reply(status=200))
    protocol_server.on("POST", "/embed", default=embed_reply())
    assert tei_client.get_model_info()["max_client_batch_size"] == 16
    assert tei_client.health_check() is True
    handler = tei_client.create_remote_text_embedding_endpoint_handler()
    assert asyncio.run(handler("hello"))["embedding"] == wire.vector_for("hello")


def test_hosted_feature_extraction(
    protocol_server: ProtocolServer, hosted: str, secret: str
) -> None:

    from ipfs_accelerate_hf.guide import hf_tei

    path = f"/hf-inference/models/{MODEL}/pipeline/feature-extraction"
    protocol_server.on("POST", path, default=embed_reply())
    client = hf_tei(backend=get_backend("hf_tei", api_key=secret, base_url=hosted))
    assert client.generate_embedding(MODEL, "x") == wire.vector_for("x")
    texts = [f"t{i}" for i in range(33)]
    assert client.batch_embed(MODEL, texts) == [wire.vector_for(t) for t in texts]
    assert protocol_server.requests_to("/info") == []  # the router has no /info
    assert protocol_server.requests[0].json() == {"inputs": ["x"]}
    assert protocol_server.requests[0].headers["authorization"] == f"Bearer {secret}"
    with pytest.raises(errors.InvalidArgumentError, match="model id"):
        client.generate_embedding(None, "x")
    with pytest.raises(errors.InvalidArgumentError, match="self-hosted"):
        client.rerank("q", ["a"])
    assert len(protocol_server.requests) == 3
    client.close()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.batch_embed(MODEL, "one string"), "list of strings"),
        (lambda c: c.batch_embed(MODEL, []), "non-empty"),
        (lambda c: c.rerank("", ["a"]), "query"),
        (lambda c: c.rerank("q", []), "texts"),
        (lambda c: c.embed_sparse([]), "texts"),
    ],
)
def test_bad_arguments_fail_before_sending(
    tei_client: Any, protocol_server: ProtocolServer, call: Any, match: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=match):
        call(tei_client)
    assert protocol_server.requests == []


def test_async_extras(
    tei_client: Any, tei_backend: Backend, protocol_server: ProtocolServer
) -> None:
    from ipfs_accelerate_hf import operations

    sparse = [[{"index": 1, "value": 0.5}], [{"index": 2, "value": 0.25}]]
    protocol_server.on("POST", "/embed_sparse", Reply.json(sparse))
    protocol_server.on("GET", "/info", Reply.json(wire.tei_info(8)))
    protocol_server.on("GET", "/health", Reply(status=200))
    assert asyncio.run(tei_client.aembed_sparse(["a", "b"])) == sparse
    assert asyncio.run(operations.amodel_info(tei_backend))["max_client_batch_size"] == 8
    assert asyncio.run(operations.ahealth(tei_backend)) is True


@needs_numpy
def test_numpy_is_imported_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ipfs_accelerate_py.api_backends import hf_tei\n"
        "c = hf_tei(metadata={'hf_tei_base_url': 'http://127.0.0.1:9'})\n"
        "assert 'numpy' not in sys.modules\n"
        "assert c.calculate_similarity([1.0, 0.0], [1.0, 0.0]) == 1.0\n"
        "assert 'numpy' in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_batch_size_is_cached_per_endpoint(
    tei_client: Any, tei_backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("GET", "/info", Reply.json(wire.tei_info(2)), Reply.json(wire.tei_info(3)))
    protocol_server.on("POST", "/embed", default=embed_reply())
    other = tei_backend.create_endpoint(base_url=protocol_server.base_url)
    texts = ["a", "b", "c", "d", "e", "f"]
    for _ in range(2):
        assert tei_client.batch_embed(MODEL, texts) == [wire.vector_for(t) for t in texts]
        assert asyncio.run(tei_client.abatch_embed(MODEL, texts, endpoint_id=other)) == [
            wire.vector_for(t) for t in texts
        ]
    sizes = [len(r.json()["inputs"]) for r in protocol_server.requests_to("/embed")]
    assert sorted(sizes) == sorted([2, 2, 2, 3, 3] * 2)
    assert len(protocol_server.requests_to("/info")) == 2  # once for each endpoint


def test_each_sub_batch_is_retried_on_its_own(
    tei_client: Any, protocol_server: ProtocolServer, clock: Any
) -> None:
    protocol_server.on("GET", "/info", default=Reply.json(wire.tei_info(2)))
    failed: list[bool] = []

    def flaky(request: RecordedRequest) -> Reply:
        inputs = request.json()["inputs"]
        if "c" in inputs and not failed:
            failed.append(True)
            return wire.error_reply(429, "Model is overloaded", "Overloaded")
        return Reply.json([wire.vector_for(t) for t in inputs])

    protocol_server.on("POST", "/embed", default=flaky)
    texts = ["a", "b", "c", "d", "e"]
    assert tei_client.batch_embed(MODEL, texts) == [wire.vector_for(t) for t in texts]
    sent = [r.json()["inputs"] for r in protocol_server.requests_to("/embed")]
    assert sorted(sent) == sorted([["a", "b"], ["c", "d"], ["c", "d"], ["e"]])
    assert len(clock.sleeps) == 1
