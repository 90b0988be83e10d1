"""Which target serves a call: route resolution and the per-call plan. No I/O here.

:class:`Router` turns the ``model`` argument (a route name or ``provider/model``) into a
:class:`ResolvedRoute`. :class:`CallPlan` is the state of one call: it says what to do next
(:class:`Try` a target, or :class:`Wait` before a retry), records each attempt, and decides
after a failure whether to retry, fall back or raise. The sync and async clients drive the
same plan with their own short I/O loops; the clock and the random source are injected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway._attempts import Attempt
from gateway._clock import Clock
from gateway.config import (
    DEFAULT_FALLBACK_ON,
    GatewayConfig,
    RetryConfig,
    RouteConfig,
    TargetConfig,
    parse_model_id,
)
from gateway.errors import AllProvidersFailed, ConfigError, ContextTooLong, ProviderError
from gateway.events import LEVELS, EventHook, EventKind, GatewayEvent, emit, logger
from gateway.health import HealthRegistry, TargetHealth
from gateway.providers.base import ChatRequest
from gateway.retry import RetryPolicy
from gateway.strategies import CostEstimate, order_targets

__all__ = [
    "CallPlan",
    "ResolvedRoute",
    "ResolvedTarget",
    "Router",
    "Try",
    "Wait",
    "request_for_target",
]

#: Error kinds that say the target is unhealthy (they count towards its circuit breaker).
_UNHEALTHY = frozenset({"rate_limited", "server_error", "overloaded", "timeout", "connection"})


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """One target of a route: the provider's configured name, the model, its overrides."""

    provider: str
    model: str
    config: TargetConfig
    #: Why the target cannot be used (its provider's ``${VAR}`` is unset), or None. It is
    #: skipped like an unavailable target; the error is raised when no target can run.
    unusable: ConfigError | None = field(default=None, compare=False)
    #: ``provider/model``: the key of the target's health, events and chaos.
    label: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.provider}/{self.model}")  # once, not per call


@dataclass(frozen=True, slots=True)
class ResolvedRoute:
    name: str
    config: RouteConfig
    targets: tuple[ResolvedTarget, ...]
    retry: RetryPolicy
    #: The error kinds that move a call on to the next target: the route's ``fallback_on``,
    #: plus an argument the target has no equivalent for (another target may take it).
    fallback_on: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        fallback_on = frozenset(self.config.fallback_on or DEFAULT_FALLBACK_ON)
        object.__setattr__(self, "fallback_on", fallback_on | {"unsupported_argument"})


#: Most one-target routes of direct ``provider/model`` calls a router keeps resolved.
MAX_DIRECT_ROUTES = 1024


class Router:
    """Resolves the ``model`` argument of a call against the config."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._cache: dict[str, ResolvedRoute] = {}
        #: One-target routes of direct ``provider/model`` calls, most recently used last;
        #: bounded, because a server resolves whatever model name its callers send.
        self._direct: OrderedDict[str, ResolvedRoute] = OrderedDict()
        self._unusable: dict[str, ConfigError | None] = {}
        for name, route in config.routes.items():
            self._cache[name] = self._resolve(name, route)

    def resolve(self, model: str) -> ResolvedRoute:
        """The route named ``model``, or a one-target route for ``provider/model``."""
        route = self._cache.get(model)
        if route is not None:
            return route
        route = self._direct.get(model)
        if route is not None:
            with contextlib.suppress(KeyError):  # another thread just evicted it
                self._direct.move_to_end(model)
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
        route = self._resolve(model, direct)
        self._direct[model] = route
        if len(self._direct) > MAX_DIRECT_ROUTES:
            self._direct.popitem(last=False)
        return route

    def _resolve(self, name: str, route: RouteConfig) -> ResolvedRoute:
        targets = tuple(
            ResolvedTarget(t.provider, t.model_name, t, self._unusable_provider(t.provider))
            for t in route.targets
        )
        return ResolvedRoute(name, route, targets, RetryPolicy.from_config(route.retry))

    def _unusable_provider(self, provider: str) -> ConfigError | None:
        """The error for the provider's first unset ``${VAR}`` (known once loaded), or None."""
        if provider not in self._unusable:
            settings = self._config.providers.get(provider)
            try:
                if settings is not None:
                    settings.check_env()
            except ConfigError as error:
                self._unusable[provider] = error
            else:
                self._unusable[provider] = None
        return self._unusable[provider]


def request_for_target(
    request: ChatRequest, target: TargetConfig, timeout: float | None
) -> ChatRequest:
    """The request as this target gets it: the target's overrides and this try's timeout.

    ``max_tokens`` on a target caps the caller's; ``temperature`` and ``top_p`` replace the
    caller's; ``params`` go into the body, under the caller's own ``extra_body``.
    """
    if timeout == request.timeout and not _has_overrides(target):
        return request
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
    if timeout != request.timeout:
        changes["timeout"] = timeout
    return dataclasses.replace(request, **changes) if changes else request


