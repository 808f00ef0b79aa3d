"""The async half of :class:`~.router.Router`: ``achat``, ``astream``, ``aembed``,
``agenerate``. The same plan as the sync calls (:mod:`.route_plan`); waits use the router's
clock's ``asleep``, so nothing blocks the event loop."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .errors import BackendError
from .router_types import add_usage, routed, texts_of, usage_of, with_text
from .structured import (
    StructuredOutputError,
    StructuredSpec,
    feedback_messages,
    parse_reply,
    spec_of,
    to_tool_params,
)
from .types import ChatResponse, Message, Usage

if TYPE_CHECKING:
    from .budgets import Budget
    from .resilience.clock import Clock
    from .route_plan import RoutePlan
    from .routing import Deployment

__all__ = ["AsyncRouting"]


class AsyncRouting:
    """Async calls of the router (a mixin of :class:`~.router.Router`)."""

    clock: Clock
    budgets: list[Budget]
    _lock: threading.Lock

    def _plan(self, alias: Any, params: dict[str, Any]) -> tuple[RoutePlan, bool]:
        raise NotImplementedError

    def _args(self, dep: Deployment, params: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _messages(self, messages: Any, system: str | None) -> list[Message]:
        raise NotImplementedError

    async def achat(
        self, *, model: str, messages: Any, system: str | None = None, **params: Any
    ) -> Any:
        """Async :meth:`chat`."""
        plan, retry = self._plan(model, params)
        spec = spec_of(params.get("response_format")) if "response_format" in params else None
        msgs: Any = messages
        if spec is not None or (self.budgets and plan.budget_values):
            msgs, system = self._messages(messages, system), None
        while True:
            dep, wait = plan.next()
            if dep is None:
                await self.clock.asleep(wait)
                continue
            plan.reserve_budget(dep, msgs if isinstance(msgs, list) else None, params)
            try:
                if spec is None:
                    reply = await dep.backend.achat(
                        messages=msgs, model=dep.model, system=system, **self._args(dep, params)
                    )
                    parsed, spent = None, None
                else:
                    reply, parsed, spent = await self._astructured(
                        plan, dep, msgs, params, spec, retry
                    )
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

    async def _astructured(
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
        reply = await dep.backend.achat(messages=msgs, model=dep.model, **args)
        text, value, errors = parse_reply(reply, spec, mode)
        usage = reply.usage
        if errors and retry:
            plan.note_invalid(dep, usage)
            again = feedback_messages(msgs, text, errors)
            reply = await dep.backend.achat(messages=again, model=dep.model, **args)
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

    async def aembed(self, *, model: str, input: str | list[str], **params: Any) -> Any:
        """Async :meth:`embed`."""
        return await self._asimple("aembed", model, {"input": input}, params)

    async def agenerate(self, *, model: str, prompt: str, **params: Any) -> Any:
        """Async :meth:`generate`."""
        return await self._asimple("agenerate", model, {"prompt": prompt}, params)

    async def _asimple(
        self, kind: str, alias: str, payload: dict[str, Any], params: dict[str, Any]
    ) -> Any:
        plan, _ = self._plan(alias, params)
        texts = texts_of(payload) if plan.budget_values else None
        while True:
            dep, wait = plan.next()
            if dep is None:
                await self.clock.asleep(wait)
                continue
            plan.reserve_budget(dep, texts, params, 0 if kind.endswith("embed") else None)
            try:
                method = getattr(dep.backend, kind)
                result = await method(model=dep.model, **payload, **self._args(dep, params))
            except BackendError as err:
                plan.failed(dep, err, getattr(err, "usage", None))
                continue
            except BaseException:
                plan.release(dep)
                raise
            plan.succeeded(dep, usage_of(result))
            return routed(result, tuple(plan.attempts), dep.id)

    def astream(
        self, *, model: str, messages: Any, system: str | None = None, **params: Any
    ) -> Any:
        """Async :meth:`stream` (an :class:`AsyncRouterStream`)."""
        from .router_stream import AsyncRouterStream, StreamInfo, stream_async

        plan, _ = self._plan(model, params)
        msgs = self._messages(messages, system)
        info = StreamInfo()
        return AsyncRouterStream(stream_async(plan.router, plan, msgs, params, info), info, plan)
