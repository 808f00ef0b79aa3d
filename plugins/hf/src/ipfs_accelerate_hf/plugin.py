"""Hugging Face: ``hf_tgi`` (text generation) and ``hf_tei`` (embeddings), one plugin.

Both backends talk to a self-hosted server when its base URL is set (``HF_TGI_BASE_URL``,
``HF_TEI_BASE_URL``, or ``hf_tgi_base_url`` / ``hf_tei_base_url`` in metadata), and to
Hugging Face's hosted router (``https://router.huggingface.co``) otherwise; the token
``HF_API_TOKEN`` (or ``HF_TOKEN``, metadata ``hf_api_token``) is sent as a bearer token
when set. TGI's chat is its OpenAI-compatible Messages API, spoken by core's shared layer.

The two backends' capabilities do not overlap (``hf_tgi``: chat, stream, generate,
list_models; ``hf_tei``: embed), and core calls a hook only for a capability the backend
declares, so no hook needs ``backend`` to tell them apart.

Neither backend is declared ``free``: ``BackendSpec.free`` is one flag per backend, and the
same backend is self-hosted (free) with a base URL but Hugging Face's hosted router (billed
by Hugging Face) without one. Claiming a cost of 0 for hosted calls would be wrong, and no
prices are known for them, so usage is counted, the estimated cost is 0 and the models used
are listed as unpriced in both modes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ipfs_accelerate_py import openai_compat
from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec, Settings
from ipfs_accelerate_py.errors import BackendError, InvalidArgumentError
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.types import ChatRequest, EmbedRequest, GenerateRequest

from . import errors, tei, tgi

if TYPE_CHECKING:
    from ipfs_accelerate_py.demo import DemoReport

TGI = "hf_tgi"
TEI = "hf_tei"
CHAT_PATH = "/v1/chat/completions"
SELF_HOSTED_MODEL = "tgi"  # TGI serves one model and ignores the name; its docs send "tgi"

TGI_SPEC = BackendSpec(
    name=TGI,
    display_name="Hugging Face TGI",
    package="ipfs-accelerate-hf",
    default_base_url=tgi.HOSTED_BASE_URL,
    api_key_env=("HF_API_TOKEN", "HF_TOKEN"),
    base_url_env=("HF_TGI_BASE_URL",),
    model_env=("HF_TGI_MODEL",),
    api_key_required=False,
    model_required=False,
    capabilities=frozenset({"chat", "stream", "generate", "list_models"}),
    seed_class="ipfs_accelerate_hf.guide:hf_tgi",
)

TEI_SPEC = BackendSpec(
    name=TEI,
    display_name="Hugging Face TEI",
    package="ipfs-accelerate-hf",
    default_base_url=tgi.HOSTED_BASE_URL,
    api_key_env=("HF_API_TOKEN", "HF_TOKEN"),
    base_url_env=("HF_TEI_BASE_URL",),
    model_env=("HF_TEI_MODEL",),
    api_key_required=False,
    model_required=False,
    capabilities=frozenset({"embed"}),
    seed_class="ipfs_accelerate_hf.guide:hf_tei",
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare ``hf_tgi`` and ``hf_tei``."""
    register(TGI_SPEC)
    register(TEI_SPEC)


def _chat_request(request: ChatRequest, settings: Settings) -> ChatRequest:
    if request.model:
        return request
    if tgi.is_hosted(settings):
        raise InvalidArgumentError(
            f"{TGI} chat on Hugging Face's hosted router needs a model id: pass model="
        )
    return attrs.evolve(request, model=SELF_HOSTED_MODEL)


@hookimpl
def chat(request: ChatRequest, settings: Settings) -> HttpCall:
    """``POST /v1/chat/completions`` (TGI's Messages API, or the hosted router's)."""
    return openai_compat.chat_call(_chat_request(request, settings), TGI, CHAT_PATH)


@hookimpl
def stream(request: ChatRequest, settings: Settings) -> HttpCall:
    """``POST /v1/chat/completions`` with ``stream: true`` and usage in the last chunk."""
    return openai_compat.stream_call(_chat_request(request, settings), TGI, CHAT_PATH)


@hookimpl
def generate(request: GenerateRequest, settings: Settings) -> HttpCall:
    """``POST /generate`` (self-hosted) or ``/hf-inference/models/{model}`` (hosted)."""
    return tgi.generate_call(request, settings, TGI)


@hookimpl
def list_models() -> HttpCall:
    """``GET /v1/models``: the served model (self-hosted) or the router's catalogue."""
    return openai_compat.models_call(TGI, "/v1/models")


@hookimpl
def embed(request: EmbedRequest, settings: Settings) -> HttpCall:
    """``POST /embed`` (self-hosted) or the hosted feature-extraction pipeline."""
    return tei.embed_call(request, settings, TEI)


@hookimpl
def refine_error(error: BackendError) -> BackendError | None:
    """TGI's and TEI's 424 (the model failed) is a retryable ServerError, not a bad request."""
    return errors.refine(error)


@hookimpl
def demo(backend: str, report: DemoReport) -> None:
    """TGI (chat, streams, generate_text, models) or TEI (embed, batch_embed, rerank) against
    a loopback server of its wire format, with a 429 and a 5xx/424 on the way."""
    from . import demo as scenario

    scenario.run(backend, report)
