"""The quickstart guide's ``hf_tgi`` and ``hf_tei`` classes.

>>> from ipfs_accelerate_py.api_backends import hf_tgi, hf_tei
>>> tgi_api = hf_tgi(metadata={"hf_api_token": "hf_..."})          # doctest: +SKIP
>>> tgi_api.generate_text("mistralai/Mistral-7B-Instruct-v0.2", "Hi",
...                       parameters={"max_new_tokens": 100})["generated_text"]
>>> tei_api = hf_tei(metadata={"hf_tei_base_url": "http://localhost:8080"})  # doctest: +SKIP
>>> len(tei_api.generate_embedding(None, "some text"))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ipfs_accelerate_py.api_backends.base import GuideClient, ModelFirstClient
from ipfs_accelerate_py.stream import AsyncStream, Stream

from . import batching, operations
from .tgi import TextGenerationResponse

__all__ = ["hf_tei", "hf_tgi"]


class hf_tgi(ModelFirstClient):
    """Hugging Face Text Generation Inference with the guide's method names."""

    backend_name = "hf_tgi"

    def generate_text(
        self,
        model: str | None,
        prompt: str,
        parameters: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TextGenerationResponse:
        """``generate_text(model, prompt, parameters)``: ``["generated_text"]`` (and
        ``["details"]`` with ``parameters={"details": True}``)."""
        return self.backend.generate(  # type: ignore[return-value]
            prompt=prompt, model=model, parameters=dict(parameters or {}), **options
        )

    async def agenerate_text(
        self,
        model: str | None,
        prompt: str,
        parameters: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TextGenerationResponse:
        """Async :meth:`generate_text`."""
        return await self.backend.agenerate(  # type: ignore[return-value]
            prompt=prompt, model=model, parameters=dict(parameters or {}), **options
        )

    def stream_generate(
        self,
        model: str | None,
        prompt: str,
        parameters: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Stream:
        """Token chunks with ``["text"]`` and ``["done"]`` from ``/generate_stream``."""
        return operations.generate_stream(self.backend, model, prompt, parameters, **options)

    def astream_generate(
        self,
        model: str | None,
        prompt: str,
        parameters: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncStream:
        """Async :meth:`stream_generate`."""
        return operations.agenerate_stream(self.backend, model, prompt, parameters, **options)

    def get_model_info(self, **options: Any) -> dict[str, Any]:
        """The server's ``/info`` (model id, limits, version)."""
        return operations.model_info(self.backend, **options)

    def health_check(self, **options: Any) -> bool:
        """``True`` when ``/health`` answers 200."""
        return operations.health(self.backend, **options)

    def create_remote_text_generation_endpoint_handler(self, model: str | None = None) -> Any:
        """An async handler: ``await handler(prompt)`` returns ``{"text": ...}``."""
        return self.backend.create_handler("generate", model)


class hf_tei(GuideClient):
    """Hugging Face Text Embeddings Inference with the guide's method names."""

    backend_name = "hf_tei"

    def generate_embedding(self, model: str | None, text: str, **params: Any) -> Any:
        """``generate_embedding(model, text)``: the vector, a list of floats (a float32
        array with ``output="numpy"``)."""
        return self.backend.embed(input=text, model=model, **params).embedding

    async def agenerate_embedding(self, model: str | None, text: str, **params: Any) -> Any:
        """Async :meth:`generate_embedding`."""
        return (await self.backend.aembed(input=text, model=model, **params)).embedding

    def batch_embed(self, model: str | None, texts: Sequence[str], **params: Any) -> Any:
        """``batch_embed(model, texts)``: one vector per text, in order (lists of floats; one
        float32 array with ``output="numpy"``)."""
        return batching.batch_embed(self.backend, model, texts, **params)

    async def abatch_embed(self, model: str | None, texts: Sequence[str], **params: Any) -> Any:
        """Async :meth:`batch_embed`."""
        return await batching.abatch_embed(self.backend, model, texts, **params)

    def calculate_similarity(self, a: Sequence[float], b: Sequence[float]) -> float:
        """``calculate_similarity(a, b)``: the cosine similarity."""
        return batching.cosine_similarity(a, b)

    def rerank(self, query: str, texts: list[str], **params: Any) -> list[dict[str, Any]]:
        """``rerank(query, texts)``: ``[{"index", "score"}...]``, most relevant first."""
        return operations.rerank(self.backend, query, texts, **params)

    async def arerank(self, query: str, texts: list[str], **params: Any) -> list[dict[str, Any]]:
        """Async :meth:`rerank`."""
        return await operations.arerank(self.backend, query, texts, **params)

    def embed_sparse(self, texts: Any, **params: Any) -> list[list[dict[str, Any]]]:
        """Sparse (SPLADE) embeddings: per text, ``[{"index", "value"}...]``."""
        return operations.embed_sparse(self.backend, texts, **params)

    async def aembed_sparse(self, texts: Any, **params: Any) -> list[list[dict[str, Any]]]:
        """Async :meth:`embed_sparse`."""
        return await operations.aembed_sparse(self.backend, texts, **params)

    def get_model_info(self, **options: Any) -> dict[str, Any]:
        """The server's ``/info`` (model id, ``max_client_batch_size``...)."""
        return operations.model_info(self.backend, **options)

    def health_check(self, **options: Any) -> bool:
        """``True`` when ``/health`` answers 200."""
        return operations.health(self.backend, **options)

    def create_remote_text_embedding_endpoint_handler(self, model: str | None = None) -> Any:
        """An async handler: ``await handler(text)`` returns ``{"embedding": [...], ...}``."""
        return self.backend.create_handler("embed", model)
