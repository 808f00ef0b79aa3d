"""A loopback OpenAI-protocol server for the benchmarks, meant to run in its own process.

It answers at once with canned bytes, so what a benchmark measures is the client. asyncio
streams, HTTP/1.1 keep-alive, requests read by ``Content-Length``; no routing beyond:

* a body with ``"stream": true`` gets an SSE chat stream, otherwise a chat completion
  (``Content-Length``);
* the first path segment picks the stream's size and framing: ``/c1000/v1/...`` sends 1,000
  content chunks with one SSE event per HTTP chunk (``Transfer-Encoding: chunked``, as
  api.openai.com does), ``/l1000/v1/...`` the same events as one ``Content-Length`` body;
  any other prefix means ``c1000``; ``/e503/v1/...`` answers every request with that HTTP
  error status (an OpenAI error body);
* Anthropic, Gemini and Ollama requests (by path) get those providers' replies and streams
  (benchmarks/plugin_wire.py), sized by the same prefix;
* ``/embeddings``: 256 vectors of 384 float32 values, base64 when the body asks for it;
* a request with an ``x-bench-pace: HEAD_MS,PIECES,GAP_MS`` header gets its reply slowly (the
  head after HEAD_MS, the body in PIECES parts GAP_MS apart): the soak's cancellations
  catch calls waiting for the head, mid-body and mid-stream with it.

Replies carry the headers api.openai.com sends (``x-request-id``, ``x-ratelimit-*``...),
so a client that reads them pays for it here too. Run as a script it prints its port on
stdout and exits when stdin closes (its parent went away).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
from typing import Any

import plugin_wire  # the other providers' framings (benchmarks/plugin_wire.py)

# The bodies are the ones ipfs_accelerate_py.testing.openai_wire builds, inlined so that
# this process imports nothing of the library (and stays small and fast).
MODEL = "gpt-4o-mini-2024-07-18"

OPENAI_HEADERS = (
    ("openai-organization", "user-bench"),
    ("openai-processing-ms", "250"),
    ("openai-version", "2020-10-01"),
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-limit-tokens", "200000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-remaining-tokens", "199970"),
    ("x-ratelimit-reset-requests", "6ms"),
    ("x-ratelimit-reset-tokens", "9ms"),
    ("x-request-id", "req_0123456789abcdef0123456789abcdef"),
)


def chat_completion_body() -> bytes:
    """A ``chat.completion`` object, as openai_wire.chat_completion() builds it."""
    body = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_741_569_952,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! How can I help?",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21},
        "system_fingerprint": "fp_06737a9306",
    }
    return json.dumps(body).encode()


def stream_events(chunks: int) -> list[bytes]:
    """The SSE events of a streamed completion with ``chunks`` content chunks: a role chunk,
    the content chunks, the finish chunk, the usage chunk and ``[DONE]``."""
    base: dict[str, Any] = {
        "id": "chatcmpl-stream1",
        "object": "chat.completion.chunk",
        "created": 1_741_569_952,
        "model": MODEL,
        "system_fingerprint": "fp_06737a9306",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    objs: list[Any] = [chunk({"role": "assistant", "content": "", "refusal": None})]
    objs += [chunk({"content": f" word{i}"}) for i in range(chunks)]
    objs.append(chunk({}, "stop"))
    usage = {"prompt_tokens": 9, "completion_tokens": chunks, "total_tokens": 9 + chunks}
    objs.append({**base, "choices": [], "usage": usage})
    # compact JSON, one event per line, as api.openai.com sends them
    events = [f"data: {json.dumps(o, separators=(',', ':'))}\n\n".encode() for o in objs]
    events.append(b"data: [DONE]\n\n")
    return events


def _head(content_type: str, framing: tuple[str, str]) -> bytes:
    lines = ["HTTP/1.1 200 OK", "date: Mon, 10 Mar 2025 01:39:12 GMT"]
    lines.append(f"content-type: {content_type}")
    lines.append(f"{framing[0]}: {framing[1]}")
    lines.append("connection: keep-alive")
    lines += [f"{k}: {v}" for k, v in OPENAI_HEADERS]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chat_reply() -> bytes:
    body = chat_completion_body()
    return _head("application/json", ("content-length", str(len(body)))) + body


def stream_reply(chunks: int, chunked: bool) -> bytes:
    events = stream_events(chunks)
    content_type = "text/event-stream; charset=utf-8"
    if chunked:
        body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
        return _head(content_type, ("transfer-encoding", "chunked")) + body
    body = b"".join(events)
    return _head(content_type, ("content-length", str(len(body)))) + body


def error_reply(status: int) -> bytes:
    """An OpenAI error reply with HTTP ``status`` (``/e503/v1/...``), stream or not."""
    body = json.dumps(
        {"error": {"message": "bench error", "type": "server_error", "code": None}}
    ).encode()
    head = _head("application/json", ("content-length", str(len(body))))
    return head.replace(b"200 OK", b"%d Error" % status, 1) + body


_MODE = re.compile(rb"[A-Z]+ /([cle])(\d+)/")
_STREAMS: dict[bytes, bytes] = {}
CHAT = chat_reply()


_PLUGIN_REPLIES: dict[tuple[str, bool, bytes], bytes] = {}


def plugin_reply(framing: str, content_type: str, head: bytes, body: bytes) -> bytes:
    """A reply in another provider's framing (benchmarks/plugin_wire.py), cached."""
    line = head.split(b"\r\n", 1)[0]
    stream = b'"stream":true' in body or b'"stream": true' in body or b":stream" in line
    m = _MODE.match(head)
    key = (framing, stream, m.group(0) if m else b"")
    reply = _PLUGIN_REPLIES.get(key)
    if reply is None:
        chunked, count = (m.group(1) == b"c", int(m.group(2))) if m else (True, 1000)
        payload = plugin_wire.body(framing, stream, count)
        if isinstance(payload, bytes):
            reply = _head("application/json", ("content-length", str(len(payload)))) + payload
        elif chunked:
            framed = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in payload) + b"0\r\n\r\n"
            reply = _head(content_type, ("transfer-encoding", "chunked")) + framed
        else:
            joined = b"".join(payload)
            reply = _head(content_type, ("content-length", str(len(joined)))) + joined
        _PLUGIN_REPLIES[key] = reply
    return reply


