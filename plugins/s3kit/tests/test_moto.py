"""S3 Kit against moto's S3 server: uploads (multipart too), downloads, listings, folders,
presigned URLs, the async handler, several endpoints, and wrong credentials."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.calls import Credential
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_s3kit import S3Kit
from ipfs_accelerate_s3kit.progress import Progress
from ipfs_accelerate_s3kit.testing import moto_api

MiB = 1024 * 1024
SECRET = "s3-test-SECRET-0123456789abcdefSECRET"
CREDENTIAL = Credential(SECRET, id="AKIATESTKEYID0000001")


def requests(kit: S3Kit) -> int:
    return int(kit.backend.get_usage_stats()["total_requests"])


def test_multipart_upload_of_21_mib_is_verified_and_downloads_back(
    s3: S3Kit, tmp_path: Path
) -> None:
    data = os.urandom(21 * MiB)
    src = tmp_path / "model.safetensors"
    src.write_bytes(data)
    before = requests(s3)
    stored = s3.upload_file(src, "models", "llama/model.safetensors")
    assert requests(s3) - before == 5  # create + 3 parts + complete
    parts = [hashlib.md5(data[i : i + 8 * MiB]).digest() for i in range(0, len(data), 8 * MiB)]
    assert stored["parts"] == 3 and stored["size"] == len(data)
    assert stored["etag"] == hashlib.md5(b"".join(parts)).hexdigest() + "-3"
    head = s3.head_object("models", "llama/model.safetensors")
    assert head["size"] == len(data)
    assert head["metadata"] == {"md5": hashlib.md5(data).hexdigest()}
    out = tmp_path / "back" / "model.safetensors"
    got = s3.download_file("models", "llama/model.safetensors", out)
    assert out.read_bytes() == data and got["md5"] == hashlib.md5(data).hexdigest()
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.safetensors"]


def test_small_objects_head_list_delete_and_presign(s3: S3Kit, tmp_path: Path) -> None:
    src = tmp_path / "config.json"
    src.write_text('{"a": 1}')
    stored = s3.upload_file(str(src), "models", "m/config.json")
    assert stored == {
        "bucket": "models",
        "key": "m/config.json",
        "size": 8,
        "etag": hashlib.md5(b'{"a": 1}').hexdigest(),
        "md5": hashlib.md5(b'{"a": 1}').hexdigest(),
        "parts": 1,
    }
    listed = s3.list_objects("models", "m/")
    assert [(o["key"], o["size"], o["etag"]) for o in listed] == [
        ("m/config.json", 8, stored["etag"])
    ]
    url = s3.create_presigned_url("models", "m/config.json", 60)
    assert "X-Amz-Signature=" in url and SECRET not in url
    with httpx.Client(trust_env=False) as client:
        assert client.get(url).content == b'{"a": 1}'
    assert s3.delete_object("models", "m/config.json")["deleted"] is True
    assert s3.list_objects("models") == []
    with pytest.raises(errors.NotFoundError, match="Not Found"):
        s3.head_object("models", "m/config.json")
    assert s3.test_s3_endpoint() is True


def test_listing_follows_every_page(s3: S3Kit) -> None:
    # moto pages ListObjectsV2 at 1000 keys: 1003 objects take two pages
    import boto3

    raw = boto3.client("s3", endpoint_url=s3.backend.settings.base_url)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: raw.put_object(Bucket="models", Key=f"many/{i:04d}"), range(1003)))
    before = requests(s3)
    keys = [o["key"] for o in s3.list_objects("models", "many/")]
    assert keys == [f"many/{i:04d}" for i in range(1003)]
    assert requests(s3) - before == 2


def test_a_folder_of_50_files_up_down_and_skipped_when_identical(
    s3: S3Kit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    for i in range(50):
        sub = model / f"shard{i % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i:02d}.bin").write_bytes(os.urandom(1000 + i))
    first = s3.upload_folder(model, "models", "tiny")
    assert len(first["uploaded"]) == 50 and first["skipped"] == []
    assert first["uploaded"][0] == "tiny/shard0/file00.bin"
    again = s3.upload_folder(model, "models", "tiny/")
    assert again["uploaded"] == [] and len(again["skipped"]) == 50
    (model / "shard3" / "file08.bin").write_bytes(b"changed")
    third = s3.upload_folder(model, "models", "tiny")
    assert third["uploaded"] == ["tiny/shard3/file08.bin"] and len(third["skipped"]) == 49

    back = tmp_path / "back"
    down = s3.download_folder("models", "tiny", back)
    assert len(down["downloaded"]) == 50
    for path in model.rglob("*"):
        if path.is_file():
            assert (back / path.relative_to(model)).read_bytes() == path.read_bytes()
    (back / "shard1" / "file01.bin").write_bytes(b"local edit")
    down2 = s3.download_folder("models", "tiny", back)
    assert down2["downloaded"] == ["tiny/shard1/file01.bin"] and len(down2["skipped"]) == 49
    assert capsys.readouterr().err == ""  # stderr is not a terminal: no progress bar


def test_progress_bar_draws_on_a_terminal_only() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, plain = Tty(), io.StringIO()
    for out in (tty, plain):
        bar = Progress("upload m", 2, 2 * MiB, out)
        bar.advance(MiB)
        bar.advance(MiB)
    assert "\rupload m [" in tty.getvalue() and "2/2 files, 2.0 MiB\n" in tty.getvalue()
    assert plain.getvalue() == ""


def test_the_async_handler_runs_every_operation_off_the_loop(s3: S3Kit, tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(3 * MiB))
    handler = s3.create_s3_endpoint_handler()

    async def main() -> dict[str, Any]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        task = asyncio.create_task(ticker())
        up = await handler("upload_file", file_path=src, bucket="models", key="w.bin")
        listed = await handler("list_objects", bucket="models")
        head = await handler("head_object", bucket="models", key="w.bin")
        down = await handler(
            "download_file", bucket="models", key="w.bin", file_path=tmp_path / "w2.bin"
        )
        url = await handler("create_presigned_url", bucket="models", key="w.bin")
        deleted = await handler("delete_object", bucket="models", key="w.bin")
        task.cancel()
        with pytest.raises(errors.InvalidArgumentError, match="unknown S3 operation 'rename'"):
            await handler("rename", bucket="models")
        return {"up": up, "listed": listed, "head": head, "down": down, "url": url,
                "deleted": deleted, "ticks": ticks}  # fmt: skip

    got = asyncio.run(main())
    assert got["up"]["size"] == 3 * MiB
    assert [o["key"] for o in got["listed"]] == ["w.bin"]
    assert got["head"]["etag"] == got["up"]["etag"]
    assert (tmp_path / "w2.bin").read_bytes() == src.read_bytes()
    assert got["url"].startswith(s3.backend.settings.base_url + "/models/w.bin?")
    assert got["deleted"]["deleted"] is True
    assert got["ticks"] > 10  # the loop kept running while boto3 worked in threads


def test_several_endpoints_with_their_own_credentials(moto: str, clock: FakeClock) -> None:
    from ipfs_accelerate_py.api_backends import s3_kit

    s3 = s3_kit(metadata={"s3cfg": {"accessKey": "AKIAFIRST", "secretKey": "first-secret-0000",
                                    "endpoint": moto}})  # fmt: skip
    second = s3.create_endpoint(
        api_key=Credential("second-secret-0000", id="AKIASECOND"),
        base_url=moto,
        max_concurrent_requests=2,
    )
    s3.create_bucket("one")
    s3.create_bucket("two", endpoint_id=second)
    assert {o["key"] for o in s3.list_objects("one")} == set()
    assert s3.test_s3_endpoint(endpoint_id=second)
    keys = s3.get_key_usage_stats()
    assert "first-secret-0000" not in repr(keys) + repr(s3) + repr(s3.get_usage_stats())
    assert s3.backend.endpoints[second].settings.base_url == moto
    with pytest.raises(errors.ConfigurationError, match="no endpoint 'nope'"):
        s3.list_objects("one", endpoint_id="nope")
    s3.close()


def test_wrong_credentials_are_a_clear_authentication_error(s3: S3Kit, moto: str) -> None:
    moto_api(moto, "reset-auth", "0")  # moto checks credentials from now on
    try:
        with pytest.raises(errors.AuthenticationError) as info:
            s3.list_objects("models")
    finally:
        moto_api(moto, "reset-auth", "inf")
    err = info.value
    assert type(err) is errors.AuthenticationError and err.code == "InvalidAccessKeyId"
    assert "The AWS Access Key Id you provided does not exist in our records" in str(err)
    assert err.status_code == 403 and err.provider == "s3_kit"
    assert SECRET not in str(err) + repr(err) + repr(s3.backend.get_key_usage_stats())
    assert s3.backend.circuit_state == "CLOSED"


def test_missing_buckets_and_bad_input(s3: S3Kit, tmp_path: Path) -> None:
    with pytest.raises(errors.NotFoundError, match="The specified bucket does not exist") as info:
        s3.list_objects("no-such-bucket")
    assert info.value.code == "NoSuchBucket"
    with pytest.raises(errors.NotFoundError, match="The specified key does not exist"):
        s3.download_file("models", "missing", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(errors.InvalidArgumentError, match="no such file"):
        s3.upload_file(tmp_path / "absent", "models", "k")
    with pytest.raises(errors.InvalidArgumentError, match="bucket must be a non-empty string"):
        s3.upload_file(tmp_path, "", "k")
    with pytest.raises(errors.InvalidArgumentError, match="expiration"):
        s3.create_presigned_url("models", "k", -1)
    with pytest.raises(errors.InvalidArgumentError, match="is a directory"):
        s3.download_file("models", "k", tmp_path)
    with pytest.raises(errors.InvalidArgumentError, match="no such folder"):
        s3.upload_folder(tmp_path / "nope", "models")
    with pytest.raises(errors.InvalidArgumentError, match="Invalid bucket name"):
        s3.head_object("bad/bucket", "k")


def test_environment_credentials_and_boto3_default_chain(
    moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_ACCESS_KEY", "AKIAENV")
    monkeypatch.setenv("S3_SECRET_KEY", "env-secret-000000")
    monkeypatch.setenv("S3_ENDPOINT", moto)
    kit = S3Kit(get_backend("s3_kit"))
    assert kit.backend.get_key_usage_stats().keys() == {"default"}
    kit.create_bucket("envbucket")
    assert kit.test_s3_endpoint()
    monkeypatch.delenv("S3_ACCESS_KEY")
    monkeypatch.delenv("S3_SECRET_KEY")
    monkeypatch.delenv("S3_ENDPOINT")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto)
    plain = S3Kit(get_backend("s3_kit"))  # no credential: boto3's chain (AWS_* variables)
    assert len(plain.backend.default_endpoint.keys) == 0
    assert plain.list_objects("envbucket") == []
    monkeypatch.setenv("S3_ACCESS_KEY", "AKIAHALF")
    with pytest.raises(errors.ConfigurationError, match="S3_ACCESS_KEY/S3_SECRET_KEY has no"):
        S3Kit(get_backend("s3_kit"))
    with pytest.raises(errors.ConfigurationError, match="needs an access key id"):
        S3Kit(get_backend("s3_kit", api_key="just-a-secret-0000")).list_objects("envbucket")


def test_plain_credential_objects_reach_boto3(moto: str) -> None:
    kit = S3Kit(get_backend("s3_kit", api_key=CREDENTIAL, base_url=moto))  # type: ignore[arg-type]
    kit.create_bucket("cbucket")
    assert kit.list_objects("cbucket") == []
    assert kit.backend.get_key_usage_stats()["default"]["requests"] == 2


def test_buckets_outside_us_east_1_name_their_region(moto: str) -> None:
    backend = get_backend(
        "s3_kit", api_key=CREDENTIAL, base_url=moto, metadata={"s3_region": "eu-west-1"}
    )  # type: ignore[arg-type]
    kit = S3Kit(backend)
    kit.create_bucket("eu-models")
    kit.create_bucket("eu-models")  # already yours: fine
    assert kit.list_objects("eu-models") == []
