"""Prometheus metrics of one hop, on a registry of its own (several hops can share a process in tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from protocol.roster import Roster


class HopMetrics:
    """Counters for every outcome, queue depth per destination and lane, hop latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter("heliograph_envelopes_accepted", "Envelopes accepted and durably stored", registry=self.registry)
        self.rejected = Counter("heliograph_envelopes_rejected", "Envelopes rejected, by error code", ["code"], registry=self.registry)
        self.requests_refused = Counter(
            "heliograph_requests_refused", "Peer requests refused before any item was looked at (auth, replay, skew, size), by code", ["code"],
            registry=self.registry,
        )
        self.duplicates = Counter("heliograph_envelopes_duplicate", "Retried envelopes answered with the original receipt", registry=self.registry)
        self.relayed = Counter("heliograph_envelopes_relayed", "Copies handed to a next-hop gateway", registry=self.registry)
        self.delivered = Counter("heliograph_envelopes_delivered", "Copies handed to the recipient node", registry=self.registry)
        self.expired = Counter("heliograph_envelopes_expired", "Copies that expired while queued", registry=self.registry)
        self.send_failures = Counter("heliograph_send_failures", "Failed sends to a destination", ["destination"], registry=self.registry)
        self.receipts_in = Counter("heliograph_receipts_received", "Receipts received on POST /v1/receipts", registry=self.registry)
        self.queue_depth = Gauge("heliograph_queue_depth", "Queued copies per destination and lane", ["destination", "lane"], registry=self.registry)
        self.hop_latency = Histogram(
            "heliograph_hop_latency_seconds",
            "Time from acceptance to the next hop's accepted receipt",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.accept_latency = Histogram(
            "heliograph_accept_latency_seconds",
            "Time to verify, store and answer one POST /v1/envelopes",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=self.registry,
        )

    def watch_roster(self, roster: Callable[[], Roster]) -> None:
        """Export the roster in force (read at each scrape, so a hot-reloaded roster shows at once).

        ``heliograph_roster_expires_timestamp_seconds`` lets monitoring warn days before the
        roster expires, when this hop would stop being ready (PROTOCOL.md 20.2).
        """
        expires = Gauge("heliograph_roster_expires_timestamp_seconds", "When the roster in force expires (unix seconds)", registry=self.registry)
        expires.set_function(lambda: roster().expires / 1000)
        version = Gauge("heliograph_roster_version", "Version of the roster in force", registry=self.registry)
        version.set_function(lambda: roster().version)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
