"""KServe v2 tensors in JSON: numpy arrays to ``inputs`` and ``outputs`` back to arrays.

A tensor is ``{"name", "shape", "datatype", "data"}`` with ``data`` in row-major order, flat
or nested (OVMS accepts and may send either). Datatypes and the numpy dtypes they map to:
BOOL bool, UINT8..UINT64 and INT8..INT64 the integer types, FP16 float16, FP32 float32,
FP64 float64, BYTES object arrays of ``bytes`` (JSON carries them as strings). BF16 has no
numpy dtype: BF16 outputs are decoded to float32 (the values are exact: every bfloat16 is a
float32), and a float32 array is sent as FP32 (send BF16 with ``datatypes={"x": "BF16"}``).

numpy is imported on first use, so importing the plugin does not need it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ipfs_accelerate_py.errors import (
    BackendNotInstalledError,
    InvalidArgumentError,
    MalformedResponseError,
)

__all__ = ["DTYPES", "decode_outputs", "decode_tensor", "encode_inputs", "encode_tensor"]

NAME = "ovms"

# KServe datatype -> numpy dtype name (BF16 is widened to float32)
DTYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BF16": "float32",
    "BYTES": "object",
}
_BY_DTYPE = {v: k for k, v in DTYPES.items() if k != "BF16"}


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise BackendNotInstalledError(
            "OVMS tensors need numpy: pip install 'ipfs-accelerate-local[numpy]'"
        ) from None
    return numpy


def _bad(what: str, tensor: Any) -> MalformedResponseError:
    excerpt = repr(tensor)[:200]
    return MalformedResponseError(f"KServe reply: {what}; tensor starts {excerpt}", provider=NAME)


# --- requests ------------------------------------------------------------------------------


def _datatype(array: Any, name: str) -> str:
    kind = array.dtype.kind
    if kind in "SUO":
        return "BYTES"
    datatype = _BY_DTYPE.get(array.dtype.name)
    if datatype is None or kind == "c":
        raise InvalidArgumentError(
            f"input {name!r} has dtype {array.dtype}, which KServe cannot carry; use one of "
            f"{', '.join(sorted(_BY_DTYPE))}"
        )
    return datatype


def _text(value: Any, name: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgumentError(
                f"input {name!r}: BYTES in JSON must be UTF-8 text, got {value[:40]!r}"
            ) from None
    if isinstance(value, str):
        return value
    raise InvalidArgumentError(f"input {name!r}: BYTES elements must be str or bytes")


def encode_tensor(name: str, value: Any, datatype: str | None = None) -> dict[str, Any]:
    """One KServe input tensor from an array (or anything ``numpy.asarray`` takes)."""
    np = _numpy()
    array = np.asarray(value)
    dt = datatype or _datatype(array, name)
    if not isinstance(dt, str) or dt not in DTYPES:
        raise InvalidArgumentError(f"input {name!r}: unknown KServe datatype {dt!r}")
    flat = array.reshape(-1)
    if dt == "BYTES":
        data: list[Any] = [_text(v, name) for v in flat.tolist()]
    else:
        if array.dtype.kind in "SUO":
            raise InvalidArgumentError(f"input {name!r}: text cannot be sent as {dt}")
        data = flat.tolist()
        if dt.startswith(("FP", "BF")) and not all(math.isfinite(v) for v in data):
            raise InvalidArgumentError(f"input {name!r}: NaN and infinity are not valid JSON")
    return {"name": name, "shape": [int(d) for d in array.shape], "datatype": dt, "data": data}


def encode_inputs(
    inputs: Any, default_name: str | None, datatypes: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """KServe ``inputs`` from one array (named ``default_name``) or a dict of named arrays."""
    types = dict(datatypes or {})
    if isinstance(inputs, Mapping):
        if not inputs:
            raise InvalidArgumentError("inputs must not be empty")
        for key in inputs:
            if not isinstance(key, str) or not key:
                raise InvalidArgumentError(f"input names must be non-empty strings, got {key!r}")
        return [encode_tensor(k, v, types.get(k)) for k, v in inputs.items()]
    if not default_name:
        raise InvalidArgumentError("an unnamed input needs input_name=")
    return [encode_tensor(default_name, inputs, types.get(default_name))]


# --- replies -------------------------------------------------------------------------------


def _flatten(data: Any, tensor: Any) -> list[Any]:
    if not isinstance(data, list):
        raise _bad("'data' is not a list", tensor)
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) > 64:
                    raise _bad("'data' is nested too deeply", tensor)
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _check_values(datatype: str, values: list[Any], tensor: Any) -> list[Any]:
    if datatype == "BOOL":
        if not all(type(v) is bool for v in values):
            raise _bad("BOOL data must be true/false", tensor)
        return values
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in values):
            raise _bad("BYTES data must be strings", tensor)
        return [v.encode("utf-8", "surrogatepass") for v in values]
    if datatype.startswith(("UINT", "INT")):
        if not all(type(v) is int for v in values):
            raise _bad(f"{datatype} data must be integers", tensor)
        return values
    if not all(type(v) in (int, float) for v in values):
        raise _bad(f"{datatype} data must be numbers", tensor)
    return values


def decode_tensor(tensor: Any) -> Any:
    """One KServe output tensor as a numpy array of its datatype and shape; a clear error
    when the shape does not match the data, or a field is missing or of the wrong type."""
    np = _numpy()
    if not isinstance(tensor, Mapping):
        raise _bad("an output is not an object", tensor)
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DTYPES:
        raise _bad(f"unknown datatype {datatype!r}", tensor)
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _bad("'shape' is not a list of non-negative integers", tensor)
    if math.prod(shape) > 1 << 31:
        raise _bad(f"shape {shape} is implausibly large", tensor)
    params = tensor.get("parameters")
    if isinstance(params, Mapping) and "binary_data_size" in params:
        raise _bad("binary tensor data is not supported (the request asks for JSON)", tensor)
    if "data" not in tensor:
        raise _bad("an output has no 'data'", tensor)
    values = _check_values(datatype, _flatten(tensor["data"], tensor), tensor)
    count = math.prod(shape)
    if count != len(values):
        raise _bad(f"shape {shape} needs {count} values, the data has {len(values)}", tensor)
    dtype = DTYPES[datatype]
    try:
        if dtype == "object":
            array = np.empty(len(values), dtype=object)
            array[:] = values
        else:
            with np.errstate(over="raise", invalid="raise"):
                array = np.array(values, dtype=dtype)
    except (OverflowError, ValueError, TypeError, FloatingPointError) as exc:
        raise _bad(f"the data does not fit {datatype} ({exc})", tensor) from None
    return array.reshape(shape)


def decode_outputs(body: Any) -> Any:
    """An infer reply's outputs: one array, or ``{name: array}`` when there are several."""
    if not isinstance(body, Mapping):
        raise _bad("the reply is not a JSON object", body)
    outputs = body.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise _bad("the reply has no 'outputs' list", body)
    arrays: dict[str, Any] = {}
    for tensor in outputs:
        array = decode_tensor(tensor)
        name = tensor.get("name")
        if not isinstance(name, str):
            raise _bad("an output has no name", tensor)
        arrays[name] = array
    if len(outputs) == 1:
        return next(iter(arrays.values()))
    return arrays
