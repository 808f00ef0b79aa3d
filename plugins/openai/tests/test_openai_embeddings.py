"""OpenAI embeddings on the wire: base64 unless the caller names a format (as the official SDK
does), decoded to lists of floats or, with ``output="numpy"``, one float32 array; a server
that ignores the field still works. The scripted server answers as OpenAI documents:
``encoding_format`` ``"float"`` (the default) or ``"base64"`` (little-endian float32)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

EMBED = "/v1/embeddings"
MODEL = "text-embedding-3-small"
VECTORS = [[0.5, -1.25, 3.0, 0.125], [1.0, 2.0, -0.5, 0.0]]  # exact in float32


@pytest.fixture
def server(protocol_server: ProtocolServer) -> ProtocolServer:
    protocol_server.on("POST", EMBED, default=wire.embeddings_reply(VECTORS, model=MODEL))
    return protocol_server


def test_default_asks_for_base64_and_returns_floats(
    openai: Backend, server: ProtocolServer
) -> None:
    reply = openai.embed(input=["a", "b"], model=MODEL)
    assert server.requests[0].json() == {
        "model": MODEL,
        "input": ["a", "b"],
        "encoding_format": "base64",
    }
    assert reply.embeddings == VECTORS and reply["embedding"] == VECTORS[0]
    assert all(type(x) is float for v in reply.embeddings for x in v)
    assert reply.model == MODEL and reply.usage is not None and reply.usage.prompt_tokens == 8

    async def main() -> Any:
        try:
            return await openai.aembed(input=["c", "d"], model=MODEL)
        finally:
            await openai.aclose()

    assert asyncio.run(main()).embeddings == VECTORS
    assert server.requests[1].json()["encoding_format"] == "base64"


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_a_named_format_is_sent_as_given(openai: Backend, server: ProtocolServer, fmt: str) -> None:
    reply = openai.embed(input=["a", "b"], model=MODEL, encoding_format=fmt)  # type: ignore[arg-type]
    assert server.requests[0].json()["encoding_format"] == fmt
    assert server.requests[0].json()["input"] == ["a", "b"]
    assert reply.embeddings == VECTORS  # base64 asked by the caller: decoded all the same


def test_numpy_output(openai: Backend, server: ProtocolServer) -> None:
    np = pytest.importorskip("numpy")
    reply = openai.embed(input=["a", "b"], model=MODEL, output="numpy")
    assert server.requests[0].json()["encoding_format"] == "base64"
    assert isinstance(reply.embeddings, np.ndarray)
    assert (reply.embeddings.shape, reply.embeddings.dtype) == ((2, 4), np.float32)
    assert reply.embeddings.tolist() == VECTORS
    assert reply["embedding"].tolist() == VECTORS[0]
    guide = openai.embed(input=["a", "b"], model=MODEL, encoding_format="float", output="numpy")
    assert np.array_equal(guide.embeddings, reply.embeddings)


def test_a_server_that_ignores_base64_still_works(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", EMBED, default=Reply.json(wire.embeddings(VECTORS)))  # floats
    assert openai.embed(input=["a", "b"], model=MODEL).embeddings == VECTORS
    assert protocol_server.requests[0].json()["encoding_format"] == "base64"
    np = pytest.importorskip("numpy")
    array = openai.embed(input=["a", "b"], model=MODEL, output="numpy").embeddings
    assert array.dtype == np.float32 and array.tolist() == VECTORS


def test_malformed_base64_names_the_vector(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    body = wire.embeddings(VECTORS, encoding_format="base64")
    body["data"][1]["embedding"] = body["data"][1]["embedding"][:-4]  # 16 bytes cut to 15
    protocol_server.on("POST", EMBED, Reply.json(body))
    with pytest.raises(errors.MalformedResponseError, match="embedding 1 has 15 bytes, not"):
        openai.embed(input=["a", "b"], model=MODEL)


def test_official_sdk_asks_and_reads_the_same(openai: Backend, server: ProtocolServer) -> None:
    """The official SDK (not written here) against the same server: the same request body by
    default, and the same vectors."""
    sdk_module = pytest.importorskip("openai")
    sdk = sdk_module.OpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)
    try:
        theirs = sdk.embeddings.create(input=["a", "b"], model=MODEL)
        ours = openai.embed(input=["a", "b"], model=MODEL)
        sent_theirs, sent_ours = (r.json() for r in server.requests_to(EMBED))
        assert sent_theirs == sent_ours  # encoding_format "base64" on both
        assert [d.embedding for d in theirs.data] == ours.embeddings == VECTORS
    finally:
        sdk.close()


def test_without_numpy_lists_work_and_numpy_is_a_clear_error() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["numpy"] = None  # as if numpy were not installed
        from ipfs_accelerate_py import errors
        from ipfs_accelerate_py.core import get_backend
        from ipfs_accelerate_py.testing import openai_wire as wire
        from ipfs_accelerate_py.testing.server import ProtocolServer

        with ProtocolServer() as server:
            server.on("POST", "/v1/embeddings", default=wire.embeddings_reply([[0.5, -1.25]]))
            b = get_backend("openai", api_key="sk-" + "k" * 20, base_url=server.url("/v1"))
            print(b.embed(input="x", model="m").embeddings)
            try:
                b.embed(input="x", model="m", output="numpy")
            except errors.ConfigurationError as exc:
                print(exc.message)
            print([r.json()["encoding_format"] for r in server.requests])
            b.close()
        """
    )
    env = {**os.environ, "IPFS_ACCELERATE_NO_DOTENV": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "[[0.5, -1.25]]",
        'output="numpy" needs numpy, which is not installed: '
        'pip install "ipfs-accelerate-core[numpy]"',
        "['base64']",  # the numpy call sent nothing
    ]
