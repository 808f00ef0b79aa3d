"""A reply's headers on aiohttp's route read exactly as ``httpx.Headers`` reads them, whatever
their bytes: the same decoding for the whole set, names in any case, repeated names joined."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

multidict = pytest.importorskip("multidict")  # comes with the aio extra's aiohttp

from ipfs_accelerate_py.direct import ReplyHeaders  # noqa: E402

NAMES = [b"content-length", b"Content-Type", b"x-request-id", b"X-Request-Id", b"retry-after"]
VALUE_BYTES = st.sampled_from(
    [b"12", b"a, b", b"caf\xc3\xa9", b"caf\xe9", b"\xff\xfe", b"text/plain", b""]
)


def parsed_as_aiohttp(raw: tuple[tuple[bytes, bytes], ...]) -> object:
    """The parsed headers aiohttp's HTTP parser builds (UTF-8 with surrogateescape)."""
    pairs = [
        (k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for k, v in raw
    ]
    return multidict.CIMultiDictProxy(multidict.CIMultiDict(pairs))


@given(st.lists(st.tuples(st.sampled_from(NAMES), VALUE_BYTES), max_size=6))
def test_every_lookup_reads_as_httpx_reads_it(pairs: list[tuple[bytes, bytes]]) -> None:
    raw = tuple(pairs)
    ours = ReplyHeaders(parsed_as_aiohttp(raw), raw)
    theirs = httpx.Headers(list(raw))
    for name in [n.decode() for n in NAMES] + ["X-REQUEST-ID", "missing"]:
        assert ours.get(name) == theirs.get(name), name
        assert (name in ours) == (name in theirs), name
        if name in theirs:
            assert ours[name] == theirs[name]
        else:
            with pytest.raises(KeyError):
                ours[name]
    assert dict(ours.items()) == dict(theirs.items())
    assert set(ours) == set(theirs)
    assert ours == theirs and ours == {k.upper(): v for k, v in theirs.items()}
    assert len(ours) == len(set(theirs))  # httpx's len counts a repeated name twice
