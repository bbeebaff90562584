"""A misbehaving origin: every inner inconsistency is caught by ``open``.

The header signature binds the body, so only the origin can produce these
envelopes. They model an origin trying to show different recipients different
content (invisible-salamander style key swaps, mismatched tier maps) or a buggy
implementation. Each must end in the one opaque ``E_DECRYPT``.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from protocol import encoding
from protocol import envelope as env_mod
from protocol.errors import DecryptError
from protocol.header import Envelope, Header
from protocol.keys import DOMAIN_ENVELOPE_HEADER, DOMAIN_MANIFEST
from protocol.sealing import aead_seal, key_commitment, seal_box, section_digest
from tests.protocol.conftest import HOUR
from tests.support.federation import T0, Federation, SeededRng

SECTIONS = {"summary": b"short summary", "details": b"longer details"}


def _evil_envelope(fed: Federation, fault: str) -> Envelope:
    """Build a two-recipient envelope by hand, injecting one ``fault``."""
    rng = SeededRng(f"evil-{fault}")
    origin = fed.keys["int-org"]
    recipients = ("fr-police", "ke-police")
    tiers = {"action": ["details", "summary"], "inform": ["summary"]}
    tier_of = {"ke-police": "action", "fr-police": "inform"}
    msg_id = rng(16)
    proto = Header(
        message_id=msg_id,
        origin="int-org",
        origin_key=origin.signing_key_id,
        recipients=recipients,
        priority="FLASH",
        label="TLP:AMBER",
        kind="alert",
        refs=(),
        created=T0,
        expires=T0 + HOUR,
        body_digest=bytes(32),
    )
    ctx = proto.context_digest
    keys = {sid: rng(32) for sid in SECTIONS}
    sections = []
    for sid in sorted(SECTIONS):
        nonce = rng(24)
        plain = SECTIONS[sid] + (b"!" if fault == "plaintext-digest" and sid == "details" else b"")
        sections.append({"id": sid, "nonce": nonce, "ct": aead_seal(keys[sid], nonce, plain, b"heliograph/section/v1\x00" + ctx + sid.encode())})
    manifest = {
        "v": 1,
        "message_id": msg_id,
        "origin": "int-org",
        "context": bytes(32) if fault == "manifest-context" else ctx,
        "tiers": tiers,
        "recipients": {**tier_of, "ke-police": "inform"} if fault == "manifest-tier" else tier_of,
        "sections": {
            sid: {
                "size": len(SECTIONS[sid]),
                "digest": section_digest(keys[sid], SECTIONS[sid]),
                "key_commit": key_commitment(b"\x00" * 32 if fault == "section-commit" and sid == "details" else keys[sid]),
            }
            for sid in SECTIONS
        },
    }
    manifest_bytes = encoding.encode(manifest)
    sig = origin.sign(DOMAIN_MANIFEST, manifest_bytes)
    if fault == "manifest-signature":
        sig = bytes(64)
    mkey, mnonce = rng(32), rng(24)
    sealed = encoding.encode({"v": 1, "manifest": manifest_bytes, "sig": sig})
    stanzas = []
    for r in recipients:
        stanza_keys = {sid: keys[sid] for sid in tiers[tier_of[r]]}
        if fault == "stanza-extra-key" and r == "fr-police":
            stanza_keys = dict(keys)
        stanza = {
            "v": 1,
            "message_id": b"\x00" * 16 if fault == "stanza-message-id" else msg_id,
            "recipient": r,
            "tier": tier_of[r],
            "manifest_key": mkey,
            "keys": stanza_keys,
        }
        pub = fed.roster.member(r).encryption_keys[0].public
        stanzas.append({"recipient": r, "key_id": fed.keys[r].encryption_key_id, "box": seal_box(pub, encoding.encode(stanza), rng)})
    if fault == "stanza-missing":
        stanzas = stanzas[1:]
    body = encoding.encode(
        {
            "v": 1,
            "manifest": {
                "commit": key_commitment(b"\x01" * 32 if fault == "manifest-commit" else mkey),
                "nonce": mnonce,
                "ct": aead_seal(mkey, mnonce, sealed, b"heliograph/manifest-ct/v1\x00" + ctx),
            },
            "sections": sections,
            "stanzas": stanzas,
        }
    )
    header = replace(proto, body_digest=hashlib.sha256(body).digest())
    hb = header.to_bytes()
    return Envelope(header_bytes=hb, signature=origin.sign(DOMAIN_ENVELOPE_HEADER, hb), body=body)


def test_the_hand_built_envelope_is_valid_without_faults(fed: Federation) -> None:
    env = _evil_envelope(fed, "none")
    assert env_mod.open(env, fed.keys["ke-police"], fed.roster, T0).sections == SECTIONS
    assert set(env_mod.open(env, fed.keys["fr-police"], fed.roster, T0).sections) == {"summary"}


@pytest.mark.parametrize(
    ("fault", "victim"),
    [
        ("stanza-message-id", "ke-police"),
        ("stanza-missing", "ke-police"),
        ("manifest-commit", "ke-police"),
        ("manifest-signature", "ke-police"),
        ("manifest-context", "ke-police"),
        ("manifest-tier", "ke-police"),
        ("stanza-extra-key", "fr-police"),
        ("section-commit", "ke-police"),
        ("plaintext-digest", "ke-police"),
    ],
)
def test_origin_inconsistencies_are_opaque_decrypt_errors(fed: Federation, fault: str, victim: str) -> None:
    env = _evil_envelope(fed, fault)
    env_mod.verify_header(env, fed.roster, T0)  # the header itself is fine: gateways forward it
    with pytest.raises(DecryptError) as info:
        env_mod.open(env, fed.keys[victim], fed.roster, T0)
    assert info.value.message == "message could not be decrypted"
