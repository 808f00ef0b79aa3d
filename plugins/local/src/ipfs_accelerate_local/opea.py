"""OPEA: the ChatQnA megaservice and its OpenAI-compatible microservices.

ChatQnA (GenAIExamples ``ChatQnA/chatqna.py``) answers ``POST /v1/chatqna`` with a body
like OpenAI's chat request. It streams unless told otherwise (``"stream"`` defaults to true
there), so a plain call sends ``"stream": false`` and gets an OpenAI chat completion with
model ``chatqna``. Its stream is SSE whose data are Python bytes literals, one per token,
``data: b'Hello'`` (``repr`` of the UTF-8 bytes, so non-ASCII arrives as ``\\xNN``
escapes), ended by ``data: [DONE]``. They are decoded by :func:`decode_bytes_literal`, a
small literal parser (never ``eval``), then as UTF-8 across events.

ChatQnA's request carries no ``model``: the megaservice would forward it to its LLM node,
which serves its own. Any other model goes to the LLM microservice's OpenAI-compatible
``/v1/chat/completions``; embeddings to the embedding microservice's ``/v1/embeddings``.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any

from ipfs_accelerate_py import openai_compat
from ipfs_accelerate_py.calls import STREAM_END, HttpCall, StreamEnd
from ipfs_accelerate_py.decoders import ServerSentEvent
from ipfs_accelerate_py.errors import MalformedResponseError
from ipfs_accelerate_py.types import ChatRequest, StreamChunk, text_chunk

__all__ = ["CHATQNA", "CHATQNA_PATH", "chat_call", "decode_bytes_literal", "stream_call"]

NAME = "opea"
CHATQNA = "chatqna"
CHATQNA_PATH = "/v1/chatqna"
LLM_PATH = "/v1/chat/completions"

_SIMPLE = {
    "\\": 0x5C,
    "'": 0x27,
    '"': 0x22,
    "a": 0x07,
    "b": 0x08,
    "f": 0x0C,
    "n": 0x0A,
    "r": 0x0D,
    "t": 0x09,
    "v": 0x0B,
}
_HEX = frozenset("0123456789abcdefABCDEF")
_OCT = frozenset("01234567")


def _bad(text: str, why: str) -> MalformedResponseError:
    return MalformedResponseError(
        f"a ChatQnA stream line is not a bytes literal ({why}): {text[:200]!r}", provider=NAME
    )


def decode_bytes_literal(text: str) -> bytes:
    """The bytes a Python bytes literal (``b'...'`` or ``b"..."``) stands for.

    Escapes are Python's: ``\\\\``, ``\\'``, ``\\"``, ``\\n``, ``\\r``, ``\\t``, ``\\a``,
    ``\\b``, ``\\f``, ``\\v``, ``\\xNN``, octal ``\\N``..``\\NNN``, a backslash-newline
    (nothing), and an unknown escape kept as written. Lenient where OPEA itself is loose: its
    orchestrator also writes ``"b'" + text + "'"`` unescaped, so a quote inside and raw
    non-ASCII characters (taken as UTF-8) are accepted; the literal ends at the end of the
    data. Anything else raises MalformedResponseError.
    """
    s = text.strip()
    if len(s) < 3 or s[0] not in "bB" or s[1] not in "'\"" or s[-1] != s[1]:
        raise _bad(text, "it must look like b'...' or b\"...\"")
    body = s[2:-1]
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\":
            j = body.find("\\", i)
            j = n if j < 0 else j
            out += body[i:j].encode("utf-8", "surrogatepass")
            i = j
            continue
        if i + 1 >= n:
            raise _bad(text, "it ends inside an escape")
        esc = body[i + 1]
        if esc in _SIMPLE:
            out.append(_SIMPLE[esc])
            i += 2
        elif esc == "x":
            digits = body[i + 2 : i + 4]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise _bad(text, f"bad \\x escape at offset {i}")
            out.append(int(digits, 16))
            i += 4
        elif esc in _OCT:
            j = i + 1
            while j < n and j < i + 4 and body[j] in _OCT:
                j += 1
            out.append(int(body[i + 1 : j], 8) & 0xFF)
            i = j
        elif esc == "\n":
            i += 2
        else:  # Python keeps an unknown escape as it is
            out += ("\\" + esc).encode("utf-8", "surrogatepass")
            i += 2
    return bytes(out)


def chatqna_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``/v1/chatqna`` body: messages, the caller's parameters, ``stream`` explicit."""
    body: dict[str, Any] = {"messages": [m.to_dict() for m in request.messages]}
    body.update(request.params)
    body["stream"] = stream
    return body


def _is_chatqna(request: ChatRequest) -> bool:
    return request.model in ("", CHATQNA)


def chat_call(request: ChatRequest) -> HttpCall:
    """ChatQnA for model ``chatqna`` (the default), else the LLM microservice."""
    if not _is_chatqna(request):
        return openai_compat.chat_call(request, NAME, LLM_PATH)
    return HttpCall(
        "POST",
        CHATQNA_PATH,
        json=chatqna_body(request, stream=False),
        parse=lambda body: openai_compat.parse_chat(body, NAME),
        model=CHATQNA,
    )


def chatqna_parser() -> Callable[[ServerSentEvent], StreamChunk | StreamEnd | None]:
    """A parser for one ChatQnA stream: bytes literals decoded as UTF-8 across events (a
    character split between two tokens is joined), ``[DONE]`` as the end."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def parse(event: ServerSentEvent) -> StreamChunk | StreamEnd | None:
        data = event.data
        if data.strip() == "[DONE]":
            tail = decoder.decode(b"", final=True)
            return StreamChunk(text=tail, done=True, model=CHATQNA) if tail else STREAM_END
        if not data.strip():
            return None
        text = decoder.decode(decode_bytes_literal(data))
        return text_chunk(text, CHATQNA, data) if text else None  # per event: the fast build

    return parse


def stream_call(request: ChatRequest) -> HttpCall:
    """ChatQnA's stream for model ``chatqna``, else the LLM microservice's OpenAI SSE."""
    if not _is_chatqna(request):
        return openai_compat.stream_call(request, NAME, LLM_PATH)
    return HttpCall(
        "POST",
        CHATQNA_PATH,
        json=chatqna_body(request, stream=True),
        stream="sse",
        new_parser=chatqna_parser,
        model=CHATQNA,
    )
