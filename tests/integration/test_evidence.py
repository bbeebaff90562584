"""Evidence bundles end to end: export from a live origin node, verify offline with ``heliograph verify receipts``.

Real nodes and gateways on 127.0.0.1 (tests/support/agencies.py). Witnesses are a
hand-written fake on loopback that cosigns whatever checkpoint a hop serves now
(or an older one, to play a witness that lags behind).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import nacl.signing
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.hop import sign_receipt
from gateway.policy import Policy
from node.evidence import Prover, export_bundle, fetch_text
from node.verify_cli import register
from protocol.checkpoint import CosignatureVerifier, SignedNote, cosign
from protocol.errors import CheckpointError, ConflictError, MalformedError, NotFoundError, UnreachableError
from protocol.evidence import EvidenceBundle, verify_bundle
from protocol.receipts import Receipt
from protocol.roster import SignedRoster
from tests.support.agencies import Agencies, alert_body
from tests.support.federation import T0
from tests.support.net import OPEN_POLICY

MINUTE = 60_000


async def send(a: Agencies, **overrides: object) -> bytes:
    status, body = await a.call("int-org", "POST", "/v1/alerts", json=alert_body(**overrides))
    assert status == 201, body
    await a.settle()
    return bytes.fromhex(body["message_id"])


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="heliograph")
    register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


def files(a: Agencies, tmp_path: Path, data: bytes, name: str = "bundle.hgev") -> tuple[str, str]:
    bundle, roster = tmp_path / name, tmp_path / "roster.bin"
    bundle.write_bytes(data)
    roster.write_bytes(a.fed.signed.to_bytes())
    return str(bundle), str(roster)


async def test_export_then_verify_offline_with_table_json_and_html(fed: Agencies, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fed.session is not None
    mid = await send(fed)
    status, _ = await fed.call("fr-police", "POST", f"/v1/inbox/{mid.hex()}/ack", json={"disposition": "accepted", "comment": "on it"})
    assert status == 202
    await fed.settle()
    data = await export_bundle(fed.nodes["int-org"], mid, fed.session)
    bundle = EvidenceBundle.from_bytes(data)
    assert bundle.message_id == mid and len(bundle.acks) == 1 and bundle.escalations == ()
    assert b"Plate FR-123-AB" not in data and b"on it" not in data, "a bundle holds headers and receipts, never content"
    bundle_path, roster_path = files(fed, tmp_path, data)
    html = tmp_path / "report.html"

    assert cli("verify", "receipts", bundle_path, "--roster", roster_path, "--html", str(html), "--require-delivery") == 0
    out = capsys.readouterr().out
    assert "fr-police" in out and "ke-fiu" in out and "PASS" in out and "FAIL" not in out
    assert out.rstrip().endswith("evidence verified: every recipient delivered")
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "VERIFIED" in page
    for member in ("int-org", "gw-eu", "gw-af", "fr-police", "ke-fiu"):
        assert member in page
    lowered = page.lower()
    assert "<script" not in lowered and "src=" not in lowered and "href" not in lowered and "@import" not in lowered and "url(" not in lowered

    assert cli("verify", "receipts", bundle_path, "--roster", roster_path, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and {(x["kind"], x["recipient"]): x["outcome"] for x in doc["lanes"]} == {
        ("alert", "fr-police"): "acknowledged",
        ("alert", "ke-fiu"): "delivered",
        ("ack", "int-org"): "received",
    }


async def test_a_tampered_bundle_fails_with_the_precise_reason(fed: Agencies, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fed.session is not None
    mid = await send(fed)
    bundle = EvidenceBundle.from_bytes(await export_bundle(fed.nodes["int-org"], mid, fed.session))
    items = tuple(i for i in bundle.message.items if (i.signed.receipt.hop, i.signed.receipt.event) != ("ke-fiu", "accepted"))
    tampered = replace(bundle, message=replace(bundle.message, items=items))
    bundle_path, roster_path = files(fed, tmp_path, tampered.to_bytes())
    html = tmp_path / "broken.html"
    assert cli("verify", "receipts", bundle_path, "--roster", roster_path, "--html", str(html)) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out
    assert "error [E_BROKEN_CHAIN]: gw-af 'delivered' (to ke-fiu)" in captured.err
    assert "ke-fiu's 'accepted' receipt, which is not in the bundle" in captured.err
    page = html.read_text(encoding="utf-8")
    assert "FAILED" in page and "E_BROKEN_CHAIN" in page and "&#x27;accepted&#x27;" in page


async def test_a_refused_copy_is_sound_evidence_but_not_a_delivery(fed: Agencies, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fed.session is not None
    rules = [{"action": "deny", "name": "no-fiu", "recipients": ["ke-fiu"]}, {"action": "allow", "origins": ["*"]}]
    fed.gateways["gw-af"].ctx.policy = Policy.from_config({**OPEN_POLICY, "rules": rules})
    mid = await send(fed)
    data = await export_bundle(fed.nodes["int-org"], mid, fed.session)
    report = verify_bundle(data, fed.fed.roster)
    (ke,) = [x for x in report.lanes if x.recipient == "ke-fiu"]
    assert report.ok and not report.all_delivered and ke.outcome == "rejected" and "E_POLICY_DENIED" in ke.detail
    bundle_path, roster_path = files(fed, tmp_path, data)
    html = tmp_path / "refused.html"
    assert cli("verify", "receipts", bundle_path, "--roster", roster_path, "--html", str(html)) == 0
    assert capsys.readouterr().out.rstrip().endswith("evidence verified")
    assert "E_POLICY_DENIED" in html.read_text(encoding="utf-8")
    assert cli("verify", "receipts", bundle_path, "--roster", roster_path, "--require-delivery") == 1
    assert "not proven delivered: ke-fiu (rejected)" in capsys.readouterr().err


async def test_a_receipt_off_every_route_is_shown_as_stray(fed: Agencies, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fed.session is not None
    mid = await send(fed)
    bundle = EvidenceBundle.from_bytes(await export_bundle(fed.nodes["int-org"], mid, fed.session))
    gw_af = next(i for i in bundle.message.items if (i.signed.receipt.hop, i.signed.receipt.event) == ("gw-af", "accepted"))
    ctx = fed.nodes["ke-police"].hop.ctx  # ke-police is no recipient of this alert, yet signs and logs a receipt for it
    _, raw = await ctx.log.submit(
        sign_receipt(ctx, message_id=mid, header_digest=bundle.message.header_digest, event="accepted", peer="gw-af", prev=gw_af.digest)
    )
    assert raw is not None
    stray = await Prover(fed.session, fed.fed.roster).item(raw)
    tampered = replace(bundle, message=replace(bundle.message, items=(*bundle.message.items, stray)))
    bundle_path, roster_path = files(fed, tmp_path, tampered.to_bytes())
    html = tmp_path / "stray.html"
    assert cli("verify", "receipts", bundle_path, "--roster", roster_path, "--html", str(html)) == 1
    captured = capsys.readouterr()
    assert "stray" in captured.out and "ke-police" in captured.out
    assert "error [E_BROKEN_CHAIN]: ke-police 'accepted' (peer gw-af)" in captured.err and "not on the route of any recipient" in captured.err
    assert "Receipts off every route" in html.read_text(encoding="utf-8")


async def test_cli_refuses_bad_inputs_with_codes(fed: Agencies, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fed.session is not None
    mid = await send(fed)
    bundle_path, roster_path = files(fed, tmp_path, await export_bundle(fed.nodes["int-org"], mid, fed.session))
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x80")
    weak = tmp_path / "weak-roster"
    weak.write_bytes(SignedRoster.sign(fed.fed.roster, fed.fed.authority_keys[:1]).to_bytes())
    for argv, code in (
        ((str(tmp_path / "missing"), "--roster", roster_path), "E_NOT_FOUND"),
        ((str(junk), "--roster", roster_path), "E_MALFORMED"),
        ((bundle_path, "--roster", str(tmp_path / "nope")), "E_ROSTER_FILE"),
        ((bundle_path, "--roster", str(weak)), "E_ROSTER"),
        ((bundle_path, "--roster", roster_path, "--witness", "not-a-vkey"), "E_MALFORMED"),
        ((bundle_path, "--roster", roster_path, "--at", str(T0 - 3_600_000)), "E_NOT_YET_VALID"),
    ):
        assert cli("verify", "receipts", *argv) == 1
        assert f"error [{code}]" in capsys.readouterr().err, argv
    assert cli("verify", "receipts", bundle_path, "--roster", roster_path, "--html", str(tmp_path / "no" / "dir.html")) == 1
    assert "cannot write" in capsys.readouterr().err


async def test_a_copy_stuck_behind_an_unreachable_gateway_is_incomplete(fed: Agencies, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fed.session is not None
    await fed.servers.pop("gw-af").close()
    mid = await send(fed)
    report = verify_bundle(await export_bundle(fed.nodes["int-org"], mid, fed.session), fed.fed.roster)
    (ke,) = [x for x in report.lanes if x.recipient == "ke-fiu"]
    assert ke.outcome == "delayed" and [r.status for r in ke.rows] == ["PASS", "FAIL", "NOT_REACHED", "NOT_REACHED"]
    assert report.first_failure is not None and "still retrying gw-af" in report.first_failure.message
    (fr,) = [x for x in report.lanes if x.recipient == "fr-police"]
    assert fr.ok and fr.outcome == "delivered"


async def test_export_refuses_what_it_cannot_prove(fed: Agencies) -> None:
    assert fed.session is not None
    node = fed.nodes["int-org"]
    with pytest.raises(NotFoundError):
        await export_bundle(node, b"\x01" * 16, fed.session)
    mid = await send(fed)
    keys = fed.fed.keys["gw-eu"]
    prover = Prover(fed.session, fed.fed.roster)
    for index in (None, 10**6):
        raw = Receipt(message_id=mid, header_digest=b"\x00" * 32, hop="gw-eu", hop_key=keys.signing_key_id, event="accepted", time=T0, log_index=index)
        with pytest.raises(ConflictError):
            await prover.item(raw.sign(keys).to_bytes())
    with pytest.raises(UnreachableError, match="E_NOT_FOUND"):
        await fetch_text(fed.session, fed.url("gw-eu") + "/v1/no-such-path")
    with pytest.raises(MalformedError):
        Prover(fed.session, fed.fed.roster, require_k=1)
    await fed.servers.pop("gw-af").close()
    with pytest.raises(UnreachableError):
        await export_bundle(node, mid, fed.session)


async def test_evidence_outlives_the_purged_ciphertext_and_is_served_over_http(fed: Agencies) -> None:
    """The signed header is kept after expiry (hop migration 3), so a purged alert can still be proven."""
    mid = await send(fed)
    await fed.advance(7 * 60 * MINUTE)
    node = fed.nodes["int-org"]
    rows = await node.hop.ctx.reader._db.execute_fetchall("SELECT envelope FROM messages WHERE message_id = ?", (mid,))
    assert rows == [(None,)], "the ciphertext is gone"
    assert fed.session is not None
    headers = {"Authorization": f"Bearer {fed.tokens[('int-org', 'auditor')]}"}
    async with fed.session.get(fed.url("int-org") + f"/v1/alerts/{mid.hex()}/evidence", headers=headers) as resp:
        assert resp.status == 200 and resp.content_type == "application/octet-stream"
        assert "attachment" in resp.headers["Content-Disposition"]
        bundle = await resp.read()
    report = verify_bundle(bundle, fed.fed.roster)
    assert report.ok, report.first_failure
    async with fed.session.get(fed.url("int-org") + f"/v1/alerts/{'0' * 32}/evidence", headers=headers) as resp:
        assert resp.status == 404


class FakeWitness:
    """Cosigns the checkpoint a hop serves now, or the one it was pinned to (a witness that lags behind)."""

    def __init__(self, a: Agencies, name: str, seed: bytes) -> None:
        self.a, self.name = a, name
        self.key = nacl.signing.SigningKey(seed * 32)
        self.vkey = CosignatureVerifier(name=name, public=bytes(self.key.verify_key)).vkey
        self.pinned: dict[str, str] = {}

    async def checkpoint(self, origin: str) -> str:
        assert self.a.session is not None
        return await fetch_text(self.a.session, self.a.url(origin.removeprefix("heliograph/")) + "/v1/log/checkpoint")

    async def pin(self, member: str) -> None:
        self.pinned[f"heliograph/{member}"] = await self.checkpoint(f"heliograph/{member}")

    async def handle(self, request: web.Request) -> web.Response:
        origin = request.match_info["origin"]
        text = self.pinned.get(origin) or await self.checkpoint(origin)
        return web.Response(text=cosign(SignedNote.from_text(text), self.name, self.key, T0 // 1000).to_text())

    async def serve(self) -> TestServer:
        app = web.Application()
        app.router.add_get("/v1/witness/cosignatures/{origin:.+}", self.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        return server


async def test_witness_cosigned_checkpoints(fed: Agencies, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fed.session is not None
    w1, w2, lag = FakeWitness(fed, "w1.example/witness", b"\x01"), FakeWitness(fed, "w2.example/witness", b"\x02"), FakeWitness(fed, "w3.example/w", b"\x03")
    servers = [await w.serve() for w in (w1, w2, lag)]
    try:
        urls = [str(s.make_url("/")) for s in servers]
        for hop in ("int-org", "gw-eu", "gw-af", "fr-police", "ke-fiu"):
            await lag.pin(hop)  # before the alert: none of its receipts is covered
        mid = await send(fed)
        node = fed.nodes["int-org"]
        dead = CosignatureVerifier(name="dead.example/w", public=b"\x05" * 32).vkey
        witnesses = [(urls[0], w1.vkey), (urls[1], w2.vkey), ("http://127.0.0.1:9", dead)]
        data = await export_bundle(node, mid, fed.session, witnesses=witnesses, require_k=2)
        vkeys = [CosignatureVerifier.from_vkey(w.vkey) for w in (w1, w2)]
        assert verify_bundle(data, fed.fed.roster, witnesses=vkeys, require_k=2).ok
        bundle_path, roster_path = files(fed, tmp_path, data)
        assert cli("verify", "receipts", bundle_path, "--roster", roster_path, "--witness", w1.vkey, "--witness", w2.vkey) == 0
        capsys.readouterr()
        other = CosignatureVerifier(name="w9.example/witness", public=b"\x09" * 32).vkey
        assert cli("verify", "receipts", bundle_path, "--roster", roster_path, "--witness", w1.vkey, "--witness", other, "--require-k", "2") == 1
        assert "error [E_BAD_CHECKPOINT]" in capsys.readouterr().err
        with pytest.raises(CheckpointError, match="cosigned by 2 of the 2"):
            await export_bundle(node, mid, fed.session, witnesses=[(urls[0], w1.vkey), (urls[2], lag.vkey)], require_k=2)
        with pytest.raises(ConflictError, match="covers index"):
            await export_bundle(node, mid, fed.session, witnesses=[(urls[2], lag.vkey)], require_k=1)
        with pytest.raises(MalformedError):
            await export_bundle(node, mid, fed.session, witnesses=[(urls[0], "not-a-vkey")], require_k=1)
    finally:
        for server in servers:
            await server.close()
