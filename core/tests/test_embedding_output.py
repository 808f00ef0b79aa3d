"""Embedding vectors as lists of floats or one numpy array, whatever format travels on the
wire (``float`` or OpenAI's ``base64``), against the loopback server; malformed base64 and
numpy missing give clear errors; a list call never imports numpy."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

EMBED = "/v1/embeddings"
VECTORS = [[0.5, -1.25, 3.0, 0.125], [1.0, 2.0, -0.5, 0.0]]  # exact in float32


def b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def vector_of(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)) % 997)]


def by_text(request: RecordedRequest) -> Reply:
    """Each text's own vector, in the format the request asks for."""
    texts = request.json()["input"]
    return wire.embeddings_reply([vector_of(t) for t in texts])(request)


@pytest.fixture
def np() -> Any:
    return pytest.importorskip("numpy")


@pytest.mark.parametrize("wire_format", ["float", "base64"])
def test_numpy_output_is_one_float32_array(
    backend: Backend, protocol_server: ProtocolServer, np: Any, wire_format: str
) -> None:
    protocol_server.on("POST", EMBED, default=wire.embeddings_reply(VECTORS))
    reply = backend.embed(input=["a", "b"], model="e", encoding_format=wire_format, output="numpy")
    assert protocol_server.requests[0].json()["encoding_format"] == wire_format
    vectors = reply.embeddings
    assert isinstance(vectors, np.ndarray)
    assert (vectors.shape, vectors.dtype) == ((2, 4), np.float32)
    assert vectors.tolist() == VECTORS
    assert vectors.flags.writeable  # the caller may normalise in place
    vectors /= 2  # in place; .embedding is a view of the same first row
    assert reply.embedding.tolist() == [v / 2 for v in VECTORS[0]]
    as_dict = reply.to_dict()
    assert as_dict["embeddings"] is vectors and as_dict["embedding"].shape == (4,)
    assert reply.usage is not None and reply.usage.prompt_tokens == 8


@pytest.mark.parametrize("wire_format", ["float", "base64"])
def test_list_output_is_python_floats(
    backend: Backend, protocol_server: ProtocolServer, wire_format: str
) -> None:
    protocol_server.on("POST", EMBED, default=wire.embeddings_reply(VECTORS))
    reply = backend.embed(input=["a", "b"], model="e", encoding_format=wire_format)
    assert reply.embeddings == VECTORS
    assert type(reply.embeddings) is list
    assert all(type(x) is float for v in reply.embeddings for x in v)
    assert reply["embedding"] == VECTORS[0]


def test_list_and_numpy_replies_compare_by_value(
    backend: Backend, protocol_server: ProtocolServer, np: Any
) -> None:
    protocol_server.on("POST", EMBED, default=Reply.json(wire.embeddings(VECTORS)))
    as_list = backend.embed(input=["a", "b"], model="e")
    as_array = backend.embed(input=["a", "b"], model="e", output="numpy")
    assert as_list == as_array  # attrs equality by value, not element-wise array truth
    assert as_array != attrs.evolve(as_array, embeddings=as_array.embeddings * 2)


def test_aembed_numpy(backend: Backend, protocol_server: ProtocolServer, np: Any) -> None:
    protocol_server.on("POST", EMBED, default=wire.embeddings_reply(VECTORS))

    async def main() -> Any:
        try:
            return await backend.aembed(
                input=["a", "b"], model="e", encoding_format="base64", output="numpy"
            )
        finally:
            await backend.aclose()

    reply = asyncio.run(main())
    assert isinstance(reply.embeddings, np.ndarray) and reply.embeddings.tolist() == VECTORS


def test_a_server_mixing_formats_is_read(
    backend: Backend, protocol_server: ProtocolServer, np: Any
) -> None:
    body = wire.embeddings(VECTORS)
    body["data"][1]["embedding"] = b64(VECTORS[1])
    protocol_server.on("POST", EMBED, default=Reply.json(body))
    assert backend.embed(input=["a", "b"], model="e").embeddings == VECTORS
    array = backend.embed(input=["a", "b"], model="e", output="numpy").embeddings
    assert array.dtype == np.float32 and array.tolist() == VECTORS


