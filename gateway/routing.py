"""Which target serves a call: route resolution and the per-call plan. No I/O here.

:class:`Router` turns the ``model`` argument (a route name or ``provider/model``) into a
:class:`ResolvedRoute`. :class:`CallPlan` is the state of one call: it hands out the next
target, records each attempt, and decides after a failure whether to move on or to raise.
The sync and async clients drive the same plan with their own I/O loops.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from gateway._attempts import Attempt
from gateway.config import (
    DEFAULT_FALLBACK_ON,
    GatewayConfig,
    RetryConfig,
    RouteConfig,
    TargetConfig,
    parse_model_id,
)
from gateway.errors import AllProvidersFailed, ConfigError, ProviderError
from providers.base import ChatRequest

__all__ = ["CallPlan", "ResolvedRoute", "ResolvedTarget", "Router", "request_for_target"]

logger = logging.getLogger("gateway")


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """One target of a route: the provider's configured name, the model, its overrides."""

    provider: str
    model: str
    config: TargetConfig

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class ResolvedRoute:
    name: str
    config: RouteConfig
    targets: tuple[ResolvedTarget, ...]


class Router:
    """Resolves the ``model`` argument of a call against the config."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._cache: dict[str, ResolvedRoute] = {}
        for name, route in config.routes.items():
            self._cache[name] = _resolve(name, route)

    def resolve(self, model: str) -> ResolvedRoute:
        """The route named ``model``, or a one-target route for ``provider/model``."""
        route = self._cache.get(model)
        if route is not None:
            return route
        if not isinstance(model, str) or not model:
            raise ConfigError(
                f"model must be a route name or provider/model, got {model!r}",
                file=self._config.source,
                key="model",
            )
        try:
            provider, _ = parse_model_id(model)
        except ValueError:
            routes = ", ".join(sorted(self._config.routes)) or "none"
            raise ConfigError(
                f"'{model}' is neither a route (routes: {routes}) nor provider/model",
                file=self._config.source,
                key="routes",
                fix=f"add a route named '{model}' under routes:, or call with provider/model",
            ) from None
        if provider not in self._config.providers:
            names = ", ".join(sorted(self._config.providers)) or "none"
            raise ConfigError(
                f"'{model}' names provider '{provider}', which is not configured "
                f"(configured: {names})",
                file=self._config.source,
                key="providers",
                fix=f"add '{provider}:' under providers: with its api_key",
            )
        direct = RouteConfig(targets=[TargetConfig(model=model)], retry=RetryConfig(attempts=1))
        route = _resolve(model, direct)
        self._cache[model] = route
        return route


def _resolve(name: str, route: RouteConfig) -> ResolvedRoute:
    targets = tuple(ResolvedTarget(t.provider, t.model_name, t) for t in route.targets)
    return ResolvedRoute(name, route, targets)


def request_for_target(request: ChatRequest, target: TargetConfig) -> ChatRequest:
    """The request as this target gets it: the target's overrides applied.

    ``max_tokens`` on a target caps the caller's; ``temperature`` and ``top_p`` replace the
    caller's; ``params`` go into the body, under the caller's own ``extra_body``.
    """
    changes: dict[str, Any] = {}
    if target.max_tokens is not None and (
        request.max_tokens is None or target.max_tokens < request.max_tokens
    ):
        changes["max_tokens"] = target.max_tokens
    if target.temperature is not None:
        changes["temperature"] = target.temperature
    if target.top_p is not None:
        changes["top_p"] = target.top_p
    if target.params:
        changes["extra_body"] = {**target.params, **(request.extra_body or {})}
    if target.timeout is not None and (request.timeout is None or target.timeout < request.timeout):
        changes["timeout"] = target.timeout
    return dataclasses.replace(request, **changes) if changes else request


class CallPlan:
    """The decisions of one call, free of I/O: next target, and what a failure means."""

    def __init__(self, route: ResolvedRoute) -> None:
        self.route = route
        self.attempts: list[Attempt] = []
        self._queue = list(route.targets)
        self._fallback_on = frozenset(route.config.fallback_on or DEFAULT_FALLBACK_ON)

    def next_target(self) -> ResolvedTarget | None:
        """The target to try next, or None when every target has been tried."""
        return self._queue.pop(0) if self._queue else None

    def succeeded(self, target: ResolvedTarget, seconds: float) -> None:
        self.attempts.append(Attempt(target.provider, target.model, "ok", seconds))
        logger.debug("attempt ok: %s in %.3fs", target.label, seconds)

    def failed(self, target: ResolvedTarget, error: ProviderError, seconds: float) -> None:
        """Record a failure; raise if the call must stop here, return to try the next target."""
        self.attempts.append(
            Attempt(
                target.provider,
                target.model,
                "error",
                seconds,
                error=error,
                status_code=error.status_code,
            )
        )
        logger.info("attempt failed: %s: %s", target.label, error.message)
        if error.kind not in self._fallback_on:
            raise error
        if not self._queue:
            raise AllProvidersFailed(self.route.name, self.attempts)
        logger.info("falling back from %s to %s", target.label, self._queue[0].label)
