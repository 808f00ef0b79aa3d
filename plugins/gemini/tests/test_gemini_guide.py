"""The quickstart guide's Gemini examples, run as written against the loopback server."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import gemini_wire as wire
import pytest

from ipfs_accelerate_py.testing.guide import python_blocks, run_block
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

MODELS = "/v1beta/models"


def _serve(server: ProtocolServer) -> None:
    def generate(request: RecordedRequest) -> Reply:
        parts = request.json()["contents"][0]["parts"]
        if "inlineData" in parts[0]:
            return Reply.json(wire.response("A tiny white square."))
        return Reply.json(wire.response("I'm doing well, thank you!"))

    for model in ("gemini-1.0-pro", "gemini-1.5-pro-vision"):
        server.on("POST", f"{MODELS}/{model}:generateContent", default=generate)
    server.on(
        "POST",
        f"{MODELS}/gemini-1.0-pro:streamGenerateContent",
        default=wire.sse(wire.stream_events(["Doing ", "great", "!"]), split=9),
    )


def test_using_gemini_api_block_runs_as_written(
    protocol_server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    [block] = python_blocks("Using Gemini API")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test.jpg").write_bytes(wire.JPEG)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", protocol_server.base_url)
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-env-key-not-used")
    _serve(protocol_server)

    out = run_block(block)

    assert out == (
        "I'm doing well, thank you!\nA tiny white square.\nDoing great!\nResponse complete\n"
    )
    chat, image, stream = protocol_server.requests
    # the block's metadata names the key, and metadata wins over the environment
    assert {r.headers["x-goog-api-key"] for r in protocol_server.requests} == {"your-key-here"}
    assert chat.path == f"{MODELS}/gemini-1.0-pro:generateContent"
    assert chat.json() == {
        "contents": [{"role": "user", "parts": [{"text": "Hello, how are you?"}]}]
    }
    assert image.path == f"{MODELS}/gemini-1.5-pro-vision:generateContent"
    assert image.json()["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(wire.JPEG).decode()}},
        {"text": "Describe this image in detail"},
    ]
    assert stream.path == f"{MODELS}/gemini-1.0-pro:streamGenerateContent"
    assert stream.query == {"alt": "sse"}


def test_gemini_endpoint_handler_lines_of_the_handlers_block(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "Creating Endpoint Handlers" block needs every plugin installed; its Gemini lines
    and its ``process_prompt`` run here as written."""
    [block] = python_blocks("Creating Endpoint Handlers")
    lines = block.code.splitlines()
    start = lines.index("# Gemini endpoint handler")
    code = "from ipfs_accelerate_py.api_backends import gemini\n" + "\n".join(lines[start:])
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", protocol_server.base_url)
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-handler-key")
    monkeypatch.setenv("GEMINI_MODEL", "gemini-2.0-flash")
    protocol_server.on(
        "POST",
        f"{MODELS}/gemini-2.0-flash:generateContent",
        Reply.json(wire.response("handled")),
    )
    scope: dict[str, object] = {}
    exec(compile(code, "<guide handlers>", "exec"), scope)
    text = asyncio.run(scope["process_prompt"]("Hi", scope["gemini_handler"]))  # type: ignore[operator]
    assert text == "handled"
    [req] = protocol_server.requests
    assert req.headers["x-goog-api-key"] == "AIza-handler-key"


def test_guide_class_methods(protocol_server: ProtocolServer) -> None:
    from ipfs_accelerate_py.api_backends import gemini

    client = gemini(
        metadata={"gemini_api_key": "AIza-meta", "google_gemini_base_url": protocol_server.base_url}
    )
    protocol_server.on(
        "POST",
        f"{MODELS}/gemini-2.5-flash:generateContent",
        Reply.json(wire.response("default model")),
    )
    assert client.chat([{"role": "user", "content": "x"}])["text"] == "default model"
    client.max_retries = 0  # resilience settings belong to the backend
    assert client.backend.max_retries == 0
    with pytest.raises(ValueError, match="not PNG, JPEG, WebP or GIF"):
        client.process_image(b"plain text", "what is it?")
    assert len(protocol_server.requests) == 1
