"""Property tests of the KServe tensor codec: round trips, and garbage is always clear."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_accelerate_local import kserve
from ipfs_accelerate_py.errors import MalformedResponseError

np = pytest.importorskip("numpy")
hnp = pytest.importorskip("hypothesis.extra.numpy")

NUMERIC = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"]
FLOATS = ["float16", "float32", "float64"]
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)


@st.composite
def arrays(draw: st.DrawFn) -> object:
    dtype = draw(st.sampled_from(NUMERIC + FLOATS + ["object"]))
    shape = draw(shapes)
    if dtype == "object":
        flat = draw(
            st.lists(
                st.text(max_size=8), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))
            )
        )
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(shape)
    elements = None
    if dtype in FLOATS:
        elements = {"allow_nan": False, "allow_infinity": False}
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=200, deadline=None)
@given(arrays())
def test_encode_then_decode_round_trips(array: object) -> None:
    sent = kserve.encode_tensor("t", array)
    wire = json.loads(json.dumps(sent))  # what a server echoing the tensor would send
    back = kserve.decode_tensor(wire)
    assert back.shape == array.shape  # type: ignore[attr-defined]
    if array.dtype == object:  # type: ignore[attr-defined]
        expected = [t.encode("utf-8", "surrogatepass") for t in array.reshape(-1).tolist()]  # type: ignore[attr-defined]
        assert back.reshape(-1).tolist() == expected
    else:
        assert back.dtype == array.dtype  # type: ignore[attr-defined]
        np.testing.assert_array_equal(back, array)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "name": json_values,
            "datatype": st.sampled_from([*kserve.DTYPES, "FP8", 3]) | json_values,
            "shape": st.lists(st.integers(min_value=-2, max_value=5), max_size=4) | json_values,
            "data": json_values,
            "parameters": json_values,
        },
    )
)
def test_any_tensor_decodes_or_is_malformed(tensor: dict) -> None:
    try:
        array = kserve.decode_tensor(tensor)
    except MalformedResponseError:
        return
    assert array.shape == tuple(tensor["shape"])


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_body_decodes_or_is_malformed(body: object) -> None:
    try:
        kserve.decode_outputs(body)
    except MalformedResponseError:
        pass