def test_vectors_out_of_order_are_put_in_input_order(
    backend: Backend, protocol_server: ProtocolServer, np: Any
) -> None:
    body = wire.embeddings(VECTORS, encoding_format="base64")
    body["data"].reverse()
    protocol_server.on("POST", EMBED, default=Reply.json(body))
    assert backend.embed(input=["a", "b"], model="e").embeddings == VECTORS
    assert backend.embed(input=["a", "b"], model="e", output="numpy").embeddings.tolist() == VECTORS


def _data(*embeddings: Any) -> Reply:
    return Reply.json(
        {"object": "list", "data": [{"index": i, "embedding": e} for i, e in enumerate(embeddings)]}
    )


@pytest.mark.parametrize("output", ["list", "numpy"])
@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (_data(b64([1.0]), "!!notbase64"), r"embedding 1 is not valid base64"),
        (
            _data(b64([1.0]), "AAAA"),
            r"base64 embedding 1 has 3 bytes, not a whole number of float32",
        ),
        (_data(b64([1.0]), b64([1.0])[:-1]), r"embedding 1 is not valid base64"),  # cut short
        (_data(b64([1.0]), "Zm9v\nYmFy"), r"embedding 1 is not valid base64"),  # a line break
        (_data(b64([1.0]), "é" * 8), r"embedding 1 is not valid base64"),
        (_data([1.0], ["x"]), r"could not convert string to float"),
        (_data([1.0], {"values": [1.0]}), r"neither a list of floats nor base64"),
        (_data([1.0]), r"asked for 2 embeddings, got 1"),
        (Reply.json({"data": [1, 2]}), r"data entry is not an object"),
        (Reply.json({"data": [{"index": "a"}, {"index": 0}]}), r"index is not a number"),
    ],
)
def test_malformed_vectors_are_clear_errors(
    backend: Backend, protocol_server: ProtocolServer, reply: Reply, message: str, output: str
) -> None:
    if output == "numpy":
        pytest.importorskip("numpy")
    protocol_server.on("POST", EMBED, default=reply)
    with pytest.raises(errors.MalformedResponseError, match=message) as info:
        backend.embed(input=["a", "b"], model="e", output=output)
    assert info.value.provider == "loopback"
    assert len(protocol_server.requests) == 1  # a malformed reply is not retried


def test_a_reply_that_is_not_json_is_a_clear_error(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", EMBED, default=Reply(body=b"<html>gateway</html>"))
    with pytest.raises(errors.MalformedResponseError, match="not valid JSON: '<html>gateway"):
        backend.embed(input="a", model="e")


def test_json_that_orjson_refuses_is_read_as_before(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    """NaN is not JSON, but Python's decoder (and so core) reads it; embeddings too."""
    body = b'{"data": [{"index": 0, "embedding": [NaN, 1.5]}], "model": "m"}'
    protocol_server.on(
        "POST", EMBED, default=Reply(headers={"content-type": "application/json"}, body=body)
    )
    [[nan, value]] = backend.embed(input="a", model="e").embeddings
    assert nan != nan and value == 1.5


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (_data(b64([1.0, 2.0]), b64([1.0])), r"base64 embedding 1 has 1 values where the first"),
        (_data([1.0, 2.0], [1.0]), r"vectors of different lengths \(1, 2\)"),
    ],
)
def test_vectors_of_different_lengths_make_no_array(
    backend: Backend, protocol_server: ProtocolServer, np: Any, reply: Reply, message: str
) -> None:
    protocol_server.on("POST", EMBED, default=reply)
    with pytest.raises(errors.MalformedResponseError, match=message):
        backend.embed(input=["a", "b"], model="e", output="numpy")


def test_an_unknown_output_is_refused_before_sending(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="output must be 'list' or 'numpy'"):
        backend.embed(input="a", model="e", output="torch")  # type: ignore[call-overload]
    with pytest.raises(errors.InvalidArgumentError, match="encoding_format must be"):
        backend.embed(input="a", model="e", encoding_format="binary")  # type: ignore[arg-type]
    assert protocol_server.requests == []


