"""Prometheus metrics, one registry per app (no module globals, so tests stay independent)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send


class AppMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "copilot_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "copilot_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.chat_answers = Counter(
            "copilot_chat_answers_total", "Chat answers by mode", ["mode"], registry=self.registry
        )
        self.citations_dropped = Counter(
            "copilot_citations_dropped_total", "Citations dropped by the validator", registry=self.registry
        )
        self.llm_answers = Counter(
            "copilot_llm_answers_total",
            "LLM answers by path (chat, suggest, extract) and outcome (accepted, repaired, fallback)",
            ["path", "outcome"],
            registry=self.registry,
        )
        self.llm_fallbacks = Counter(
            "copilot_llm_fallbacks_total",
            "LLM answers replaced by the offline path, by path and reason "
            "(timeout, unavailable, refused, malformed, ungrounded, unsafe, empty)",
            ["path", "reason"],
            registry=self.registry,
        )
        self.llm_seconds = Histogram(
            "copilot_llm_call_seconds",
            "Time of each call to the LLM endpoint, by path",
            ["path"],
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=self.registry,
        )

    def llm_outcome(self, path: str, outcome: str) -> None:
        if outcome in ("accepted", "repaired"):
            self.llm_answers.labels(path, outcome).inc()
        else:
            self.llm_answers.labels(path, "fallback").inc()
            self.llm_fallbacks.labels(path, outcome).inc()

    def llm_call(self, path: str, seconds: float) -> None:
        self.llm_seconds.labels(path).observe(seconds)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def _send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"  # templates, not raw paths: bounded labels
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # bounded label values
            self.metrics.requests.labels(method, path, str(status["code"])).inc()
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - start)
