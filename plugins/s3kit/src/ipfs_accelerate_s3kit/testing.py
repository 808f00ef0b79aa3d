"""Test and demo helpers: a moto S3 server, moto's control API, and S3's wire replies
(XML errors, ``ListObjectsV2`` pages) for the loopback ProtocolServer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ipfs_accelerate_py.testing.server import Reply

__all__ = ["listing", "moto_api", "moto_server", "s3_error"]


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server (server mode) on 127.0.0.1, a free port; yields its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on the terminal
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def moto_api(url: str, path: str, body: str = "") -> None:
    """POST to moto's control API: ``reset`` (empty every bucket), ``reset-auth`` with a
    count (moto checks credentials after that many requests; ``"inf"``: never)."""
    import httpx

    with httpx.Client(trust_env=False) as client:
        client.post(f"{url}/moto-api/{path}", content=body).raise_for_status()


def s3_error(code: str, message: str, status: int, request_id: str = "REQ0001") -> Reply:
    """S3's XML error reply, with its ``x-amz-request-id``."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>host-id-0</HostId></Error>"
    )
    return Reply.text(
        body,
        status=status,
        content_type="application/xml",
        headers={"x-amz-request-id": request_id},
    )


def listing(keys: list[tuple[str, int, str]], token: str | None = None) -> Reply:
    """A ``ListObjectsV2`` result page of ``(key, size, etag)``; ``token`` continues it."""
    contents = "".join(
        f"<Contents><Key>{k}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified>"
        f"<ETag>&quot;{etag}&quot;</ETag><Size>{size}</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        for k, size, etag in keys
    )
    more = (
        f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
        if token
        else "<IsTruncated>false</IsTruncated>"
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>models</Name><Prefix></Prefix><KeyCount>{len(keys)}</KeyCount>"
        f"<MaxKeys>1000</MaxKeys>{more}{contents}</ListBucketResult>"
    )
    return Reply.text(body, content_type="application/xml")