def _has_overrides(target: TargetConfig) -> bool:
    return (
        target.max_tokens is not None
        or target.temperature is not None
        or target.top_p is not None
        or bool(target.params)
    )


@dataclass(slots=True)  # not frozen: made every call, and a frozen init costs ~3x as much
class Try:
    """Send the call to ``target`` now, allowing it ``timeout`` seconds (None: no limit)."""

    target: ResolvedTarget
    retry: bool
    timeout: float | None


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep this long, then ask the plan again."""

    seconds: float


class CallPlan:
    """The decisions of one call, free of I/O.

    Walk it with ``next_action()`` until a try succeeds; report each try's outcome with
    ``succeeded()`` or ``failed()``. ``failed()`` raises when the call must stop (an error that
    is not a fallback trigger); ``next_action()`` raises :class:`AllProvidersFailed` when no
    target is left or the deadline has passed (see :meth:`AllProvidersFailed.of`: when every
    try failed with one error class that retrying cannot fix, it is also of that class).
    """

    __slots__ = (
        "_breaker_skipped",
        "_clock",
        "_current",
        "_deadline",
        "_fallback_on",
        "_forced_probe",
        "_health",
        "_hook",
        "_next_index",
        "_order",
        "_retry_wait",
        "_rng",
        "_started",
        "_timeout",
        "_tokens",
        "_too_small",
        "_tries",
        "_unusable",
        "_waited",
        "attempts",
        "request_id",
        "route",
    )

    def __init__(
        self,
        route: ResolvedRoute,
        *,
        request_id: str,
        clock: Clock,
        rng: random.Random,
        health: HealthRegistry,
        timeout: float | None = None,
        estimated_tokens: int = 0,
        cost_of: CostEstimate | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        self.route = route
        self.request_id = request_id
        self.attempts: list[Attempt] = []
        self._clock = clock
        self._rng = rng
        self._health = health
        self._hook = on_event
        self._tokens = estimated_tokens
        config = route.config
        self._fallback_on = route.fallback_on
        limit = config.timeout
        if timeout is not None and (limit is None or timeout < limit):
            limit = timeout
        self._timeout = limit
        now = self._started = clock.monotonic()
        self._deadline = None if limit is None else now + limit
        self._order: Sequence[ResolvedTarget]
        if config.strategy == "fallback" or len(route.targets) <= 1:
            self._order = route.targets  # the YAML's order (what order_targets returns)
        else:
            self._order = order_targets(
                config.strategy,
                route.targets,
                rng=rng,
                is_open=lambda t: self._health_of(t).breaker.state(now) == "open",
                latency_of=lambda t: self._health_of(t).latency.value,
                cost_of=cost_of,
                exploration=config.exploration,
            )
        self._next_index = 0
        self._current: ResolvedTarget | None = None
        self._tries = 0
        self._retry_wait: float | None = None
        self._waited = False
        self._breaker_skipped: list[ResolvedTarget] = []
        self._unusable: list[ConfigError] = []
        self._forced_probe = False
        self._too_small: int | None = None  # context window that proved too small

    # -- reading state ------------------------------------------------------------------------

    def _health_of(self, target: ResolvedTarget) -> TargetHealth:
        return self._health.get(target.label, self.route.config.breaker, target.config)

    def _event(self, kind: EventKind, target: ResolvedTarget | None, **detail: Any) -> None:
        if self._hook is None and not logger.isEnabledFor(LEVELS[kind]):
            return  # nobody listens: build no event
        emit(
            self._hook,
            GatewayEvent(
                kind, self.route.name, self.request_id, target.label if target else None, detail
            ),
        )

    def _remaining(self, now: float) -> float | None:
        return None if self._deadline is None else self._deadline - now

    def _try_timeout(self, target: ResolvedTarget, now: float) -> float | None:
        limit = target.config.timeout
        if self._deadline is None:
            return limit
        remaining = self._deadline - now
        return remaining if limit is None or remaining < limit else limit

    def _exhausted(self, reason: str | None = None) -> AllProvidersFailed:
        return AllProvidersFailed.of(self.route.name, self.attempts, reason=reason)

    def _skip(self, target: ResolvedTarget, reason: str) -> None:
        self.attempts.append(Attempt(target.provider, target.model, "skipped", reason=reason))
        self._event("skipped", target, reason=reason)

    @property
    def retry_wait(self) -> float | None:
        """Seconds the plan waits before retrying the target whose failure it just recorded
        (None: no retry of it comes next). Read by telemetry for the attempt's span."""
        return self._retry_wait

    # -- what to do next ----------------------------------------------------------------------

    def next_action(self) -> Try | Wait:
        now = self._clock.monotonic()
        if self._deadline is not None and self._deadline - now <= 0:
            raise self._exhausted(f"the call's deadline of {self._timeout:g}s passed")
        current = self._current
        if current is not None and self._retry_wait is not None:
            if self._retry_wait > 0 and not self._waited:
                self._waited = True
                return Wait(self._retry_wait)
            self._retry_wait = None
            self._waited = False
            return Try(current, True, self._try_timeout(current, now))
        while self._next_index < len(self._order):
            target = self._order[self._next_index]
            self._next_index += 1
            if target.unusable is not None:
                self._unusable.append(target.unusable)
                self._skip(target, target.unusable.problem)
                continue
            window = target.config.context_window
            if self._too_small is not None and window is not None and window <= self._too_small:
                self._skip(target, f"context window {window} is not larger than {self._too_small}")
                continue
            health = self._health_of(target)
            if not health.breaker.allow(now):
                self._breaker_skipped.append(target)
                self._skip(target, "circuit breaker open")
                continue
            if health.limiter is not None:
                refusal = health.limiter.try_acquire(now, self._tokens)
                if refusal is not None:
                    self._skip(target, refusal)
                    continue
            return self._start(target, now)
        tried = any(a.outcome != "skipped" for a in self.attempts)
        if not tried and self._breaker_skipped and not self._forced_probe:
            # Every breaker was open: probe the one that would reopen first, not fail untried.
            self._forced_probe = True
            target = min(
                self._breaker_skipped,
                key=lambda t: self._health_of(t).breaker.reopens_at() or 0.0,
            )
            self._health_of(target).breaker.force_probe()
            return self._start(target, now)
        if len(self._unusable) == len(self._order):
            raise _none_usable(self.route.name, self._unusable)
        raise self._exhausted()

    def _start(self, target: ResolvedTarget, now: float) -> Try:
        previous = self._current
        self._current = target
        self._tries = 0
        self._retry_wait = None
        if previous is not None:
            self._event("fallback", previous, next=target.label)
        return Try(target, False, self._try_timeout(target, now))

    # -- outcomes ----------------------------------------------------------------------------

    def started(self, action: Try) -> None:
        self._tries += 1
        if self._hook is not None or logger.isEnabledFor(LEVELS["attempt_start"]):
            self._event("attempt_start", action.target, retry=action.retry, timeout=action.timeout)

    def succeeded(self, action: Try, seconds: float) -> None:
        target = action.target
        health = self._health_of(target)
        breaker = health.breaker
        if not breaker.is_clear():
            before = breaker.state(self._clock.monotonic())
            breaker.record_success(self._clock.monotonic())
            if before != "closed":
                self._event("breaker_state", target, state="closed")
        health.latency.observe(seconds)
        self.attempts.append(
            Attempt(target.provider, target.model, "ok", seconds, retry=action.retry)
        )
        if self._hook is not None or logger.isEnabledFor(LEVELS["attempt_end"]):
            self._event("attempt_end", target, outcome="ok", seconds=round(seconds, 4))

    def failed(self, action: Try, error: ProviderError, seconds: float) -> None:
        """Record a failed try. Returns when the call should go on; raises when it must stop."""
        target = action.target
        now = self._clock.monotonic()
        self.attempts.append(
            Attempt(
                target.provider,
                target.model,
                "error",
                seconds,
                error=error,
                status_code=error.status_code,
                retry=action.retry,
            )
        )
        self._event(
            "attempt_end",
            target,
            outcome="error",
            error=type(error).__name__,
            status=error.status_code,
            seconds=round(seconds, 4),
        )
        breaker = self._health_of(target).breaker
        if error.kind in _UNHEALTHY:
            before = breaker.state(now)
            after = breaker.record_failure(now)
            if after != before:
                self._event("breaker_state", target, state=after)
        else:
            breaker.release_probe()
        error.attempts = list(self.attempts)
        delay = self.route.retry.delay_before_retry(
            error, self._tries, self._rng, self._remaining(now)
        )
        if delay is not None and error.kind in _UNHEALTHY:
            self._retry_wait = delay
            self._waited = False
            self._event("retry", target, wait_s=round(delay, 3), error=type(error).__name__)
            return
        if error.kind not in self._fallback_on:
            raise error
        if isinstance(error, ContextTooLong):
            window = target.config.context_window
            if window is not None:
                self._too_small = max(window, self._too_small or 0)


def _none_usable(route: str, errors: Sequence[ConfigError]) -> ConfigError:
    """Every target of ``route`` lacks a ``${VAR}``: one error naming each variable."""
    unique = list({(e.problem, e.key): e for e in errors}.values())
    if len(unique) == 1:
        e = unique[0]  # a fresh error: raising one instance per call would grow its traceback
        return ConfigError(e.problem, file=e.file, line=e.line, key=e.key, fix=e.fix)
    where = [
        f"{e.problem} (line {e.line}, key '{e.key}')" if e.line else f"{e.problem} (key '{e.key}')"
        for e in unique
    ]
    return ConfigError(
        f"no target of route '{route}' can run: " + "; ".join(where),
        file=unique[0].file,
        key="providers",
        fix="export each variable before starting, or write the values in the file",
    )
