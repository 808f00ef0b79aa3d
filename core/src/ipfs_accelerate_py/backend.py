"""The object users hold: one provider plugin bound to the resilience pipeline.

``get_backend("openai")`` returns a :class:`Backend`. Its methods take keywords
(``messages=``, ``model=``, generation parameters) and come in sync and async twins
(``chat``/``achat``, ``stream``/``astream``...). Every call also accepts the pipeline options
``endpoint_id=``, ``priority=``, ``request_id=``, ``api_key_name=``, ``timeout=`` (a
deadline for each attempt; for a stream, the longest wait for the next event),
``total_timeout=`` (for a stream: the whole stream), ``queue_timeout=`` and
``extra_headers=``. One backend serves any number of threads and event
loops for its whole life.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from . import handlers, pipeline, plugins
from . import observability as _obs
from .caching import CacheControls
from .calls import Call, CallableCall, HttpCall
from .config import BackendSpec, Settings, seconds_setting
from .controls import EndpointControls
from .endpoint import POLICY_NAMES, Endpoint
from .errors import ConfigurationError, InvalidArgumentError
from .fastattrs import evolve
from .masking import mask_url
from .resilience.clock import SYSTEM_CLOCK, Clock
from .resilience.gate import Priority
from .resilience.usage import UsageTracker
from .stream import AsyncStream, Stream

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from .resilience.shared import SharedConfig

from .types import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    EmbedRequest,
    GenerateRequest,
    GenerateResponse,
    ImageResponse,
    Message,
    ModelInfo,
    coerce_messages,
)
from .vectors import check_output, conform

__all__ = ["Backend"]

PIPELINE_OPTIONS = frozenset(
    {
        "endpoint_id",
        "priority",
        "request_id",
        "api_key_name",
        "timeout",
        "queue_timeout",
        "extra_headers",
        "extra_body",
        "extra_query",
        "total_timeout",
    }
)
_NUMBER_PARAMS = frozenset(("temperature", "top_p", "frequency_penalty", "presence_penalty"))
_INT_PARAMS = frozenset(("max_tokens", "max_completion_tokens", "n", "top_k", "seed"))


def _check_params(params: Mapping[str, Any]) -> None:
    """Type-check the common generation parameters before anything is sent."""
    if not params:
        return
    misplaced = POLICY_NAMES.intersection(params)
    if misplaced:  # would otherwise be sent to the provider as request fields
        name = sorted(misplaced)[0]
        raise InvalidArgumentError(
            f"{name} is an endpoint setting, not a call argument: set backend.{name} = ..., "
            f"pass it to get_backend(...) or create_endpoint(...)"
        )
    for name in _NUMBER_PARAMS.intersection(params):
        value = params[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InvalidArgumentError(f"{name} must be a number, got {value!r}")
    for name in _INT_PARAMS.intersection(params):
        value = params[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidArgumentError(f"stop must be a string or a list of strings, got {stop!r}")


MAX_REQUEST_ID_LENGTH = 200


def _request_id(value: Any) -> str:
    """A caller's request id: printable text (it goes into a header and every error
    message), no CR/LF, at most ``MAX_REQUEST_ID_LENGTH`` characters."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidArgumentError(f"request_id must be a string, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_REQUEST_ID_LENGTH:
        raise InvalidArgumentError(
            f"request_id must be at most {MAX_REQUEST_ID_LENGTH} characters, got {len(text)}"
        )
    if not text.isprintable() or not text.isascii():
        shown = ascii(text[:60])  # escaped: a CR/LF never reaches the message raw
        raise InvalidArgumentError(
            f"request_id must be printable ASCII without CR, LF or other control characters, "
            f"got {shown}"
        )
    return text


def _mapping(value: Any, name: str) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return value
    raise InvalidArgumentError(f"{name} must be a dict, got {type(value).__name__}")


def _string_map(value: Any, name: str) -> Mapping[str, Any] | None:
    mapping = _mapping(value, name)
    if mapping and not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in mapping.items()
    ):
        raise InvalidArgumentError(f"{name} must map names to strings, got {mapping!r}")
    return mapping


