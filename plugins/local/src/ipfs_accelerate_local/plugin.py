"""Self-hosted servers: ``llvm`` (alias ``vllm``), ``ovms`` and ``opea``.

* ``llvm`` / ``vllm``: any OpenAI-compatible server (vLLM, llama.cpp's ``llama-server``,
  LM Studio) under ``LLVM_BASE_URL`` (default ``http://localhost:8000/v1``). No key needed;
  the model is optional: without one the request carries no ``model`` field and the server
  answers with the model it serves (vLLM, llama.cpp and LM Studio all accept that).
* ``ovms``: OpenVINO Model Server's OpenAI-compatible ``/v3`` endpoints (chat, completions,
  embeddings, models); its KServe v2 and TensorFlow-Serving APIs are in :mod:`.ovms`.
* ``opea``: OPEA's ChatQnA megaservice (``POST /v1/chatqna``, model ``chatqna``) and its
  OpenAI-compatible LLM and embedding microservices; see :mod:`.opea`.

The OpenAI wire format is core's (:mod:`ipfs_accelerate_py.openai_compat`, which sends no
``model`` field when the call has none); this module only declares the backends and routes
each hook. All four are self-hosted (``free=True``): usage is counted, cost is 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ipfs_accelerate_py import openai_compat
from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.types import ChatRequest, EmbedRequest, GenerateRequest

from . import opea

if TYPE_CHECKING:
    from ipfs_accelerate_py.demo import DemoReport

LLVM = "llvm"
VLLM = "vllm"
OVMS = "ovms"
OPEA = "opea"
OPENAI_SERVERS = (LLVM, VLLM)  # the same client under two names

_TEXT = frozenset({"chat", "stream", "embed", "generate", "list_models"})

LLVM_SPEC = BackendSpec(
    name=LLVM,
    display_name="Self-hosted OpenAI-compatible server (vLLM, llama.cpp, LM Studio)",
    package="ipfs-accelerate-local",
    default_base_url="http://localhost:8000/v1",
    base_url_env=("LLVM_BASE_URL",),
    base_url_suffix="/v1",
    api_key_env=("LLVM_API_KEY",),
    api_key_required=False,
    model_env=("LLVM_MODEL",),
    model_required=False,
    capabilities=_TEXT,
    seed_class="ipfs_accelerate_local.guide:llvm",
    free=True,
)

# ``vllm``: the same client; vLLM's own ``VLLM_API_KEY`` is honoured before ``LLVM_API_KEY``
VLLM_SPEC = attrs.evolve(
    LLVM_SPEC,
    name=VLLM,
    display_name="vLLM (OpenAI-compatible server)",
    base_url_env=("VLLM_BASE_URL", "LLVM_BASE_URL"),
    api_key_env=("VLLM_API_KEY", "LLVM_API_KEY"),
    model_env=("VLLM_MODEL", "LLVM_MODEL"),
    seed_class="ipfs_accelerate_local.guide:vllm",
)

OVMS_SPEC = BackendSpec(
    name=OVMS,
    display_name="OpenVINO Model Server",
    package="ipfs-accelerate-local",
    # OVMS has no default REST port (``--rest_port`` must be set); its docs use 8000
    default_base_url="http://localhost:8000",
    base_url_env=("OVMS_BASE_URL",),
    api_key_env=("OVMS_API_KEY",),
    api_key_required=False,
    model_env=("OVMS_MODEL",),
    capabilities=_TEXT,
    seed_class="ipfs_accelerate_local.guide:ovms",
    free=True,
)

OPEA_SPEC = BackendSpec(
    name=OPEA,
    display_name="OPEA (Open Platform for Enterprise AI)",
    package="ipfs-accelerate-local",
    default_base_url="http://localhost:8888",  # the ChatQnA megaservice's port
    base_url_env=("OPEA_BASE_URL",),
    api_key_env=("OPEA_API_KEY",),
    api_key_required=False,
    model_env=("OPEA_MODEL",),
    default_model=opea.CHATQNA,
    model_required=False,
    capabilities=frozenset({"chat", "stream", "embed"}),
    seed_class="ipfs_accelerate_local.guide:opea",
    free=True,
)

SPECS = (LLVM_SPEC, VLLM_SPEC, OVMS_SPEC, OPEA_SPEC)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare ``llvm``, ``vllm``, ``ovms`` and ``opea``."""
    for spec in SPECS:
        register(spec)


@hookimpl
def chat(backend: str, request: ChatRequest) -> HttpCall:
    """``POST /chat/completions`` (OVMS: ``/v3/...``; OPEA: ChatQnA or the LLM service)."""
    if backend == OVMS:
        return openai_compat.chat_call(request, backend, "/v3/chat/completions")
    if backend == OPEA:
        return opea.chat_call(request)
    return openai_compat.chat_call(request, backend)


@hookimpl
def stream(backend: str, request: ChatRequest) -> HttpCall:
    """The streamed twin of :func:`chat` (SSE; ChatQnA's ``data: b'...'`` lines for OPEA)."""
    if backend == OVMS:
        return openai_compat.stream_call(request, backend, "/v3/chat/completions")
    if backend == OPEA:
        return opea.stream_call(request)
    return openai_compat.stream_call(request, backend)


@hookimpl
def embed(backend: str, request: EmbedRequest) -> HttpCall:
    """``POST /embeddings`` (OVMS ``/v3/embeddings``, OPEA ``/v1/embeddings``).

    Unless the caller names an ``encoding_format``, vLLM, llama.cpp and OVMS are asked for
    base64 (they send float32 bytes; a server that ignores the field, such as LM Studio or an
    older llama.cpp, sends floats, which are read as well). OPEA's embedding microservice
    always answers with floats, so it is asked for floats."""
    path = {OVMS: "/v3/embeddings", OPEA: "/v1/embeddings"}.get(backend, "/embeddings")
    if backend == OPEA:
        if request.model == opea.CHATQNA:  # the default names no embedder
            request = attrs.evolve(request, model="")
        return openai_compat.embed_call(request, backend, path)
    return openai_compat.embed_call(request, backend, path, wire_format="base64")


@hookimpl
def generate(backend: str, request: GenerateRequest) -> HttpCall | None:
    """``POST /completions`` (OVMS ``/v3/completions``): text from a bare prompt (``opea``
    does not declare ``generate``, so core never asks it)."""
    if request.kind != "text":
        return None
    path = "/v3/completions" if backend == OVMS else "/completions"
    return openai_compat.completion_call(request, backend, path)


@hookimpl
def list_models(backend: str) -> HttpCall:
    """``GET /models`` (OVMS ``/v3/models``; ``opea`` does not declare ``list_models``)."""
    return openai_compat.models_call(backend, "/v3/models" if backend == OVMS else "/models")


@hookimpl
def demo(backend: str, report: DemoReport) -> None:
    """The backend's calls against a loopback server of its protocol, with a 429 and a 503
    on the way (``ovms`` adds KServe ``infer``, ``opea`` ChatQnA's bytes-literal stream)."""
    from . import demo as scenario

    scenario.run(backend, report)
