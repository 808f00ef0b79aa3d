"""Google's own SDK (google-genai) against the same scripted server: our picture of the
protocol checked by a client nobody here wrote. Skipped when google-genai is absent."""

from __future__ import annotations

import gemini_wire as wire
import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

GEN = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
PIECES = ["Hé", "llo, ", "wörld ", "🚀", "!"]


def test_official_sdk_reads_the_scripted_replies_and_sends_what_we_send(
    protocol_server: ProtocolServer, gemini: Backend, secret: str
) -> None:
    genai = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    protocol_server.on("POST", GEN, default=Reply.json(wire.response("I'm well!")))
    protocol_server.on("POST", STREAM, default=wire.sse(wire.stream_events(PIECES), split=7))
    # the SDK's Gemini API version is v1beta (newer SDKs default to v1 with a custom base URL)
    http_options = {"base_url": protocol_server.base_url, "api_version": "v1beta"}
    client = genai.Client(api_key=secret, http_options=http_options)
    config = types.GenerateContentConfig(
        system_instruction="Be brief",
        temperature=0.5,
        top_p=0.9,
        top_k=20,
        max_output_tokens=64,
        stop_sequences=["END"],
        candidate_count=1,
        response_mime_type="application/json",
    )

    result = client.models.generate_content(
        model="gemini-2.5-flash", contents="Hello", config=config
    )
    assert result.text == "I'm well!"
    assert result.usage_metadata.prompt_token_count == 8
    assert result.usage_metadata.candidates_token_count == 12
    assert result.candidates[0].finish_reason == types.FinishReason.STOP

    streamed = [
        c.text
        for c in client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Hello", config=config
        )
    ]
    assert streamed == PIECES

    # our requests for the same call
    ours = gemini.chat(
        messages=[{"role": "user", "content": "Hello"}],
        system="Be brief",
        temperature=0.5,
        top_p=0.9,
        top_k=20,
        max_tokens=64,
        stop=["END"],
        n=1,
        response_format={"type": "json_object"},
    )
    assert ours.text == result.text
    assert "".join(c.text for c in gemini.stream(messages=[{"role": "user", "content": "Hello"}]))
    sdk_chat, sdk_stream, our_chat, our_stream = protocol_server.requests
    assert sdk_chat.path == our_chat.path == GEN
    assert sdk_stream.path == our_stream.path == STREAM
    assert sdk_stream.query == our_stream.query == {"alt": "sse"}
    assert sdk_chat.headers["x-goog-api-key"] == our_chat.headers["x-goog-api-key"] == secret
    sdk_body, our_body = sdk_chat.json(), our_chat.json()
    assert sdk_body["contents"] == our_body["contents"]
    assert sdk_body["generationConfig"] == our_body["generationConfig"]
    assert sdk_body["systemInstruction"]["parts"] == our_body["systemInstruction"]["parts"]