def _as_output(
    response: EmbeddingResponse[Any], output: str, provider: str
) -> EmbeddingResponse[Any]:
    """``response`` with its vectors as the caller asked (plugins other than the
    OpenAI-compatible ones return lists; core converts)."""
    vectors = response.embeddings
    if output == "list" and type(vectors) is list:  # the common case: nothing to do
        return response
    converted = conform(vectors, output, provider=provider)
    return response if converted is vectors else evolve(response, embeddings=converted)


def _plugin_hooks(registration: plugins.Registration) -> pipeline.PluginHooks | None:
    """The plugin's authorize and refine_error hooks, bound to its backend name."""
    name = registration.spec.name
    authorize = registration.hook("authorize")
    refine = registration.hook("refine_error")
    if authorize is None and refine is None:
        return None
    return pipeline.PluginHooks(
        authorize=(
            None
            if authorize is None
            else lambda request, credential: authorize(
                backend=name, request=request, credential=credential
            )
        ),
        refine=None if refine is None else lambda error: refine(backend=name, error=error),
    )


class Backend(EndpointControls, CacheControls):
    """A provider plugin bound to endpoints, each with its own queue, breaker and keys."""

    def __init__(
        self,
        spec: BackendSpec,
        settings: Settings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        policy: Mapping[str, Any] | None = None,
        shared: SharedConfig | None = None,
    ) -> None:
        self.name = spec.name
        self.shared_config = shared
        self.spec = spec
        self.settings = settings
        self.clock = clock
        self.usage = UsageTracker(spec.name, free=spec.free)
        self.usage.pricing  # noqa: B018 - load prices now: a bad pricing file fails here, not mid-call
        self._registration = registration = plugins.load(spec.name)
        self._hooks = _plugin_hooks(registration)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.default_endpoint = Endpoint(
            "default",
            spec,
            settings,
            usage=self.usage,
            clock=clock,
            policy=dict(policy or {}),
            shared=shared,
        )
        self.endpoints: dict[str, Endpoint] = {"default": self.default_endpoint}

    def __repr__(self) -> str:
        url = mask_url(self.settings.base_url)
        return f"<Backend {self.name} {url} endpoints={list(self.endpoints)}>"

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close every endpoint's sync connections."""
        for ep in list(self.endpoints.values()):
            ep.transport.close()

    async def aclose(self) -> None:
        """Close the running loop's connections (threads' connections stay open: ``close()``
        closes those)."""
        for ep in list(self.endpoints.values()):
            await ep.transport.aclose()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- request building -------------------------------------------------------------------
    def _split(self, kwargs: dict[str, Any]) -> tuple[Endpoint, pipeline.CallOptions]:
        if not kwargs or PIPELINE_OPTIONS.isdisjoint(kwargs):  # the common case, kept cheap
            return self.default_endpoint, pipeline.CallOptions(pipeline.new_request_id())
        endpoint_id = kwargs.pop("endpoint_id", None)
        ep = self.default_endpoint if endpoint_id is None else self._endpoint(endpoint_id)
        request_id = kwargs.pop("request_id", None)
        request_id = pipeline.new_request_id() if not request_id else _request_id(request_id)
        priority = kwargs.pop("priority", None)
        timeout = kwargs.pop("timeout", None)
        queue_timeout = kwargs.pop("queue_timeout", None)
        total_timeout = kwargs.pop("total_timeout", None)
        try:
            opts = pipeline.CallOptions(
                request_id=request_id,
                priority=Priority.parse(priority) if priority is not None else Priority.NORMAL,
                api_key_name=kwargs.pop("api_key_name", None),
                timeout=None if timeout is None else seconds_setting(timeout, "timeout"),
                queue_timeout=(
                    None
                    if queue_timeout is None
                    else seconds_setting(queue_timeout, "queue_timeout")
                ),
                extra_headers=_string_map(kwargs.pop("extra_headers", None), "extra_headers"),
                extra_body=_mapping(kwargs.pop("extra_body", None), "extra_body"),
                extra_query=_string_map(kwargs.pop("extra_query", None), "extra_query"),
                total_timeout=(
                    None
                    if total_timeout is None
                    else seconds_setting(total_timeout, "total_timeout")
                ),
            )
        except ConfigurationError as exc:
            raise InvalidArgumentError(exc.message) from None
        return ep, opts

    def endpoint(self, endpoint_id: str | None = None) -> Endpoint:
        """An endpoint by id (the default one for ``None``): its ``settings``, ``keys``,
        ``breaker``... for plugins that build calls of their own."""
        return self._endpoint(endpoint_id)

    def resolve_model(self, model: str | None) -> str:
        """The model a call uses: ``model``, else the configured default; ``""`` for a
        backend that needs none; InvalidArgumentError when one is needed and missing."""
        return self._model(model)

    def _model(self, model: str | None) -> str:
        model = model or self.settings.default_model
        if not model and not self.spec.model_required:
            return ""
        if not model:
            env = " or ".join(self.spec.model_env)
            hint = f" or set {env}" if env else ""
            raise InvalidArgumentError(f"{self.name} needs a model: pass model={hint}")
        if not isinstance(model, str):
            raise InvalidArgumentError(f"model must be a string, got {type(model).__name__}")
        return model

    def _require(self, capability: str) -> None:
        if capability not in self.spec.capabilities:
            raise InvalidArgumentError(
                f"{self.name} does not support {capability}; it supports "
                f"{', '.join(sorted(self.spec.capabilities))}"
            )

    def _call(self, hook: str, ep: Endpoint, **args: Any) -> Call:
        impl = self._registration.hook(hook)
        call = None if impl is None else impl(backend=self.name, settings=ep.settings, **args)
        if call is None:
            raise InvalidArgumentError(f"the {self.name} plugin does not implement {hook}")
        if not isinstance(call, (HttpCall, CallableCall)):
            raise TypeError(
                f"the {self.name} plugin's {hook} hook returned {type(call).__name__}, "
                "not an HttpCall or CallableCall"
            )
        return call

    def _chat_call(
        self,
        hook: str,
        messages: Any,
        model: str | None,
        system: str | None,
        params: dict[str, Any],
    ) -> tuple[Endpoint, pipeline.CallOptions, Call, ChatRequest]:
        if "stream" in params:
            raise InvalidArgumentError(
                "stream= is not a chat() option: call stream() (or astream()) for a streamed reply"
            )
        ep, opts = self._split(params)
        msgs = coerce_messages(messages)
        if system is not None:
            msgs.insert(0, Message(role="system", content=system))
        if not msgs:
            raise InvalidArgumentError("messages must not be empty")
        _check_params(params)
        request = ChatRequest(model=self._model(model), messages=tuple(msgs), params=params)
        if _obs.ENABLED:
            opts = _obs.describe(opts, hook)
        return ep, opts, self._call(hook, ep, request=request), request

    def _embed_call(
        self,
        input: Any,
        model: str | None,
        encoding_format: str | None,
        output: str,
        params: dict[str, Any],
    ) -> tuple[Endpoint, pipeline.CallOptions, Call, EmbedRequest]:
        self._require("embed")
        ep, opts = self._split(params)
        inputs = (input,) if isinstance(input, str) else tuple(input or ())
        if not inputs or not all(isinstance(t, str) for t in inputs):
            raise InvalidArgumentError(
                "input must be a non-empty string or a non-empty list of strings"
            )
        if encoding_format is not None and encoding_format not in ("float", "base64"):
            raise InvalidArgumentError(
                f"encoding_format must be 'float' or 'base64', got {encoding_format!r}"
            )
        if output != "list":
            check_output(output)  # "numpy" without numpy installed fails here, not after
        _check_params(params)
        request = EmbedRequest(self._model(model), inputs, encoding_format, params, output)
        if _obs.ENABLED:
            opts = _obs.describe(opts, "embed")
        return ep, opts, self._call("embed", ep, request=request), request

    def _generate_call(
        self, prompt: Any, model: str | None, kind: str, params: dict[str, Any]
    ) -> tuple[Endpoint, pipeline.CallOptions, Call]:
        self._require("images" if kind == "image" else "generate")
        ep, opts = self._split(params)
        if not isinstance(prompt, str) or not prompt:
            raise InvalidArgumentError("prompt must be a non-empty string")
        _check_params(params)
        request = GenerateRequest(self._model(model), prompt, kind, params)
        if _obs.ENABLED:
            opts = _obs.describe(opts, kind)
        return ep, opts, self._call("generate", ep, request=request)

    # -- sync calls -------------------------------------------------------------------------
    def chat(
        self, *, messages: Any, model: str | None = None, system: str | None = None, **params: Any
    ) -> ChatResponse:
        """A chat completion. ``system`` prepends a system message; other keywords are
        generation parameters (``temperature``, ``max_tokens``, ``tools``...) or pipeline
        options."""
        self._require("chat")
        ep, opts, call, request = self._chat_call("chat", messages, model, system, params)
        return self._run_chat(ep, opts, call, request)  # cache, single-flight, pipeline

    def stream(
        self, *, messages: Any, model: str | None = None, system: str | None = None, **params: Any
    ) -> Stream:
        """A streamed chat completion: text chunks, then one chunk with ``done=True``.
        Use it in a ``with`` block (or read it to the end) so its queue slot is freed."""
        self._require("stream")
        ep, opts, call, request = self._chat_call("stream", messages, model, system, params)
        control = pipeline.StreamControl()
        return Stream(self._stream_gen(ep, opts, call, request, control), control)

    @overload
    def embed(
        self,
        *,
        input: str | list[str],
        model: str | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        output: Literal["list"] = "list",
        **params: Any,
    ) -> EmbeddingResponse[list[list[float]]]: ...

    @overload
    def embed(
        self,
        *,
        input: str | list[str],
        model: str | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        output: Literal["numpy"],
        **params: Any,
    ) -> EmbeddingResponse[NDArray[np.float32]]: ...

    @overload
    def embed(
        self,
        *,
        input: str | list[str],
        model: str | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        output: str,
        **params: Any,
    ) -> EmbeddingResponse[Any]: ...

    def embed(
        self,
        *,
        input: str | list[str],
        model: str | None = None,
        encoding_format: str | None = None,
        output: str = "list",
        **params: Any,
    ) -> EmbeddingResponse[Any]:
        """Embed one text or many: one vector per text, in order.

        ``output="list"`` (the default) gives ``embeddings`` as lists of Python floats;
        ``output="numpy"`` as one 2-D ``numpy.ndarray`` of float32, a row per text (needs
        numpy: ``pip install "ipfs-accelerate-core[numpy]"``). ``encoding_format`` is what
        travels on the wire, decoded to the same floats either way: left out, the plugin
        picks (base64 where the server supports it, as the official openai SDK does);
        ``"float"`` or ``"base64"`` is sent as given."""
        ep, opts, call, request = self._embed_call(input, model, encoding_format, output, params)
        response = self._run_embed(ep, opts, call, request)  # batching, single-flight, pipeline
        return _as_output(response, output, self.name)

    def generate(
        self, *, prompt: str, model: str | None = None, kind: str = "text", **params: Any
    ) -> GenerateResponse | ImageResponse:
        """Generate from a prompt: text (``kind="text"``) or images (``kind="image"``)."""
        ep, opts, call = self._generate_call(prompt, model, kind, params)
        return pipeline.run(ep, call, opts, hooks=self._hooks)  # type: ignore[no-any-return]

    def generate_image(
        self, *, prompt: str, model: str | None = None, **params: Any
    ) -> ImageResponse:
        """Generate images (``size=``, ``n=``, ``response_format="b64_json"``...)."""
        return self.generate(prompt=prompt, model=model, kind="image", **params)  # type: ignore[return-value]

    def list_models(self, **options: Any) -> list[ModelInfo]:
        """The models the backend offers."""
        self._require("list_models")
        ep, opts = self._split(options)
        self._reject_extra(options)
        call = self._call("list_models", ep)
        if _obs.ENABLED:
            opts = _obs.describe(opts, "list_models")
        return pipeline.run(ep, call, opts, hooks=self._hooks)  # type: ignore[no-any-return]

    # -- async calls ------------------------------------------------------------------------
    async def achat(
        self, *, messages: Any, model: str | None = None, system: str | None = None, **params: Any
    ) -> ChatResponse:
        """Async :meth:`chat`."""
        self._require("chat")
        ep, opts, call, request = self._chat_call("chat", messages, model, system, params)
        return await self._arun_chat(ep, opts, call, request)

    def astream(
        self, *, messages: Any, model: str | None = None, system: str | None = None, **params: Any
    ) -> AsyncStream:
        """Async :meth:`stream`: ``async with backend.astream(...) as s: async for chunk in s``."""
        self._require("stream")
        ep, opts, call, request = self._chat_call("stream", messages, model, system, params)
        return AsyncStream(self._astream_gen(ep, opts, call, request))

    @overload
    async def aembed(
        self,
        *,
        input: str | list[str],
        model: str | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        output: Literal["list"] = "list",
        **params: Any,
    ) -> EmbeddingResponse[list[list[float]]]: ...

    @overload
    async def aembed(
        self,
        *,
        input: str | list[str],
        model: str | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        output: Literal["numpy"],
        **params: Any,
    ) -> EmbeddingResponse[NDArray[np.float32]]: ...

    @overload
    async def aembed(
        self,
        *,
        input: str | list[str],
        model: str | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        output: str,
        **params: Any,
    ) -> EmbeddingResponse[Any]: ...

    async def aembed(
        self,
        *,
        input: str | list[str],
        model: str | None = None,
        encoding_format: str | None = None,
        output: str = "list",
        **params: Any,
    ) -> EmbeddingResponse[Any]:
        """Async :meth:`embed`."""
        ep, opts, call, request = self._embed_call(input, model, encoding_format, output, params)
        response = await self._arun_embed(ep, opts, call, request)
        return _as_output(response, output, self.name)

    async def agenerate(
        self, *, prompt: str, model: str | None = None, kind: str = "text", **params: Any
    ) -> GenerateResponse | ImageResponse:
        """Async :meth:`generate`."""
        ep, opts, call = self._generate_call(prompt, model, kind, params)
        return await pipeline.arun(ep, call, opts, hooks=self._hooks)  # type: ignore[no-any-return]

    async def agenerate_image(
        self, *, prompt: str, model: str | None = None, **params: Any
    ) -> ImageResponse:
        """Async :meth:`generate_image`."""
        return await self.agenerate(prompt=prompt, model=model, kind="image", **params)  # type: ignore[return-value]

    async def alist_models(self, **options: Any) -> list[ModelInfo]:
        """Async :meth:`list_models`."""
        self._require("list_models")
        ep, opts = self._split(options)
        self._reject_extra(options)
        call = self._call("list_models", ep)
        if _obs.ENABLED:
            opts = _obs.describe(opts, "list_models")
        return await pipeline.arun(ep, call, opts, hooks=self._hooks)  # type: ignore[no-any-return]

    # -- a plugin's own calls ------------------------------------------------------------------
    def request(self, call: Call, **options: Any) -> Any:
        """Run a call a plugin built for an operation outside the hooks (TEI ``/rerank``,
        OVMS ``infer``...) through the same pipeline; ``options`` are pipeline options
        (``endpoint_id=``, ``priority=``, ``timeout=``...)."""
        ep, opts = self._split(options)
        self._reject_extra(options)
        return pipeline.run(ep, call, opts, hooks=self._hooks)

    async def arequest(self, call: Call, **options: Any) -> Any:
        """Async :meth:`request`."""
        ep, opts = self._split(options)
        self._reject_extra(options)
        return await pipeline.arun(ep, call, opts, hooks=self._hooks)

    def request_stream(self, call: Call, **options: Any) -> Stream:
        """Stream a plugin-built call (``HttpCall.stream`` set) through the pipeline."""
        ep, opts = self._split(options)
        self._reject_extra(options)
        control = pipeline.StreamControl()
        gen = pipeline.run_stream(ep, call, opts, control, hooks=self._hooks)
        return Stream(gen, control)

    def arequest_stream(self, call: Call, **options: Any) -> AsyncStream:
        """Async :meth:`request_stream`."""
        ep, opts = self._split(options)
        self._reject_extra(options)
        return AsyncStream(pipeline.arun_stream(ep, call, opts, hooks=self._hooks))

    @staticmethod
    def _reject_extra(options: Mapping[str, Any]) -> None:
        if options:
            raise InvalidArgumentError(f"unexpected arguments: {', '.join(sorted(options))}")

    # -- handlers ---------------------------------------------------------------------------
    def create_handler(
        self, kind: str = "chat", model: str | None = None, **options: Any
    ) -> Callable[..., Any]:
        """An async endpoint handler: ``await handler(prompt)`` returns a plain dict."""
        impl = self._registration.hook("create_handler")
        handler = None
        if impl is not None:
            handler = impl(backend=self.name, client=self, kind=kind, model=model, options=options)
        if handler is None:
            handler = handlers.create_handler(self.name, self, kind, model, options)
        if handler is None:
            raise InvalidArgumentError(f"{self.name} has no handler of kind {kind!r}")
        return handler
