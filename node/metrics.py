"""A node's own Prometheus metrics, beside its hop's on the same ``/metrics`` registry.

The hop counts envelopes, copies and queues (gateway.metrics). The node adds what its
duty officers and their on-call team care about. Escalations firing mean an action tier
did not accept an alert in time: alert on that first. Acknowledgements go both ways,
and auth denials show someone guessing passwords or using a revoked token. Counters are
driven by the node's event stream (the same events the console receives), so the two
cannot disagree; auth denials, which are no events, are counted by the auth middleware.
Escalation steps are a gauge by state, read from the database by the scheduler after
it decides steps and at least every ``ESCALATION_COUNT_EVERY_MS`` (a scrape interval), so
they count what the ack and cancel paths decide in SQL too, and survive a restart: alert
on ``increase(heliograph_node_escalations{state="fired"}[10m]) > 0``.

All labels come from fixed vocabularies (CAP kinds, precedences, dispositions, outcomes,
error codes), never from member ids, usernames or message ids, so cardinality stays small.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from node.events import EventBus

ESCALATION_COUNT_EVERY_MS = 15_000


class NodeMetrics:
    """Counters of officer-facing events; register once per node, on its hop's registry."""

    def __init__(self, registry: CollectorRegistry, events: EventBus) -> None:
        self.sent = Counter("heliograph_node_alerts_sent", "Alerts, updates and cancels committed and queued", ["kind", "priority"], registry=registry)
        self.received = Counter("heliograph_node_inbox_received", "Messages opened into the inbox", ["kind", "priority"], registry=registry)
        self.acks = Counter("heliograph_node_acks", "Acknowledgements sent (out) and received (in)", ["direction", "disposition"], registry=registry)
        self.escalations = Gauge(
            "heliograph_node_escalations", "Escalation steps by state (from the database: survives restarts)", ["state"], registry=registry
        )
        self.receipts = Counter("heliograph_node_receipts_received", "Receipts arriving for this node's messages", registry=registry)
        self.auth_denied = Counter("heliograph_node_auth_denied", "Officer requests refused (401, 403, login 429), by code", ["code"], registry=registry)
        self._escalations_at: int | None = None
        subscribers = Gauge("heliograph_node_event_streams", "Open /v1/events streams (consoles and scripts)", registry=registry)
        subscribers.set_function(lambda: events.subscribers)
        events.observers.append(self.observe)

    def observe(self, kind: str, data: dict[str, Any]) -> None:
        """Count one published event (EventBus observer)."""
        if kind == "sent":
            self.sent.labels(kind=data["kind"], priority=data["priority"]).inc()
        elif kind == "inbox":
            self.received.labels(kind=data["kind"], priority=data["priority"]).inc()
        elif kind == "ack":
            self.acks.labels(direction=data["direction"], disposition=data["disposition"]).inc()
        elif kind == "receipt":
            self.receipts.inc()

    def escalations_stale(self, now_ms: int) -> bool:
        """Whether the escalation gauge is older than ``ESCALATION_COUNT_EVERY_MS`` (or was never set)."""
        return self._escalations_at is None or now_ms - self._escalations_at >= ESCALATION_COUNT_EVERY_MS

    def set_escalations(self, counts: dict[str, int], now_ms: int) -> None:
        """Publish the escalation steps by state, as counted at ``now_ms``."""
        for state, count in counts.items():
            self.escalations.labels(state=state).set(count)
        self._escalations_at = now_ms
