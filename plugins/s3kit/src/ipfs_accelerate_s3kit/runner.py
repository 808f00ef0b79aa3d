"""Every S3 operation as a :class:`~ipfs_accelerate_py.calls.CallableCall` run through the
backend's pipeline (gate, breaker, leased credential, retries, budget, usage accounting),
on the endpoint named by ``endpoint_id``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py.calls import CallableCall, Credential
from ipfs_accelerate_py.errors import ConfigurationError

from .client import classifier, client_for
from .config import NAME, Target, configured_credential, target_of

if TYPE_CHECKING:
    from ipfs_accelerate_py.backend import Backend
    from ipfs_accelerate_py.endpoint import Endpoint

__all__ = ["Runner"]

ClientFn = Callable[[Any], Any]


class Runner:
    """Builds and runs the calls of one backend's S3 operations."""

    def __init__(self, backend: Backend) -> None:
        if backend.name != NAME:
            raise ConfigurationError(f"S3 operations need the {NAME} backend, not {backend.name}")
        self.backend = backend
        ep = backend.default_endpoint
        if not len(ep.keys):  # metadata / S3_* credentials join the key pool, to be leased
            credential = configured_credential(ep.settings)
            if credential is not None:
                backend.add_api_key("default", credential)

    def _endpoint(self, endpoint_id: str | None) -> Endpoint:
        eid = endpoint_id or "default"
        ep = self.backend.endpoints.get(eid)
        if ep is None:
            raise ConfigurationError(
                f"no endpoint {eid!r} on {NAME}; endpoints: {list(self.backend.endpoints)}",
                provider=NAME,
            )
        return ep

    def target(self, endpoint_id: str | None) -> Target:
        """Where the endpoint ``endpoint_id`` (the default one for ``None``) sends calls."""
        return target_of(self._endpoint(endpoint_id).settings)

    def call(
        self,
        endpoint_id: str | None,
        what: str,
        fn: ClientFn,
        next_page: Callable[[Any], CallableCall | None] | None = None,
    ) -> CallableCall:
        """A call running ``fn(client)`` with the client of the leased credential (for an
        endpoint without keys, the one configured in its metadata or ``S3_*`` variables,
        else boto3's default chain)."""
        ep = self._endpoint(endpoint_id)
        target = target_of(ep.settings)
        fallback = None if len(ep.keys) else configured_credential(ep.settings)

        def attempt(credential: Credential | None) -> Any:
            return fn(client_for(credential or fallback, target))

        return CallableCall(attempt, classify=classifier(target, what), next_page=next_page)

    def run(self, endpoint_id: str | None, what: str, fn: ClientFn, **options: Any) -> Any:
        """Run ``fn(client)`` through the pipeline, from this thread."""
        call = self.call(endpoint_id, what, fn)
        return self.backend.request(call, endpoint_id=endpoint_id, **options)

    async def arun(self, endpoint_id: str | None, what: str, fn: ClientFn, **options: Any) -> Any:
        """Run ``fn(client)`` through the pipeline from a coroutine (in a worker thread)."""
        call = self.call(endpoint_id, what, fn)
        return await self.backend.arequest(call, endpoint_id=endpoint_id, **options)

    def run_call(self, endpoint_id: str | None, call: CallableCall, **options: Any) -> Any:
        """Run a prepared call (a paginated listing) through the pipeline."""
        return self.backend.request(call, endpoint_id=endpoint_id, **options)

    async def arun_call(self, endpoint_id: str | None, call: CallableCall, **options: Any) -> Any:
        """Async :meth:`run_call`."""
        return await self.backend.arequest(call, endpoint_id=endpoint_id, **options)
