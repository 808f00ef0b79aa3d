"""S3 Kit against a loopback server scripted with S3's wire format: throttling, errors,
cut downloads, checksums, pages, unreachable endpoints; exact request counts."""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path

import attrs
import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.calls import Credential
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply
from ipfs_accelerate_s3kit import S3Kit
from ipfs_accelerate_s3kit.testing import listing, s3_error

BODY = bytes(range(256)) * 64  # 16 KiB
MD5 = hashlib.md5(BODY).hexdigest()


def object_reply(body: bytes = BODY, etag: str = MD5, **kw: object) -> Reply:
    return Reply.raw(body, content_type="binary/octet-stream", headers={"ETag": f'"{etag}"'}, **kw)


@pytest.mark.parametrize(
    ("reply", "cls"),
    [
        (s3_error("SlowDown", "Please reduce your request rate.", 503), errors.RateLimitError),
        (s3_error("ThrottlingException", "Rate exceeded", 400), errors.RateLimitError),
        (s3_error("InternalError", "We encountered an internal error.", 500), errors.ServerError),
        (s3_error("ServiceUnavailable", "Reduce your request rate.", 503), errors.ServerError),
        (s3_error("RequestTimeout", "Your socket connection timed out.", 400), errors.TimeoutError),
    ],
)
def test_throttling_and_server_errors_are_retried_by_the_pipeline(
    loop_s3: S3Kit, protocol_server: ProtocolServer, clock: FakeClock, reply: Reply, cls: type
) -> None:
    protocol_server.on("GET", "/models", reply, default=listing([("a.bin", 3, "abc")]))
    assert [o["key"] for o in loop_s3.list_objects("models")] == ["a.bin"]
    assert len(protocol_server.requests_to("/models")) == 2  # boto3 itself never retried
    assert len(clock.sleeps) == 1
    protocol_server.on("GET", "/models", default=reply)
    loop_s3.backend.max_retries = 2
    with pytest.raises(cls) as info:
        loop_s3.list_objects("models")
    assert len(protocol_server.requests_to("/models")) == 2 + 3
    err = info.value
    assert err.provider_request_id == "REQ0001" and err.provider == "s3_kit"
    assert reply.body.decode().split("<Message>")[1].split("<")[0] in str(err)


@pytest.mark.parametrize(
    ("code", "message", "status", "cls"),
    [
        ("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.",
         403, errors.AuthenticationError),
        ("SignatureDoesNotMatch", "The request signature we calculated does not match the "
         "signature you provided. Check your key and signing method.", 403,
         errors.AuthenticationError),
        ("ExpiredToken", "The provided token has expired.", 400, errors.AuthenticationError),
        ("AccessDenied", "Access Denied", 403, errors.PermissionDeniedError),
        ("NoSuchBucket", "The specified bucket does not exist", 404, errors.NotFoundError),
        ("BucketNotEmpty", "The bucket you tried to delete is not empty", 409,
         errors.ConflictError),
        ("InvalidArgument", "Invalid argument.", 400, errors.InvalidRequestError),
        ("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400,
         errors.InvalidRequestError),
    ],
)  # fmt: skip
def test_client_errors_are_mapped_and_not_retried(
    loop_s3: S3Kit,
    protocol_server: ProtocolServer,
    secret: str,
    code: str,
    message: str,
    status: int,
    cls: type,
) -> None:
    protocol_server.on("GET", "/models", default=s3_error(code, message, status))
    with pytest.raises(errors.BackendError) as info:
        loop_s3.list_objects("models")
    err = info.value
    assert type(err) is cls
    assert (err.status_code, err.code, err.retryable) == (status, code, False)
    assert message in str(err) and "ListObjectsV2 s3://models/" in str(err)
    assert secret not in str(err) + repr(err) + repr(loop_s3.backend.get_key_usage_stats())
    assert len(protocol_server.requests_to("/models")) == 1
    assert loop_s3.backend.circuit_state == "CLOSED"


def test_requests_are_signed_with_the_leased_credential(
    loop_s3: S3Kit, protocol_server: ProtocolServer, secret: str
) -> None:
    protocol_server.on("GET", "/models", default=listing([]))
    loop_s3.list_objects("models", "llama/")
    (request,) = protocol_server.requests
    auth = request.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIATESTKEYID0000001/")
    assert secret not in auth
    assert request.query == {"list-type": "2", "prefix": "llama/", "encoding-type": "url"}


