"""Prometheus metrics, one registry per application (tests run several apps in one process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from handlers.intake import IntakeResult


class Metrics:
    """Every metric the process exports; ``render()`` is what ``GET /metrics`` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "handoff_requests_total", "Accepted requests by platform and route", ["platform", "route"], registry=r
        )
        self.duplicates = Counter(
            "handoff_duplicate_events_total", "Platform retries absorbed by event-id dedupe", ["platform"], registry=r
        )
        self.redactions = Counter(
            "handoff_redactions_total", "Requests that had a secret removed", ["platform"], registry=r
        )
        self.rejected = Counter(
            "handoff_http_rejected_total", "Inbound requests refused, by status", ["platform", "status"], registry=r
        )
        self.intake_latency = Histogram(
            "handoff_intake_seconds", "Time from request received to acknowledgement", ["platform"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.deliveries = Counter(
            "handoff_deliveries_total", "Outbox delivery attempts by kind and outcome (delivered, retry, dead)", ["kind", "outcome"], registry=r
        )
        self.delivery_latency = Histogram(
            "handoff_delivery_seconds", "Duration of one delivery attempt", ["kind"], registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.outbox_claimed = Counter("handoff_outbox_claimed_total", "Outbox rows claimed by workers", registry=r)
        self.pages = Counter(
            "handoff_pages_total",
            "Page-route reports by outcome: paged (a new page), joined (an open incident: storm control), "
            "held (page cap), unstaffed (nobody on call: channel and admins told)", ["outcome"], registry=r,
        )
        self.classify_latency = Histogram(
            "handoff_classify_seconds", "Redaction and classification of one request", registry=r,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
        )
        self.outbox_pending = Gauge("handoff_outbox_pending", "Outbox rows waiting for delivery", registry=r)
        self.outbox_scheduled = Gauge(
            "handoff_outbox_scheduled",
            "Pending outbox rows written to go out later and never attempted (escalation steps, SLA checks, "
            "after-hours notices): not a backlog", registry=r)
        self.outbox_retrying = Gauge(
            "handoff_outbox_retrying", "Pending outbox rows that failed and wait for their next attempt", registry=r)
        self.outbox_oldest = Gauge(
            "handoff_outbox_oldest_pending_seconds",
            "How long the longest-waiting undelivered outbox row has waited since it first became due, retries "
            "included (delivery lag; rows scheduled for later excluded until due)", registry=r
        )
        self.outbox_dead = Gauge("handoff_outbox_dead", "Outbox rows dead-lettered", registry=r)

    def observe_intake(self, platform: str, result: IntakeResult) -> None:
        if result.duplicate:
            self.duplicates.labels(platform=platform).inc()
            return
        if result.decision is not None:
            self.requests.labels(platform=platform, route=result.decision.route).inc()
            self.classify_latency.observe(result.classify_seconds)
            if result.decision.route == "page":
                self.pages.labels(outcome=result.page or "paged").inc()
        if result.redacted:
            self.redactions.labels(platform=platform).inc()

    # OutboxMetrics (handlers.delivery) ------------------------------------------------------------

    def claimed(self, count: int) -> None:
        self.outbox_claimed.inc(count)

    def attempt(self, *, kind: str, outcome: str, seconds: float) -> None:
        self.deliveries.labels(kind=kind, outcome=outcome).inc()
        self.delivery_latency.labels(kind=kind).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
