"""OpenVINO Model Server's own APIs: KServe v2 REST and the older TensorFlow-Serving one.

Calls built here run through the backend's whole pipeline (``backend.request(call)`` /
``arequest``): queue, breaker, retries, usage. Paths (OVMS docs, ``model_server_rest_api_kfs``
and ``model_server_rest_api_tfs``)::

    GET  /v2/health/live, /v2/health/ready            200 = yes, no body to speak of
    GET  /v2/models/{m}[/versions/{v}]/ready           200 = the model is ready
    GET  /v2/models/{m}[/versions/{v}]                 metadata: name, versions, inputs, outputs
    POST /v2/models/{m}[/versions/{v}]/infer           {"inputs": [...]} -> {"outputs": [...]}
    POST /v1/models/{m}[/versions/{v}]:predict         {"instances": [...]} -> {"predictions"}

Errors are ``{"error": "..."}`` with an HTTP status; core maps them to its classes.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.errors import (
    InvalidArgumentError,
    MalformedResponseError,
    NotFoundError,
    ServerError,
)

from . import kserve

if TYPE_CHECKING:
    from ipfs_accelerate_py.backend import Backend

__all__ = [
    "acheck",
    "ainput_name_of",
    "check",
    "infer_call",
    "input_name_of",
    "live_call",
    "metadata_call",
    "model_ready_call",
    "predict_call",
    "ready_call",
]

NAME = "ovms"
NOT_READY = (NotFoundError, ServerError)  # 404 unknown model, 503 not ready (after retries)


def _no_usage(_: Any) -> None:
    return None


def model_path(model: str, version: int | str | None = None, *, api: str = "v2") -> str:
    """``/v2/models/{model}[/versions/{version}]``, the name checked and escaped."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgumentError("model must be a non-empty string naming an OVMS model")
    if any(part in ("", ".", "..") for part in model.split("/")):
        raise InvalidArgumentError(f"model {model!r} is not a valid model name")
    path = f"/{api}/models/{quote(model, safe='/')}"
    if version is not None:
        if isinstance(version, bool) or not str(version).isdigit():
            raise InvalidArgumentError(f"version must be a positive integer, got {version!r}")
        path += f"/versions/{int(version)}"
    return path


def _status_call(path: str) -> HttpCall:
    return HttpCall("GET", path, json_reply=False, parse=lambda _: True, usage_of=_no_usage)


def live_call() -> HttpCall:
    """``GET /v2/health/live``: True when the server is alive (an error status raises)."""
    return _status_call("/v2/health/live")


def ready_call() -> HttpCall:
    """``GET /v2/health/ready``: True when the server is ready."""
    return _status_call("/v2/health/ready")


def model_ready_call(model: str, version: int | str | None = None) -> HttpCall:
    """``GET /v2/models/{m}[/versions/{v}]/ready``: True when the model is ready."""
    return _status_call(model_path(model, version) + "/ready")


def _metadata(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get("inputs", []), list):
        raise MalformedResponseError(
            f"KServe model metadata is not an object with 'inputs': {str(body)[:200]!r}",
            provider=NAME,
        )
    return dict(body)


def metadata_call(model: str, version: int | str | None = None) -> HttpCall:
    """``GET /v2/models/{m}``: the model's name, versions, platform, inputs and outputs."""
    return HttpCall("GET", model_path(model, version), parse=_metadata, usage_of=_no_usage)


def infer_call(
    model: str,
    inputs: Any,
    *,
    input_name: str | None = None,
    version: int | str | None = None,
    outputs: Sequence[str] | None = None,
    datatypes: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> HttpCall:
    """``POST /v2/models/{m}/infer``: ``inputs`` is one array (named ``input_name``) or a
    dict of named arrays; the result is an array, or ``{name: array}`` for several outputs."""
    body: dict[str, Any] = {"inputs": kserve.encode_inputs(inputs, input_name, datatypes)}
    if request_id:
        body["id"] = request_id
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return HttpCall(
        "POST",
        model_path(model, version) + "/infer",
        json=body,
        parse=kserve.decode_outputs,
        model=model,
        usage_of=_no_usage,
    )


def _predictions(body: Any) -> Any:
    if not isinstance(body, Mapping) or "predictions" not in body:
        raise MalformedResponseError(
            f"the predict reply has no 'predictions': {str(body)[:200]!r}", provider=NAME
        )
    return body["predictions"]


def predict_call(model: str, instances: Any, version: int | str | None = None) -> HttpCall:
    """``POST /v1/models/{m}:predict`` (TensorFlow-Serving row format): ``instances`` (a list,
    or an array sent as nested lists) -> the ``predictions`` list as the server sent it."""
    if hasattr(instances, "tolist"):
        instances = instances.tolist()
    if not isinstance(instances, list) or not instances:
        raise InvalidArgumentError("instances must be a non-empty list (or array)")
    return HttpCall(
        "POST",
        model_path(model, version, api="v1") + ":predict",
        json={"instances": instances},
        parse=_predictions,
        model=model,
        usage_of=_no_usage,
    )


# --- the input name of a model that takes one input -------------------------------------

_names: weakref.WeakKeyDictionary[Backend, dict[tuple[str, str | None], str]] = (
    weakref.WeakKeyDictionary()
)


def _only_input(metadata: Mapping[str, Any], model: str) -> str:
    names = [i.get("name") for i in metadata.get("inputs", []) if isinstance(i, Mapping)]
    if len(names) != 1 or not isinstance(names[0], str):
        raise InvalidArgumentError(
            f"model {model!r} takes inputs {names}: pass a dict of named arrays"
        )
    return names[0]


def cached_input_name(backend: Backend, model: str, version: Any) -> str | None:
    """The input name found earlier for this model, if any."""
    return _names.get(backend, {}).get((model, None if version is None else str(version)))


def remember_input_name(
    backend: Backend, model: str, version: Any, metadata: Mapping[str, Any]
) -> str:
    """The single input name from a model's metadata, remembered for the next call."""
    name = _only_input(metadata, model)
    key = (model, None if version is None else str(version))
    _names.setdefault(backend, {})[key] = name
    return name


def input_name_of(backend: Backend, model: str, version: Any = None, **options: Any) -> str:
    """The name of a one-input model's input (from its metadata, fetched once)."""
    name = cached_input_name(backend, model, version)
    if name is None:
        metadata = backend.request(metadata_call(model, version), **options)
        name = remember_input_name(backend, model, version, metadata)
    return name


async def ainput_name_of(backend: Backend, model: str, version: Any = None, **options: Any) -> str:
    """Async :func:`input_name_of`."""
    name = cached_input_name(backend, model, version)
    if name is None:
        metadata = await backend.arequest(metadata_call(model, version), **options)
        name = remember_input_name(backend, model, version, metadata)
    return name


def check(backend: Backend, call: HttpCall, **options: Any) -> bool:
    """Run a health call: True on 200, False when the server answers 404 or 5xx (not
    ready); a server that cannot be reached raises ConnectionError."""
    try:
        return bool(backend.request(call, **options))
    except NOT_READY:
        return False


async def acheck(backend: Backend, call: HttpCall, **options: Any) -> bool:
    """Async :func:`check`."""
    try:
        return bool(await backend.arequest(call, **options))
    except NOT_READY:
        return False
