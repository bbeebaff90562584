"""Generate the known-answer vectors in tests/vectors/*.json from fixed seeds.

Run ``make vectors`` (or ``python -m tests.vectors.generate``) after a deliberate
wire-format change; ``tests/protocol/test_vectors.py`` regenerates them and
demands byte-for-byte equality, so an accidental change fails the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protocol import envelope as env_mod
from protocol.keys import DOMAIN_ENVELOPE_HEADER, DOMAIN_RECEIPT, signed_message
from protocol.receipts import Receipt, SignedReceipt
from tests.support.federation import T0, SeededRng, build_federation

HERE = Path(__file__).parent
HOUR = 3600 * 1000

ENVELOPE_CASES: list[dict[str, Any]] = [
    {
        "name": "flash-two-tiers",
        "description": "FLASH alert, action tier opens all three sections, inform tier only the summary",
        "origin": "int-org",
        "priority": "FLASH",
        "label": "TLP:AMBER",
        "kind": "alert",
        "refs": [],
        "ttl": 6 * HOUR,
        "sections": {
            "summary": b"Armed robbery suspect crossing at Namanga, white Land Cruiser.",
            "details": b"Plate KDA 123X. Two occupants. Suspect wanted under warrant 2026/4411.",
            "instructions": b"Stop and hold; do not approach alone. Notify duty officer.",
        },
        "tiers": [("action", ("details", "instructions", "summary"), ("ke-police",)), ("inform", ("summary",), ("fr-police", "ke-fiu"))],
    },
    {
        "name": "routine-single",
        "description": "ROUTINE notice to one recipient, one section, TLP:CLEAR",
        "origin": "ke-police",
        "priority": "ROUTINE",
        "label": "TLP:CLEAR",
        "kind": "alert",
        "refs": [],
        "ttl": 24 * HOUR,
        "sections": {"summary": b"Weekly bulletin: no new cross-border cases."},
        "tiers": [("all", ("summary",), ("int-org",))],
    },
    {
        "name": "update-with-refs",
        "description": "IMMEDIATE update referring to two earlier messages, three tiers, TLP:RED",
        "origin": "ke-fiu",
        "priority": "IMMEDIATE",
        "label": "TLP:RED",
        "kind": "update",
        "refs": [bytes.fromhex("00112233445566778899aabbccddeeff"), bytes.fromhex("0f" * 16)],
        "ttl": 2 * HOUR,
        "sections": {
            "summary": b"Update: funds moved to a second account.",
            "details": b"IBAN DE00 0000 0000 0000 0000 00, 240,000 EUR at 09:14 UTC.",
            "attachments": bytes(range(256)),
        },
        "tiers": [
            ("action", ("attachments", "details", "summary"), ("int-org",)),
            ("analyst", ("details", "summary"), ("ke-police",)),
            ("inform", ("summary",), ("fr-police",)),
        ],
    },
]


def _roster_and_keys() -> Any:
    return build_federation("heliograph-vectors")


def envelope_vectors() -> dict[str, Any]:
    fed = _roster_and_keys()
    cases = []
    for i, case in enumerate(ENVELOPE_CASES):
        now = T0 + i * 1000
        tiers = [env_mod.Tier(name=n, sections=s, recipients=r) for n, s, r in case["tiers"]]
        envelope = env_mod.seal(
            sender=fed.keys[case["origin"]],
            roster=fed.roster,
            tiers=tiers,
            sections=case["sections"],
            priority=case["priority"],
            label=case["label"],
            kind=case["kind"],
            refs=case["refs"],
            now=now,
            expires=now + case["ttl"],
            rng=SeededRng(f"vector-{case['name']}"),
        )
        recipients = []
        for name, secs, members in case["tiers"]:
            for member in members:
                keys = fed.keys[member]
                recipients.append(
                    {
                        "id": member,
                        "tier": name,
                        "x25519_secret_key": keys.encryption_secret.hex(),
                        "x25519_public_key": keys.encryption_public.hex(),
                        "visible_sections": {s: case["sections"][s].hex() for s in sorted(secs)},
                        "hidden_sections": sorted(set(case["sections"]) - set(secs)),
                    }
                )
        cases.append(
            {
                "name": case["name"],
                "description": case["description"],
                "now": now,
                "message_id": envelope.message_id.hex(),
                "envelope": envelope.to_bytes().hex(),
                "header": envelope.header_bytes.hex(),
                "header_digest": envelope.header_digest.hex(),
                "context_digest": envelope.header.context_digest.hex(),
                "body": envelope.body.hex(),
                "header_signature": envelope.signature.hex(),
                "signed_message": signed_message(DOMAIN_ENVELOPE_HEADER, envelope.header_bytes).hex(),
                "origin": case["origin"],
                "origin_public_key": fed.keys[case["origin"]].signing_public.hex(),
                "origin_key_id": fed.keys[case["origin"]].signing_key_id.hex(),
                "recipients": sorted(recipients, key=lambda r: r["id"]),
            }
        )
    return {
        "description": "Heliograph envelope known-answer vectors; see docs/PROTOCOL.md 'Test vectors'. Generated by tests/vectors/generate.py.",
        "roster": fed.signed.to_bytes().hex(),
        "cases": cases,
    }


def receipt_vectors() -> dict[str, Any]:
    fed = _roster_and_keys()
    msg = bytes.fromhex("a1" * 16)
    hdr = bytes.fromhex("b2" * 32)

    def hop_receipt(hop: str, event: str, time: int, peer: str, **extra: Any) -> SignedReceipt:
        keys = fed.keys[hop]
        receipt = Receipt(message_id=msg, header_digest=hdr, hop=hop, hop_key=keys.signing_key_id, event=event, time=time, peer=peer, **extra)
        return receipt.sign(keys)

    accepted = hop_receipt("gw-af", "accepted", T0, "ke-police", log_index=0)
    delayed = hop_receipt("gw-af", "delayed", T0 + 40, "gw-eu", prev=accepted.digest, retry_until=T0 + 40 + 3_600_000, log_index=1)
    next_hop = hop_receipt("gw-eu", "accepted", T0 + 9000, "gw-af", prev=delayed.digest, log_index=0)
    relayed = hop_receipt("gw-af", "relayed", T0 + 9010, "gw-eu", prev=next_hop.digest, log_index=2)
    delivered = hop_receipt("gw-eu", "delivered", T0 + 9050, "int-org", prev=next_hop.digest, log_index=1)
    rejected = hop_receipt("gw-eu", "rejected", T0 + 100, "gw-af", reason="E_POLICY_DENIED")
    cases = []
    chain = (
        ("accepted", accepted),
        ("delayed", delayed),
        ("next-hop-accepted", next_hop),
        ("relayed", relayed),
        ("delivered", delivered),
        ("rejected", rejected),
    )
    for name, signed in chain:
        r = signed.receipt
        cases.append(
            {
                "name": name,
                "receipt": signed.to_bytes().hex(),
                "body": signed.body.hex(),
                "signed_message": signed_message(DOMAIN_RECEIPT, signed.body).hex(),
                "signature": signed.signature.hex(),
                "public_key": fed.keys[r.hop].signing_public.hex(),
                "hop": r.hop,
                "event": r.event,
                "digest": signed.digest.hex(),
                "prev": r.prev.hex() if r.prev else None,
            }
        )
    return {
        "description": (
            "Heliograph hop receipt known-answer vectors: gw-af accepts, is delayed, hands over to gw-eu (whose accepted receipt"
            " names gw-af's last one), records relayed (naming gw-eu's receipt), gw-eu delivers; plus a rejection."
            " Each prev is the digest of an earlier case."
        ),
        "roster": fed.signed.to_bytes().hex(),
        "cases": cases,
    }


def node_vectors() -> dict[str, Any]:
    """Section plaintexts of docs/PROTOCOL.md 21.1 and the officer-action log leaf of 21.4."""
    from node import cap
    from node.service import action_record

    ref = bytes(range(16))
    attachment = cap.Attachment(name="plate.txt", media_type="text/plain", data=b"KDA 123X")
    cases = [
        {
            "name": "info",
            "fields": {
                "category": "Security",
                "certainty": "Likely",
                "event": "Armed robbery",
                "headline": "Suspect at Namanga",
                "severity": "Severe",
                "urgency": "Immediate",
            },
            "bytes": cap.encode_info(
                category="Security", certainty="Likely", event="Armed robbery", headline="Suspect at Namanga", severity="Severe", urgency="Immediate"
            ).hex(),
        },
        {
            "name": "attachments",
            "fields": {"items": [{"name": "plate.txt", "type": "text/plain", "data_hex": b"KDA 123X".hex()}]},
            "bytes": cap.encode_attachments((attachment,)).hex(),
        },
        {
            "name": "ack-accepted",
            "fields": {"disposition": "accepted", "ref_hex": ref.hex(), "comment": "Units dispatched"},
            "bytes": cap.encode_ack(ref=ref, disposition="accepted", reason=None, comment="Units dispatched").hex(),
        },
        {
            "name": "ack-rejected",
            "fields": {"disposition": "rejected", "ref_hex": ref.hex(), "reason": "Not our jurisdiction"},
            "bytes": cap.encode_ack(ref=ref, disposition="rejected", reason="Not our jurisdiction", comment=None).hex(),
        },
        {
            "name": "officer-action",
            "fields": {"node": "ke-police", "officer": "duty-1", "role": "officer", "action": "alert.alert", "target": ref.hex(), "time": T0},
            "bytes": action_record(node="ke-police", officer="duty-1", role="officer", action="alert.alert", target=ref.hex(), time=T0).hex(),
        },
    ]
    return {"description": "Node content formats (docs/PROTOCOL.md section 21): canonical msgpack, hex", "cases": cases}


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def main() -> None:
    (HERE / "envelope.json").write_text(render(envelope_vectors()), encoding="utf-8")
    (HERE / "receipt.json").write_text(render(receipt_vectors()), encoding="utf-8")
    (HERE / "node.json").write_text(render(node_vectors()), encoding="utf-8")
    print("wrote tests/vectors/envelope.json, receipt.json and node.json")


if __name__ == "__main__":
    main()
