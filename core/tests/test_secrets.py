"""Secrets never shown: an API key or a base-URL password echoed by a provider (in an error
body, an in-stream error, an error code, a request id, an excerpt cut at any offset) is masked
in every string of the error; errors keep no reference to the sent request (nor its headers);
a base URL carrying credentials is refused without showing them; keys are cleaned of
whitespace."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.masking import mask_secret
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

user = wire.user
ok = wire.chat_reply

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]


def fragments(secret: str, size: int = 8) -> list[str]:
    """Every run of ``size`` characters of ``secret``: none may show in an error."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def shown(err: errors.BackendError) -> str:
    """Every string of an error a user can read or log."""
    fields = (err.message, err.code, err.provider_request_id, err.request_id)
    return "\n".join([str(err), repr(err), json.dumps(err.body), *map(str, fields)])


def test_key_echoed_in_an_http_error_body_is_masked(
    backend: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    body = wire.error(f"Incorrect API key provided: {secret}.", code="invalid_api_key")
    body["error"]["param"] = secret
    body["error"]["details"] = [{"provided": secret}, f"key={secret}"]
    protocol_server.on("POST", CHAT, default=Reply.json(body, status=401))

    with pytest.raises(errors.AuthenticationError) as info:
        backend.chat(messages=user(), model="m")
    err = info.value
    assert err.body is not None
    dumped = json.dumps(err.body)
    assert secret not in dumped
    assert mask_secret(secret) in dumped
    assert err.body["error"]["param"] == mask_secret(secret)
    assert secret not in str(err) and mask_secret(secret) in str(err)
    assert len(protocol_server.requests_to(CHAT)) == 1


@pytest.mark.parametrize("caller", ["stream", "astream"])
@pytest.mark.parametrize("text_first", [False, True], ids=["before-text", "after-text"])
def test_key_in_an_in_stream_error_is_masked(
    backend: Backend,
    protocol_server: ProtocolServer,
    secret: str,
    call: Callable[..., Any],
    chunk_event: Callable[..., dict[str, Any]],
    caller: str,
    text_first: bool,
) -> None:
    error_event = wire.error(
        f"Incorrect API key provided: {secret}.", code="invalid_api_key", param=secret
    )
    text = chunk_event({"index": 0, "delta": {"content": "hi"}})
    events = [chunk_event(), *([text] * text_first)]
    protocol_server.on("POST", CHAT, default=Reply.sse([*events, error_event, "[DONE]"]))

    with pytest.raises(errors.BackendError) as info:
        call(caller, backend)
    err = info.value
    assert "error inside the stream" in str(err)
    assert mask_secret(secret) in str(err)
    assert secret not in str(err) and secret not in repr(err) and secret not in err.message
    assert secret not in json.dumps(err.body)
    assert len(protocol_server.requests_to(CHAT)) == 1


@pytest.mark.parametrize("caller", ["chat", "stream"])
def test_key_in_an_error_code_is_masked(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    secret: str,
    call: Callable[..., Any],
    chunk_event: Callable[..., dict[str, Any]],
    caller: str,
) -> None:
    backend = make_backend(max_retries=0)
    error = {"error": {"message": "invalid key", "type": "invalid_request_error", "code": secret}}
    if caller == "chat":
        reply = Reply.json(error, status=401)
    else:
        reply = Reply.sse([chunk_event(), error, "[DONE]"])
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises(errors.BackendError) as info:
        call(caller, backend)
    err = info.value
    assert secret not in str(err)
    assert secret not in (err.code or "")
    assert secret not in json.dumps(err.body)


@pytest.mark.parametrize("offset", [270, 280, 284])
def test_key_cut_at_the_edge_of_an_error_excerpt_is_masked(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, secret: str, offset: int
) -> None:
    backend = make_backend(max_retries=0)
    text = "x" * offset + f"bad key {secret} rejected"  # plain text: quoted up to 300 chars
    protocol_server.on("POST", CHAT, default=Reply.text(text, status=401))
    with pytest.raises(errors.AuthenticationError) as info:
        backend.chat(messages=user(), model="m")
    for piece in fragments(secret):
        assert piece not in shown(info.value), piece

    detail = {"detail": [{"msg": "x" * offset + secret}]}  # FastAPI: dumped, then quoted
    protocol_server.on("POST", CHAT, default=Reply.json(detail, status=422))
    with pytest.raises(errors.InvalidRequestError) as info2:
        backend.chat(messages=user(), model="m")
    for piece in fragments(secret):
        assert piece not in shown(info2.value), piece


@pytest.mark.parametrize("offset", [185, 190, 192])
def test_key_cut_at_the_edge_of_a_malformed_reply_excerpt_is_masked(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, secret: str, offset: int
) -> None:
    backend = make_backend(max_retries=0)
    body = ("<" * offset + secret).encode()  # not JSON: quoted up to 200 bytes
    protocol_server.on("POST", CHAT, default=Reply.raw(body))
    with pytest.raises(errors.MalformedResponseError) as info:
        backend.chat(messages=user(), model="m")
    for piece in fragments(secret):
        assert piece not in shown(info.value), piece


def test_key_echoed_in_the_provider_request_id_is_masked(
    backend: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    headers = {"x-request-id": f"req_{secret}"}
    protocol_server.on("POST", CHAT, default=wire.error_reply(400, headers))
    with pytest.raises(errors.InvalidRequestError) as info:
        backend.chat(messages=user(), model="m")
    assert info.value.provider_request_id == f"req_{mask_secret(secret)}"
    for piece in fragments(secret):
        assert piece not in shown(info.value), piece


@pytest.mark.parametrize(
    "reply",
    [Reply.drop_connection(), Reply.json({}, delay=2.0)],
    ids=["dropped", "read-timeout"],
)
def test_the_sent_request_is_not_reachable_from_the_error(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, secret: str, reply: Reply
) -> None:
    import httpx

    backend = make_backend(max_retries=0)
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises((errors.ConnectionError, errors.TimeoutError)) as info:
        backend.chat(messages=user(), model="m", timeout=0.3)
    chain: list[BaseException] = []
    link: BaseException | None = info.value
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    # the httpx exception may stay as the __context__ (its type and message), but bare
    for err in chain:
        for value in vars(err).values():
            assert not isinstance(value, httpx.Request), err
            assert secret not in repr(value)
        if isinstance(err, httpx.RequestError):
            with pytest.raises(RuntimeError):
                err.request  # noqa: B018 - httpx: "the .request property ... has not been set"
    for err in chain[1:]:  # their frames held the request (and its headers) as locals
        assert err.__traceback__ is None, err


@pytest.mark.parametrize("caller", ["chat", "stream"])
def test_an_error_wrapping_a_transport_failure_has_no_context(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, caller: str
) -> None:
    backend = make_backend(max_retries=0)
    protocol_server.on("POST", CHAT, default=Reply.drop_connection())
    with pytest.raises(errors.ConnectionError) as info:
        if caller == "chat":
            backend.chat(messages=user(), model="m")
        else:
            list(backend.stream(messages=user(), model="m"))
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_password_in_base_url_is_refused_and_never_shown(
    loopback_plugin: object, protocol_server: ProtocolServer, secret: str
) -> None:
    # refused outright (see test_credentials_in_a_base_url_are_refused): httpx would send it
    # as "Authorization: Basic", replacing the key; the error shows it masked
    password = "hunter2-PASSWORD-7xq"
    host = protocol_server.base_url.removeprefix("http://")
    with pytest.raises(errors.ConfigurationError) as info:
        get_backend("loopback", api_key=secret, base_url=f"http://alice:{password}@{host}/v1")
    assert password not in str(info.value) and secret not in str(info.value)
    assert "***" in str(info.value)
    assert protocol_server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:{pw}@example.com/v1?api-version=1",
        "http://alice:{pw}@example.com/v1#frag",
        "ftp://alice:{pw}@example.com/v1",
    ],
    ids=["query", "fragment", "scheme"],
)
def test_password_in_a_rejected_base_url_is_not_in_the_error(
    loopback_plugin: object, secret: str, url: str
) -> None:
    password = "hunter2-PASSWORD-7xq"
    with pytest.raises(errors.ConfigurationError) as info:
        get_backend("loopback", api_key=secret, base_url=url.format(pw=password))
    assert "base_url" in str(info.value)
    assert password not in str(info.value) and password not in info.value.message


def test_key_with_a_trailing_newline_is_cleaned_and_never_shown(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    key = "sk-proj-SECRETSECRETSECRET1234"
    backend = make_backend(api_key=key + "\n")
    protocol_server.on("POST", CHAT, ok())
    backend.chat(messages=USER, model="m")
    assert protocol_server.requests[0].headers["authorization"] == f"Bearer {key}"
    with pytest.raises(errors.ConfigurationError, match="whitespace"):
        backend.add_api_key("bad", "sk-with space-000000000")
