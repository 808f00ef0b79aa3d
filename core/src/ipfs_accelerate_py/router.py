"""Router: one model alias over many deployments, with fallbacks, balancing and budgets.

::

    router = Router(strategy="least-busy", fallbacks={"smart": ["cheap"]})
    router.add_deployment("smart", "claude", "claude-sonnet-4-5", api_key=KEY_1)
    router.add_deployment("smart", "claude", "claude-sonnet-4-5", api_key=KEY_2)
    router.add_deployment("smart", "openai", "gpt-4o")
    router.add_deployment("cheap", "gemini", "gemini-2.5-flash")
    reply = router.chat(model="smart", messages=[{"role": "user", "content": "Hi"}])
    reply.attempts      # every deployment tried, in order, with outcome and latency

A router is used like a backend (``chat``, ``stream``, ``embed``, ``generate`` and their
``a``-prefixed async twins), from any number of threads and event loops; ``model=`` names an
alias. The request travels in core's types, so each plugin translates it for its provider
and a Claude request falls back to OpenAI correctly. Router options of a call, besides the
backend's: ``deadline=`` (seconds the call may wait for a cooling deployment; default
``wait_timeout``), ``user=`` (also sent to the provider), ``team=``, ``api_key_id=``,
``tags=`` (budget scopes) and ``validation_retry=`` (structured output). See
:mod:`.route_plan` for the fallback rules, :mod:`.routing` for the strategies,
:mod:`.router_stream` for streams and :mod:`.budgets` for budgets. Deployments the router
builds default to ``max_retries=0``: the fallback is the retry (pass ``max_retries=`` to
retry in place first).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .backend import Backend
from .budgets import Budget, BudgetStore, MemoryBudgetStore
from .errors import BackendError, ConfigurationError, InvalidArgumentError
from .resilience.clock import SYSTEM_CLOCK, Clock
from .route_plan import RoutePlan
from .router_async import AsyncRouting
from .router_types import add_usage, routed, texts_of, usage_of, with_text
from .routing import STRATEGIES, Deployment
from .structured import (
    StructuredOutputError,
    StructuredSpec,
    feedback_messages,
    parse_reply,
    spec_of,
    to_tool_params,
)
from .types import ChatResponse, Message, Usage, coerce_messages

__all__ = ["Router"]

_ROUTER_OPTIONS = frozenset(("deadline", "team", "api_key_id", "tags", "validation_retry"))
_RESUME = ("raise", "continue")


def _chain(value: Any, name: str) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (list, tuple)) and all(isinstance(a, str) for a in v)
        for k, v in value.items()
    ):
        raise ConfigurationError(f"{name} must map an alias to a list of aliases, got {value!r}")
    return {k: list(v) for k, v in value.items()}


def _shared_budget_store(url: str | None, namespace: str | None) -> BudgetStore | None:
    """Budgets in Redis when shared state is on (``shared_state=`` or
    ``IPFS_ACCELERATE_REDIS_URL``), so every process spends from one total."""
    import os

    url = url or os.environ.get("IPFS_ACCELERATE_REDIS_URL")
    if not url:
        return None
    from .budgets_redis import RedisBudgetStore

    namespace = namespace or os.environ.get("IPFS_ACCELERATE_REDIS_NAMESPACE") or "ipfs_accelerate"
    return RedisBudgetStore(url, namespace=namespace)


class Router(AsyncRouting):
    """Model aliases over deployments; see the module docstring."""

    def __init__(
        self,
        deployments: Sequence[Mapping[str, Any]] = (),
        *,
        strategy: str = "least-busy",
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        context_window_fallbacks: Mapping[str, Sequence[str]] | None = None,
        content_policy_fallbacks: Mapping[str, Sequence[str]] | None = None,
        wait_timeout: float = 30.0,
        cooldown: float = 5.0,
        stream_idle_timeout: float | None = None,
        stream_resume: str = "raise",
        validation_retry: bool = True,
        budgets: Sequence[Budget | Mapping[str, Any]] = (),
        budget_store: BudgetStore | None = None,
        shared_state: str | None = None,
        shared_namespace: str | None = None,
        default_completion_tokens: int = 1024,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigurationError(f"unknown routing strategy {strategy!r}; valid: {STRATEGIES}")
        if stream_resume not in _RESUME:
            raise ConfigurationError(
                f"stream_resume must be one of {_RESUME}, got {stream_resume!r}"
            )
        for name, value in (("wait_timeout", wait_timeout), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
        self.strategy = strategy
        self.fallbacks = _chain(fallbacks, "fallbacks")
        self.context_window_fallbacks = _chain(context_window_fallbacks, "context_window_fallbacks")
        self.content_policy_fallbacks = _chain(content_policy_fallbacks, "content_policy_fallbacks")
        self.wait_timeout = float(wait_timeout)
        self.cooldown = float(cooldown)
        self.stream_idle_timeout = stream_idle_timeout
        self.stream_resume = stream_resume
        self.validation_retry = validation_retry
        self.budgets = [b if isinstance(b, Budget) else Budget.from_dict(b) for b in budgets]
        if budget_store is None and self.budgets:
            budget_store = _shared_budget_store(shared_state, shared_namespace)
        self.budget_store: BudgetStore = budget_store or MemoryBudgetStore()
        self.default_completion_tokens = default_completion_tokens
        self.clock = clock
        self._lock = threading.Lock()
        self._tick = 0
        self._ids = itertools.count(1)
        self._aliases: dict[str, list[Deployment]] = {}
        self._chains: dict[str, list[str]] = {}
        self._owned: list[Backend] = []
        for entry in deployments:
            self.add_deployment(**dict(entry))

    # -- configuration -----------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> Router:
        """A router from a mapping: ``{"deployments": [...], "router": {...}, "budgets": [...]}``
        (see :mod:`.router_config`)."""
        from .router_config import router_from_config

        return router_from_config(cls, config, overrides)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> Router:
        """A router from a JSON, TOML or (with PyYAML installed) YAML file."""
        from .router_config import load_file, router_from_config

        return router_from_config(cls, load_file(path), overrides)

    def add_deployment(
        self,
        alias: str,
        backend: str | Backend,
        model: str,
        *,
        deployment_id: str | None = None,
        endpoint_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        weight: float = 1.0,
        rpm: int | None = None,
        tpm: int | None = None,
        structured_output: str = "native",
        **backend_options: Any,
    ) -> str:
        """Add a deployment of ``model`` on ``backend`` (a backend name, built here with
        ``backend_options`` such as ``api_key=``, ``base_url=``, ``max_retries=``; or a
        :class:`Backend` you built) under ``alias``; returns its id."""
        if not isinstance(alias, str) or not alias:
            raise ConfigurationError("a deployment needs a non-empty alias")
        if isinstance(backend, str):
            from .core import get_backend

            backend_options.setdefault("clock", self.clock)
            backend_options.setdefault("max_retries", 0)
            built = get_backend(backend, **backend_options)
            self._owned.append(built)
            backend = built
        elif backend_options:
            raise ConfigurationError(
                f"backend options {sorted(backend_options)} apply only to a backend built by name"
            )
        with self._lock:
            dep_id = deployment_id or f"{alias}-{next(self._ids)}"
            if any(d.id == dep_id for deps in self._aliases.values() for d in deps):
                raise ConfigurationError(f"deployment {dep_id!r} already exists")
            dep = Deployment(
                dep_id,
                alias,
                backend,
                model,
                endpoint_id=endpoint_id,
                params=params,
                weight=weight,
                rpm=rpm,
                tpm=tpm,
                structured_output=structured_output,
            )
            self._aliases.setdefault(alias, []).append(dep)
            self._rebuild()
        return dep_id

    def _rebuild(self) -> None:
        self._chains = {
            alias: [alias, *[a for a in self.fallbacks.get(alias, ()) if a != alias]]
            for alias in self._aliases
        }

    def deployments(self, alias: str | None = None) -> list[Deployment]:
        """The deployments (of one alias)."""
        with self._lock:
            if alias is not None:
                return list(self._aliases.get(alias, ()))
            return [d for deps in self._aliases.values() for d in deps]

    def get_deployment_stats(self) -> dict[str, dict[str, Any]]:
        """Per deployment: alias, backend, model, requests, successes, failures, in flight,
        latency average and seconds until it is available again."""
        now = self.clock.monotonic()
        with self._lock:
            return {
                d.id: {
                    "alias": d.alias,
                    "backend": d.backend.name,
                    "model": d.model,
                    **d.stats,
                    "in_flight": d.in_flight,
                    "latency": d.latency,
                    "available_in": max(d.available_at(now) - now, 0.0),
                }
                for deps in self._aliases.values()
                for d in deps
            }

    def budget_spent(self, budget_name: str, value: str) -> tuple[float, int]:
        """Cost and tokens counted under a budget for one user/team/key/tag value."""
        for budget in self.budgets:
            if budget.name == budget_name:
                return self.budget_store.spent(budget, value, self.clock.time())
        raise InvalidArgumentError(f"no budget named {budget_name!r}")

    def cost(self, dep: Deployment, prompt_tokens: int, completion_tokens: int) -> float:
        """List-price cost of tokens on a deployment (0 when the price is unknown)."""
        if dep.backend.spec.free or not dep.model:
            return 0.0
        cost = dep.backend.usage.pricing.cost(
            dep.backend.name, dep.model, prompt_tokens, completion_tokens
        )
        return cost or 0.0

    def close(self) -> None:
        """Close the backends the router built."""
        for backend in self._owned:
            backend.close()

    async def aclose(self) -> None:
        """Close the running loop's connections of the backends the router built."""
        for backend in self._owned:
            await backend.aclose()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        aliases = {a: len(d) for a, d in self._aliases.items()}
        return f"<Router {self.strategy} aliases={aliases}>"

    # -- one call's plan ---------------------------------------------------------------------
    def _plan(self, alias: Any, params: dict[str, Any]) -> tuple[RoutePlan, bool]:
        if not isinstance(alias, str) or alias not in self._chains:
            known = ", ".join(sorted(self._chains)) or "none"
            raise InvalidArgumentError(f"model {alias!r} is not a router alias; aliases: {known}")
        retry = self.validation_retry
        deadline = None
        values: dict[str, list[str]] | None = None
        if not _ROUTER_OPTIONS.isdisjoint(params) or (self.budgets and "user" in params):
            deadline = params.pop("deadline", None)
            if deadline is not None and (
                isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or deadline < 0
            ):
                raise InvalidArgumentError(f"deadline must be seconds >= 0, got {deadline!r}")
            retry = bool(params.pop("validation_retry", retry))
            values = {}
            for scope, option in (("user", "user"), ("team", "team"), ("api_key", "api_key_id")):
                value = params.get(option) if option == "user" else params.pop(option, None)
                if value is not None:
                    values[scope] = [str(value)]
            tags = params.pop("tags", None)
            if tags is not None:
                if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
                    raise InvalidArgumentError("tags must be a list of strings")
                values["tag"] = list(tags)
        return RoutePlan(self, alias, deadline, values), retry

    def _args(self, dep: Deployment, params: dict[str, Any]) -> dict[str, Any]:
        args = {**dep.params, **params} if dep.params else dict(params)
        if dep.endpoint_id is not None:
            args["endpoint_id"] = dep.endpoint_id
        return args

    def _messages(self, messages: Any, system: str | None) -> list[Message]:
        msgs = coerce_messages(messages)
        if system is not None:
            msgs.insert(0, Message("system", system))
        return msgs

    # -- sync calls --------------------------------------------------------------------------
    def chat(self, *, model: str, messages: Any, system: str | None = None, **params: Any) -> Any:
        """A chat completion on the alias ``model``; a :class:`RoutedChatResponse`."""
        plan, retry = self._plan(model, params)
        spec = spec_of(params.get("response_format")) if "response_format" in params else None
        msgs: Any = messages
        if spec is not None or (self.budgets and plan.budget_values):
            msgs, system = self._messages(messages, system), None
        while True:
            dep, wait = plan.next()
            if dep is None:
                self.clock.sleep(wait)
                continue
            plan.reserve_budget(dep, msgs if isinstance(msgs, list) else None, params)
            try:
                if spec is None:
                    reply = dep.backend.chat(
                        messages=msgs, model=dep.model, system=system, **self._args(dep, params)
                    )
                    parsed, spent = None, None
                else:
                    reply, parsed, spent = self._structured(plan, dep, msgs, params, spec, retry)
            except BackendError as err:
                plan.failed(dep, err, getattr(err, "usage", None))
                continue
            except BaseException:
                plan.release(dep)
                raise
            if reply.finish_reason == "content_filter" and plan.filtered(dep, spent or reply.usage):
                continue
            plan.succeeded(dep, reply.usage, spent=spent)
            return routed(reply, tuple(plan.attempts), dep.id, parsed=parsed)

    def _structured(
        self,
        plan: RoutePlan,
        dep: Deployment,
        msgs: list[Message],
        params: dict[str, Any],
        spec: StructuredSpec,
        retry: bool,
    ) -> tuple[ChatResponse, Any, Usage | None]:
        mode = dep.structured_output
        args = self._args(dep, to_tool_params(params, spec) if mode == "tools" else params)
        reply = dep.backend.chat(messages=msgs, model=dep.model, **args)
        text, value, errors = parse_reply(reply, spec, mode)
        usage = reply.usage
        if errors and retry:
            plan.note_invalid(dep, usage)
            again = feedback_messages(msgs, text, errors)
            reply = dep.backend.chat(messages=again, model=dep.model, **args)
            usage = add_usage(usage, reply.usage)
            text, value, errors = parse_reply(reply, spec, mode)
        if errors:
            raise StructuredOutputError(
                f"the reply does not match the schema {spec.name!r}: {'; '.join(errors[:5])}",
                errors=errors,
                text=text,
                provider=dep.backend.name,
                usage=usage,
            )
        return with_text(reply, text), value, usage

    def embed(self, *, model: str, input: str | list[str], **params: Any) -> Any:
        """Embeddings on the alias ``model``; a :class:`RoutedEmbeddingResponse`. Keywords are
        the backend's (``output="numpy"`` for one float32 array, ``encoding_format``...)."""
        return self._simple("embed", model, {"input": input}, params)

    def generate(self, *, model: str, prompt: str, **params: Any) -> Any:
        """Generation from a prompt on the alias ``model``."""
        return self._simple("generate", model, {"prompt": prompt}, params)

    def _simple(
        self, kind: str, alias: str, payload: dict[str, Any], params: dict[str, Any]
    ) -> Any:
        plan, _ = self._plan(alias, params)
        texts = texts_of(payload) if plan.budget_values else None
        while True:
            dep, wait = plan.next()
            if dep is None:
                self.clock.sleep(wait)
                continue
            plan.reserve_budget(dep, texts, params, 0 if kind.endswith("embed") else None)
            try:
                method = getattr(dep.backend, kind)
                result = method(model=dep.model, **payload, **self._args(dep, params))
            except BackendError as err:
                plan.failed(dep, err, getattr(err, "usage", None))
                continue
            except BaseException:
                plan.release(dep)
                raise
            plan.succeeded(dep, usage_of(result))
            return routed(result, tuple(plan.attempts), dep.id)

    def stream(self, *, model: str, messages: Any, system: str | None = None, **params: Any) -> Any:
        """A streamed chat on the alias ``model`` with fallback (a :class:`RouterStream`);
        see :mod:`.router_stream`."""
        from .router_stream import RouterStream, StreamInfo, stream_sync

        plan, _ = self._plan(model, params)
        msgs = self._messages(messages, system)
        info = StreamInfo()
        return RouterStream(stream_sync(self, plan, msgs, params, info), info, plan)