def test_batched_single_embeds_each_get_their_own_row(
    backend: Backend, protocol_server: ProtocolServer, np: Any
) -> None:
    protocol_server.on("POST", EMBED, default=by_text)
    backend.enable_embedding_batching(max_batch_size=20, batch_timeout=0.3)
    texts = [f"text {i}" for i in range(6)]
    start = threading.Barrier(len(texts))

    def embed(text: str) -> Any:
        output = "numpy" if text[-1] in "024" else "list"
        start.wait()
        return backend.embed(input=text, model="e", output=output)

    with ThreadPoolExecutor(len(texts)) as pool:
        replies = list(pool.map(embed, texts))
    for text, reply in zip(texts, replies, strict=True):
        if text[-1] in "024":
            assert reply.embeddings.shape == (1, 2) and reply.embedding.tolist() == vector_of(text)
        else:
            assert reply.embeddings == [vector_of(text)]
    # numpy and list callers are batched apart: two requests, never one per text
    assert sorted(len(r.json()["input"]) for r in protocol_server.requests) == [3, 3]


def test_more_texts_than_the_server_takes_are_joined_in_order(
    backend: Backend, protocol_server: ProtocolServer, np: Any
) -> None:
    protocol_server.on("POST", EMBED, default=by_text)
    backend.spec = attrs.evolve(backend.spec, max_batch_inputs=4)
    texts = [f"t{i}" * (i + 1) for i in range(10)]
    reply = backend.embed(input=texts, model="e", encoding_format="base64", output="numpy")
    assert reply.embeddings.shape == (10, 2)
    assert reply.embeddings.tolist() == [vector_of(t) for t in texts]
    assert [len(r.json()["input"]) for r in protocol_server.requests] == [4, 4, 2]
    assert backend.embed(input=texts, model="e").embeddings == [vector_of(t) for t in texts]


def test_embed_handler_passes_output_through(
    backend: Backend, protocol_server: ProtocolServer, np: Any
) -> None:
    protocol_server.on("POST", EMBED, default=by_text)
    handler = backend.create_handler("embed", "e", output="numpy")
    result = asyncio.run(handler("hello"))
    assert result["text"] == "hello"
    assert isinstance(result["embeddings"], np.ndarray)
    assert result["embedding"].tolist() == vector_of("hello")


# -- numpy imported only when asked for, and a clear error without it ----------------------------

SCRIPT = """
import sys
{block}
sys.path.insert(0, {tests!r})
from conftest import LoopbackPlugin
from ipfs_accelerate_py import errors, plugins
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer

plugins.register(LoopbackPlugin())
with ProtocolServer() as server:
    server.on("POST", "/v1/embeddings", default=wire.embeddings_reply([[0.5, -1.25], [2.0, 0.0]]))
    b = get_backend("loopback", api_key="k" * 16, base_url=server.url("/v1"), max_retries=0)
    for fmt in ("base64", "float", None):
        reply = b.embed(input=["a", "b"], model="e", encoding_format=fmt)
        assert reply.embeddings == [[0.5, -1.25], [2.0, 0.0]], reply.embeddings
    print("lists", "numpy" in sys.modules and sys.modules["numpy"] is not None)
    try:
        b.embed(input=["a", "b"], model="e", output="numpy")
    except errors.ConfigurationError as exc:
        print("numpy:", exc.message)
    else:
        print("numpy: no error")
    print("requests", len(server.requests))
    b.close()
"""


def _run(block: str) -> list[str]:
    code = SCRIPT.format(block=block, tests=str(Path(__file__).parent))
    env = {**os.environ, "IPFS_ACCELERATE_NO_DOTENV": "1"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_without_numpy_lists_work_and_numpy_output_names_the_extra() -> None:
    lines = _run("sys.modules['numpy'] = None  # as if numpy were not installed")
    assert lines == [
        "lists False",
        'numpy: output="numpy" needs numpy, which is not installed: '
        'pip install "ipfs-accelerate-core[numpy]"',
        "requests 3",  # the numpy call was refused before anything was sent
    ]


def test_list_calls_never_import_numpy(np: Any) -> None:
    lines = _run("")
    assert lines[0] == "lists False"
    assert lines[1] == "numpy: no error"
