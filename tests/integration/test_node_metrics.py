"""A node's own metrics on /metrics: alerts, inbox, acks both ways, escalation outcomes, auth denials, streams."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_node_alerts import MINUTE, send
from tests.support.agencies import Agencies


async def metrics(a: Agencies, node: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert a.session is not None
    async with a.session.get(a.url(node) + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("heliograph_node_")
    }


async def test_officer_events_escalations_and_denials_are_counted(fed: Agencies) -> None:
    acked = await send(fed)
    status, _ = await fed.call("fr-police", "POST", f"/v1/inbox/{acked}/ack", json={"disposition": "accepted"})
    assert status == 202
    await fed.settle()
    await send(fed)  # this one nobody accepts: its escalation fires
    await fed.advance(11 * MINUTE)
    assert (await fed.call("int-org", "GET", "/v1/alerts", token="hgt_not-a-token"))[0] == 401
    assert (await fed.call("int-org", "POST", "/v1/alerts", role="auditor", json={}))[0] == 403

    origin = await metrics(fed, "int-org")
    assert origin[("heliograph_node_alerts_sent_total", (("kind", "alert"), ("priority", "FLASH")))] == 2  # escalations count apart
    assert origin[("heliograph_node_acks_total", (("direction", "in"), ("disposition", "accepted")))] == 1
    steps = {state: origin[("heliograph_node_escalations", (("state", state),))] for state in ("pending", "fired", "acked", "cancelled", "expired")}
    assert steps == {"pending": 0, "fired": 1, "acked": 1, "cancelled": 0, "expired": 0}
    assert origin[("heliograph_node_auth_denied_total", (("code", "E_UNAUTHENTICATED"),))] == 1
    assert origin[("heliograph_node_auth_denied_total", (("code", "E_FORBIDDEN"),))] == 1
    assert origin[("heliograph_node_receipts_received_total", ())] > 0
    assert origin[("heliograph_node_event_streams", ())] == 0

    action = await metrics(fed, "fr-police")
    assert action[("heliograph_node_inbox_received_total", (("kind", "alert"), ("priority", "FLASH")))] == 2
    assert action[("heliograph_node_acks_total", (("direction", "out"), ("disposition", "accepted")))] == 1
    escalation = await metrics(fed, "ke-police")
    assert escalation[("heliograph_node_inbox_received_total", (("kind", "alert"), ("priority", "FLASH")))] == 1
