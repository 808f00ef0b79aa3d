"""Text Embeddings Inference's wire format: ``/embed``, ``/rerank``, ``/embed_sparse``.

A self-hosted TEI server takes ``POST /embed {"inputs": [...], "normalize": ...,
"truncate": ...}`` and answers one vector per input, ``[[float, ...], ...]``; it refuses
more than ``max_client_batch_size`` inputs (read from ``GET /info``) with a 422. It also
offers ``POST /rerank {"query", "texts"}`` → ``[{"index", "score", "text"?}]`` (sorted by
score), ``POST /embed_sparse {"inputs"}`` → ``[[{"index", "value"}]]`` for SPLADE models, and
the OpenAI-compatible ``POST /v1/embeddings`` (used here for ``encoding_format="base64"``).
Errors are ``{"error": ..., "error_type": ...}``: 429 overloaded, 413 payload too large,
422 validation/tokenizer, 424 backend, 400 empty batch.

Without a configured server the backend calls Hugging Face's hosted feature-extraction
pipeline, ``POST /hf-inference/models/{model}/pipeline/feature-extraction`` with the same
body, as ``huggingface_hub``'s ``InferenceClient.feature_extraction`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ipfs_accelerate_py import openai_compat
from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import Settings
from ipfs_accelerate_py.errors import InvalidArgumentError, MalformedResponseError
from ipfs_accelerate_py.types import EmbeddingResponse, EmbedRequest

from .tgi import hosted_model_path, is_hosted, self_hosted_only

__all__ = ["embed_call", "parse_vectors", "rerank_call", "sparse_call"]


def _bad(provider: str, what: str, body: Any) -> MalformedResponseError:
    return MalformedResponseError(f"{what}; body starts {str(body)[:200]!r}", provider=provider)


def _vector(value: Any, provider: str, body: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise _bad(provider, "an embedding is not a list of numbers", body)
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise _bad(
            provider,
            "an embedding is not a list of numbers (a model without pooling returns one "
            "vector per token)",
            body,
        ) from None


def parse_vectors(body: Any, provider: str, count: int) -> list[list[float]]:
    """``[[float, ...], ...]`` with exactly ``count`` vectors, or MalformedResponseError."""
    if not isinstance(body, list):
        raise _bad(provider, "the embeddings reply is not a list of vectors", body)
    vectors = [_vector(v, provider, body) for v in body]
    if len(vectors) != count:
        raise _bad(provider, f"asked for {count} embeddings, got {len(vectors)}", body)
    return vectors


def embed_call(request: EmbedRequest, settings: Settings, provider: str) -> HttpCall:
    """``POST /embed`` (self-hosted), the hosted feature-extraction pipeline, or
    ``/v1/embeddings`` for ``encoding_format="base64"``."""
    if request.encoding_format == "base64":
        self_hosted_only(settings, provider, "/v1/embeddings (base64)")
        return openai_compat.embed_call(
            attrs.evolve(request, model=request.model or "tei"), provider, "/v1/embeddings"
        )
    path = "/embed"
    if is_hosted(settings):
        path = hosted_model_path(request.model, provider, "/pipeline/feature-extraction")
    body: dict[str, Any] = {"inputs": list(request.inputs), **request.params}
    count, model = len(request.inputs), request.model or None
    return HttpCall(
        "POST",
        path,
        json=body,
        parse=lambda b: EmbeddingResponse(
            embeddings=parse_vectors(b, provider, count), model=model, raw=b
        ),
        model=model,
    )


def rerank_call(
    query: str, texts: list[str], params: Mapping[str, Any], settings: Settings, provider: str
) -> HttpCall:
    """``POST /rerank``: a list of ``{"index", "score"}`` (and ``"text"`` with
    ``return_text=True``), most relevant first, as the server orders them."""
    self_hosted_only(settings, provider, "/rerank")
    if not isinstance(query, str) or not query:
        raise InvalidArgumentError("query must be a non-empty string")
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidArgumentError("texts must be a non-empty list of strings")

    def parse(body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise _bad(provider, "the rerank reply is not a list", body)
        out = []
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get("index"), int):
                raise _bad(provider, "a rerank entry has no index", body)
            if not isinstance(item.get("score"), (int, float)):
                raise _bad(provider, "a rerank entry has no score", body)
            if not 0 <= item["index"] < len(texts):
                raise _bad(provider, "a rerank entry's index is out of range", body)
            out.append(item)
        return out

    body = {"query": query, "texts": list(texts), **params}
    return HttpCall("POST", "/rerank", json=body, parse=parse, usage_of=lambda _: None)


def sparse_call(
    texts: list[str], params: Mapping[str, Any], settings: Settings, provider: str
) -> HttpCall:
    """``POST /embed_sparse``: per input, the non-zero ``{"index", "value"}`` pairs."""
    self_hosted_only(settings, provider, "/embed_sparse")
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidArgumentError("texts must be a non-empty list of strings")
    count = len(texts)

    def parse(body: Any) -> list[list[dict[str, Any]]]:
        if not isinstance(body, list) or len(body) != count:
            raise _bad(provider, f"the sparse reply is not {count} lists", body)
        for row in body:
            if not isinstance(row, list) or not all(
                isinstance(p, dict) and isinstance(p.get("index"), int) and "value" in p
                for p in row
            ):
                raise _bad(provider, "a sparse embedding is not a list of index/value", body)
        return body

    body = {"inputs": list(texts), **params}
    return HttpCall("POST", "/embed_sparse", json=body, parse=parse, usage_of=lambda _: None)