def test_a_listing_page_that_fails_is_retried_alone(
    loop_s3: S3Kit, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "GET",
        "/models",
        listing([("a", 1, "x")], token="page-2"),
        s3_error("InternalError", "We encountered an internal error.", 500),
        listing([("b", 2, "y")]),
    )
    assert [o["key"] for o in loop_s3.list_objects("models")] == ["a", "b"]
    got = protocol_server.requests_to("/models")
    assert [r.query.get("continuation-token") for r in got] == [None, "page-2", "page-2"]


def test_a_cut_download_is_retried_and_never_leaves_a_partial_file(
    loop_s3: S3Kit, protocol_server: ProtocolServer, tmp_path: Path
) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"the previous version")
    protocol_server.on("GET", "/models/model.bin", default=object_reply(cut_after=5000))
    loop_s3.backend.max_retries = 2
    with pytest.raises(errors.ConnectionError, match=r"model\.bin"):
        loop_s3.download_file("models", "model.bin", target)
    assert len(protocol_server.requests_to("/models/model.bin")) == 3
    assert target.read_bytes() == b"the previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]

    protocol_server.on(
        "GET", "/models/model.bin", object_reply(cut_after=100), default=object_reply()
    )
    got = loop_s3.download_file("models", "model.bin", target)
    assert target.read_bytes() == BODY and got["md5"] == MD5 and got["size"] == len(BODY)
    assert len(protocol_server.requests_to("/models/model.bin")) == 3 + 2
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_a_download_whose_bytes_do_not_match_the_etag_is_refused(
    loop_s3: S3Kit, protocol_server: ProtocolServer, tmp_path: Path
) -> None:
    protocol_server.on("GET", "/models/m.bin", default=object_reply(etag="0" * 32))
    loop_s3.backend.max_retries = 1
    with pytest.raises(errors.MalformedResponseError, match="does not match"):
        loop_s3.download_file("models", "m.bin", tmp_path / "m.bin")
    assert len(protocol_server.requests_to("/models/m.bin")) == 2  # corruption: sent again
    assert list(tmp_path.iterdir()) == []


def test_uploads_carry_their_md5_and_check_the_etag(
    loop_s3: S3Kit, protocol_server: ProtocolServer, tmp_path: Path
) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(BODY)
    protocol_server.on(
        "PUT",
        "/models/w.bin",
        s3_error("BadDigest", "The Content-MD5 you specified did not match what we received.",
                 400),
        default=Reply.text("", headers={"ETag": f'"{MD5}"'}),
    )  # fmt: skip
    assert loop_s3.upload_file(src, "models", "w.bin")["etag"] == MD5
    first, second = protocol_server.requests_to("/models/w.bin")
    for request in (first, second):
        assert request.body == BODY
        assert request.headers["content-md5"] == base64.b64encode(bytes.fromhex(MD5)).decode()
        assert request.headers["x-amz-meta-md5"] == MD5
    protocol_server.on("PUT", "/models/w.bin", default=Reply.text("", headers={"ETag": '"bad"'}))
    loop_s3.backend.max_retries = 0
    with pytest.raises(errors.MalformedResponseError, match="ETag 'bad' does not match"):
        loop_s3.upload_file(src, "models", "w.bin")


def test_a_reply_that_is_not_s3_is_malformed(
    loop_s3: S3Kit, protocol_server: ProtocolServer
) -> None:
    page = Reply.text("<html><body>portal</body></html>", content_type="text/html")
    protocol_server.on("GET", "/models", default=page)
    with pytest.raises(errors.MalformedResponseError, match="not a ListObjectsV2 result"):
        loop_s3.list_objects("models")
    assert len(protocol_server.requests_to("/models")) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text('<?xml version="1.0"?><ListBucketResult><Name>mo', content_type="text/xml"),
        Reply.raw(b"\x00\xff not xml", content_type="application/xml"),
    ],
)
def test_unreadable_xml_is_retried_as_botocore_does(
    loop_s3: S3Kit, protocol_server: ProtocolServer, reply: Reply
) -> None:
    # botocore reads a 200 whose XML does not parse as a cut reply: a 500, to be sent again
    protocol_server.on("GET", "/models", reply, default=listing([("a", 1, "x")]))
    assert [o["key"] for o in loop_s3.list_objects("models")] == ["a"]
    protocol_server.on("GET", "/models", default=reply)
    loop_s3.backend.max_retries = 1
    with pytest.raises(errors.ServerError, match="XML could not be read"):
        loop_s3.list_objects("models")
    assert len(protocol_server.requests_to("/models")) == 2 + 2


