"""The guide's classes ``llvm`` (and ``vllm``), ``ovms`` and ``opea``.

The quickstart guide lists these backends without examples, so the classes offer the names
its other classes use: ``chat(model, messages, prompt=None, system=None, **params)``,
``stream_chat`` (chunks with ``["text"]`` and ``["done"]``), ``embedding(model, text)``,
and for OVMS its own API: health checks, ``get_model_metadata``, ``infer`` and ``predict``.

>>> from ipfs_accelerate_py.api_backends import ovms
>>> client = ovms(metadata={"ovms_base_url": "http://localhost:8000"})   # doctest: +SKIP
>>> client.infer("resnet", image_batch).shape                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ipfs_accelerate_py.api_backends.base import ModelFirstClient
from ipfs_accelerate_py.types import EmbeddingResponse, GenerateResponse

from . import ovms as _ovms

__all__ = ["llvm", "opea", "ovms", "vllm"]


class _ChatClient(ModelFirstClient):
    """chat / stream_chat (core's ModelFirstClient) and embedding."""

    def embedding(self, model: str | None, text: Any, **params: Any) -> EmbeddingResponse[Any]:
        """``embedding(model, text)``: ``["embedding"]`` is the (first) vector (a list of
        floats; with ``output="numpy"``, ``["embeddings"]`` is one float32 array)."""
        return self.backend.embed(input=text, model=model, **params)


class llvm(_ChatClient):
    """A self-hosted OpenAI-compatible server (vLLM, llama.cpp, LM Studio) at
    ``LLVM_BASE_URL``; the model may be left out when the server serves one."""

    backend_name = "llvm"

    def generate(self, model: str | None, prompt: str, **params: Any) -> GenerateResponse:
        """``generate(model, prompt, max_tokens=...)``: ``["text"]`` is the completion."""
        return self.backend.generate(prompt=prompt, model=model, **params)  # type: ignore[return-value]

    def create_llvm_endpoint_handler(self, model: str | None = None) -> Any:
        """An async chat handler, named like the guide's other ``create_*_endpoint_handler``."""
        return self.backend.create_handler("chat", model)


class vllm(llvm):
    """:class:`llvm` under the name ``vllm`` (``VLLM_BASE_URL``, ``VLLM_API_KEY``)."""

    backend_name = "vllm"


class opea(_ChatClient):
    """OPEA: ``chat``/``stream_chat`` go to the ChatQnA megaservice for model ``chatqna``
    (the default), to the LLM microservice for any other model."""

    backend_name = "opea"

    def create_opea_endpoint_handler(self, model: str | None = None) -> Any:
        """An async chat handler (ChatQnA unless ``model`` names another)."""
        return self.backend.create_handler("chat", model)


class ovms(_ChatClient):
    """OpenVINO Model Server: KServe v2 (health, metadata, ``infer``), TensorFlow-Serving
    ``predict``, and chat/embeddings over its OpenAI-compatible ``/v3`` endpoints."""

    backend_name = "ovms"

    def generate(self, model: str | None, prompt: str, **params: Any) -> GenerateResponse:
        """``POST /v3/completions``: ``["text"]`` is the completion."""
        return self.backend.generate(prompt=prompt, model=model, **params)  # type: ignore[return-value]

    def is_server_live(self, **options: Any) -> bool:
        """``GET /v2/health/live``."""
        return _ovms.check(self.backend, _ovms.live_call(), **options)

    def is_server_ready(self, **options: Any) -> bool:
        """``GET /v2/health/ready``."""
        return _ovms.check(self.backend, _ovms.ready_call(), **options)

    async def ais_server_ready(self, **options: Any) -> bool:
        """Async :meth:`is_server_ready`."""
        return await _ovms.acheck(self.backend, _ovms.ready_call(), **options)

    def is_model_ready(self, model: str, version: int | None = None, **options: Any) -> bool:
        """``GET /v2/models/{model}[/versions/{version}]/ready``."""
        return _ovms.check(self.backend, _ovms.model_ready_call(model, version), **options)

    async def ais_model_ready(self, model: str, version: int | None = None, **options: Any) -> bool:
        """Async :meth:`is_model_ready`."""
        return await _ovms.acheck(self.backend, _ovms.model_ready_call(model, version), **options)

    def get_model_metadata(
        self, model: str, version: int | None = None, **options: Any
    ) -> dict[str, Any]:
        """``GET /v2/models/{model}``: name, versions, platform, inputs, outputs."""
        return self.backend.request(_ovms.metadata_call(model, version), **options)  # type: ignore[no-any-return]

    async def aget_model_metadata(
        self, model: str, version: int | None = None, **options: Any
    ) -> dict[str, Any]:
        """Async :meth:`get_model_metadata`."""
        return await self.backend.arequest(_ovms.metadata_call(model, version), **options)  # type: ignore[no-any-return]

    def infer(
        self,
        model: str,
        inputs: Any,
        input_name: str | None = None,
        version: int | None = None,
        outputs: Sequence[str] | None = None,
        datatypes: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """KServe inference: ``inputs`` is an array (its name read from the model's metadata
        unless given) or ``{name: array}``; returns an array, or ``{name: array}``."""
        if input_name is None and not isinstance(inputs, Mapping):
            input_name = _ovms.input_name_of(self.backend, model, version, **options)
        call = _ovms.infer_call(
            model,
            inputs,
            input_name=input_name,
            version=version,
            outputs=outputs,
            datatypes=datatypes,
        )
        return self.backend.request(call, **options)

    async def ainfer(
        self,
        model: str,
        inputs: Any,
        input_name: str | None = None,
        version: int | None = None,
        outputs: Sequence[str] | None = None,
        datatypes: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """Async :meth:`infer`."""
        if input_name is None and not isinstance(inputs, Mapping):
            input_name = await _ovms.ainput_name_of(self.backend, model, version, **options)
        call = _ovms.infer_call(
            model,
            inputs,
            input_name=input_name,
            version=version,
            outputs=outputs,
            datatypes=datatypes,
        )
        return await self.backend.arequest(call, **options)

    def predict(
        self, model: str, instances: Any, version: int | None = None, **options: Any
    ) -> Any:
        """TensorFlow-Serving ``:predict``: ``instances`` in, the ``predictions`` list out."""
        return self.backend.request(_ovms.predict_call(model, instances, version), **options)

    async def apredict(
        self, model: str, instances: Any, version: int | None = None, **options: Any
    ) -> Any:
        """Async :meth:`predict`."""
        return await self.backend.arequest(_ovms.predict_call(model, instances, version), **options)

    def create_ovms_endpoint_handler(self, model: str | None = None) -> Any:
        """An async chat handler over ``/v3/chat/completions``."""
        return self.backend.create_handler("chat", model)
