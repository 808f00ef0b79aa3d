"""fastjson: the same results as the standard library, whichever decoder is installed."""

from __future__ import annotations

import json
import math

import pytest

from ipfs_accelerate_py import fastjson


@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2.5, "é", null, true]}', "[]", '"x"', '{"nested": {"k": [{"v": -1e-3}]}}'],
)
def test_same_as_json(text: str) -> None:
    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(text.encode()) == json.loads(text)


def test_lenient_literals_still_decode() -> None:
    value = fastjson.loads('{"x": NaN, "y": Infinity}')
    assert math.isnan(value["x"])
    assert value["y"] == math.inf


@pytest.mark.parametrize("bad", ["{not json", "", '{"a": 1', b"\xff\xfe"])
def test_bad_input_raises_value_error(bad: str | bytes) -> None:
    with pytest.raises(ValueError):
        fastjson.loads(bad)


@pytest.mark.parametrize("text", ['{"id": 18446744073709551616}', "[-9223372036854775809]"])
def test_fastjson_keeps_big_integers_exact(text: str) -> None:
    import json

    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(text.encode()) == json.loads(text)