EMBED_N, EMBED_DIM = 256, 384
_EMBEDS: dict[bool, bytes] = {}


def embeddings_reply(b64: bool) -> bytes:
    """256 vectors of 384 float32 values (``/embeddings``), as floats or base64."""
    reply = _EMBEDS.get(b64)
    if reply is None:
        import base64
        import random
        import struct

        rng = random.Random(3)
        data = []
        for i in range(EMBED_N):
            raw = struct.pack(f"<{EMBED_DIM}f", *(rng.uniform(-0.1, 0.1) for _ in range(EMBED_DIM)))
            vec = list(struct.unpack(f"<{EMBED_DIM}f", raw))
            emb: Any = base64.b64encode(raw).decode() if b64 else [float(f"{v:.9g}") for v in vec]
            data.append({"object": "embedding", "index": i, "embedding": emb})
        body = json.dumps(
            {
                "object": "list",
                "data": data,
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 2048, "total_tokens": 2048},
            },
            separators=(",", ":"),
        ).encode()
        reply = _EMBEDS[b64] = _head("application/json", ("content-length", str(len(body)))) + body
    return reply


def reply_for(head: bytes, body: bytes) -> bytes:
    if b"/embeddings " in head.split(b"\r\n", 1)[0]:
        return embeddings_reply(b'"encoding_format":"base64"' in body)
    routed = plugin_wire.route(head)
    if routed is not None:
        return plugin_reply(*routed, head, body)
    if head.startswith(b"POST /e"):
        m = _MODE.match(head)
        if m and m.group(1) == b"e":
            return error_reply(int(m.group(2)))
    if b'"stream":true' not in body and b'"stream": true' not in body:
        return CHAT
    m = _MODE.match(head)
    key = m.group(0) if m else b"c1000"
    reply = _STREAMS.get(key)
    if reply is None:
        framing, count = (m.group(1), int(m.group(2))) if m else (b"c", 1000)
        reply = _STREAMS[key] = stream_reply(count, chunked=framing == b"c")
    return reply


async def paced(writer: asyncio.StreamWriter, reply: bytes, spec: bytes) -> None:
    """Send ``reply`` slowly, as ``x-bench-pace: HEAD_MS,PIECES,GAP_MS`` asks: wait HEAD_MS
    before the head, then send the body in PIECES parts GAP_MS apart (the head goes with the
    first part), so that a client can be caught waiting for the head, mid-body or
    mid-stream."""
    head_ms, pieces, gap_ms = (float(x) for x in spec.split(b","))
    if head_ms:
        await asyncio.sleep(head_ms / 1000)
    cut = reply.index(b"\r\n\r\n") + 4
    body = reply[cut:]
    size = max(1, -(-len(body) // max(1, int(pieces))))
    parts = [body[at : at + size] for at in range(0, len(body), size)] or [b""]
    writer.write(reply[:cut] + parts[0])
    await writer.drain()
    for part in parts[1:]:
        await asyncio.sleep(gap_ms / 1000)
        if writer.is_closing():  # the client went away (cancelled)
            return
        writer.write(part)
        await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                end = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17 : end])
            body = await reader.readexactly(length) if length else b""
            pace = lower.find(b"\r\nx-bench-pace:")
            if pace >= 0:  # the soak's slow replies (benchmarks/soak.py)
                end = lower.find(b"\r\n", pace + 2)
                await paced(writer, reply_for(head, body), lower[pace + 15 : end])
                continue
            writer.write(reply_for(head, body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def exit_when_stdin_closes() -> None:
    """The parent closes our stdin when done (or dies): exit at once, open connections and
    all; nothing here needs a graceful shutdown."""
    sys.stdin.read()
    os._exit(0)


async def serve() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=128)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve())