def test_an_unreachable_endpoint_is_a_connection_error_naming_it(clock: FakeClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    kit = S3Kit(get_backend("s3_kit", base_url=url, clock=clock, max_retries=1))
    with pytest.raises(errors.ConnectionError, match=f"S3 endpoint {url}"):
        kit.list_objects("models")
    assert len(clock.sleeps) == 1
    assert kit.test_s3_endpoint() is False


def test_the_breaker_opens_after_repeated_outages(
    loop_s3: S3Kit, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("GET", "/models", default=s3_error("InternalError", "boom", 500))
    loop_s3.backend.max_retries = 0
    loop_s3.backend.failure_threshold = 2
    for _ in range(2):
        with pytest.raises(errors.ServerError):
            loop_s3.list_objects("models")
    with pytest.raises(errors.CircuitOpenError):
        loop_s3.list_objects("models")
    assert len(protocol_server.requests_to("/models")) == 2


def test_metadata_s3cfg_reaches_the_guide_class(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipfs_accelerate_py.api_backends import s3_kit

    monkeypatch.setenv("S3_ACCESS_KEY", "AKIAIGNORED")
    monkeypatch.setenv("S3_SECRET_KEY", "ignored-secret-0000")
    cfg = {"accessKey": "AKIAFROMCFG", "secretKey": "cfg-secret-00000000",
           "endpoint": protocol_server.base_url}  # fmt: skip
    s3 = s3_kit(metadata={"s3cfg": cfg})
    protocol_server.on("HEAD", "/models/k", default=object_reply())
    head = s3.head_object("models", "k")
    assert (head["size"], head["etag"]) == (len(BODY), MD5)
    auth = protocol_server.requests[0].headers["authorization"]
    assert "Credential=AKIAFROMCFG/" in auth
    assert "cfg-secret-00000000" not in repr(s3) + repr(s3.get_key_usage_stats())
    # an endpoint made without a key signs with the configured credential too
    plain = s3.create_endpoint(base_url=protocol_server.base_url)
    s3.head_object("models", "k", endpoint_id=plain)
    assert "Credential=AKIAFROMCFG/" in protocol_server.requests[1].headers["authorization"]
    # a temporary credential's session token goes along
    temp = Credential("temp-secret-0000000", id="ASIATEMP", extra={"session_token": "TOKEN1"})
    other = s3.create_endpoint(api_key=temp, base_url=protocol_server.base_url)
    s3.head_object("models", "k", endpoint_id=other)
    last = protocol_server.requests[2].headers
    assert "Credential=ASIATEMP/" in last["authorization"]
    assert last["x-amz-security-token"] == "TOKEN1"
    assert "temp-secret-0000000" not in repr(s3.get_key_usage_stats(endpoint_id=other))
    s3.close()


def test_a_folder_upload_stops_at_the_first_refusal(
    loop_s3: S3Kit, protocol_server: ProtocolServer, tmp_path: Path
) -> None:
    for i in range(3):
        (tmp_path / f"f{i}.bin").write_bytes(b"x" * (i + 1))
    protocol_server.on("GET", "/models", default=listing([]))
    denied = s3_error("AccessDenied", "Access Denied", 403)
    for i in range(3):  # f1 answers slowly: it may have started, f2 cannot have
        reply = attrs.evolve(denied, delay=0.3) if i == 1 else denied
        protocol_server.on("PUT", f"/models/m/f{i}.bin", default=reply)
    with pytest.raises(errors.PermissionDeniedError, match="Access Denied"):
        loop_s3.upload_folder(tmp_path, "models", "m", workers=1)
    assert len(protocol_server.requests_to("/models/m/f0.bin")) == 1
    assert protocol_server.requests_to("/models/m/f2.bin") == []  # not started after it
