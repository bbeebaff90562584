"""Alert envelopes: seal for tiered recipients, verify at every hop, open per tier.

Layout (docs/PROTOCOL.md, "Envelope", is normative)::

    envelope = {v, header: bin(header bytes), sig: Ed25519(header), body: bin}
    body     = {v, manifest: {commit, nonce, ct}, sections: [{id, nonce, ct}],
                stanzas: [{recipient, key_id, box}]}

Each section is sealed under its own random key with XChaCha20-Poly1305; the
associated data binds the header's context digest and the section id. Each
recipient gets one stanza, a sealed box to its X25519 key, holding the manifest
key and exactly its tier's section keys. The manifest, encrypted under the
manifest key and signed by the origin, lists the tier map, each section's
plaintext digest and a commitment to each section key; the body commits to the
manifest key. Because the header signature covers the body digest, every
recipient provably sees the same manifest and the same plaintext, and nobody
but the origin can re-seal the message for anyone else.

This module is the entry point: :func:`seal`, :func:`verify_header` (what every
hop runs) and :func:`open_envelope`. The tier and manifest model lives in
:mod:`protocol.envelope_manifest` and decryption in :mod:`protocol.envelope_open`;
their public names are re-exported here, so ``from protocol.envelope import
...`` stays the one import callers need.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from protocol import encoding, fields
from protocol.envelope_manifest import MANIFEST_AD, SECTION_AD, VERSION, Manifest, Tier
from protocol.envelope_open import Opened, open_verified
from protocol.errors import DigestMismatchError, ExpiredError, MalformedError, NotYetValidError, TooLargeError, UnknownMemberError
from protocol.header import MESSAGE_ID_SIZE, Envelope, Header
from protocol.keys import DOMAIN_ENVELOPE_HEADER, DOMAIN_MANIFEST, MemberKeys, Rng, verify_signature
from protocol.limits import DEFAULT_LIMITS, Limits
from protocol.roster import KIND_NODE, Roster
from protocol.sealing import AEAD_KEY_SIZE, AEAD_NONCE_SIZE, aead_seal, key_commitment, seal_box, section_digest

__all__ = [
    "VERSION",
    "Manifest",
    "Opened",
    "Tier",
    "open",
    "open_envelope",
    "open_verified",
    "seal",
    "verify_header",
]


def seal(
    *,
    sender: MemberKeys,
    roster: Roster,
    tiers: Sequence[Tier],
    sections: Mapping[str, bytes],
    priority: str,
    label: str,
    now: int,
    expires: int,
    rng: Rng,
    kind: str = "alert",
    refs: Sequence[bytes] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    """Seal and sign an alert for tiered recipients.

    Args:
        sender: The origin's secret keys.
        roster: The roster in force; recipient encryption keys come from it.
        tiers: Recipient tiers. Every recipient is in exactly one tier.
        sections: Section id -> plaintext bytes.
        priority: One of :data:`protocol.header.PRIORITIES`.
        label: A TLP 2.0 label from :data:`protocol.header.LABELS`.
        now: Creation time, unix ms.
        expires: Expiry time, unix ms, later than ``now``.
        rng: Randomness source (message id, keys, nonces, ephemeral keys).
        kind: alert, update, cancel, ack or error.
        refs: Message ids this one updates, cancels or answers.
        limits: Size and count limits.

    Returns:
        The signed envelope.

    Raises:
        MalformedError: Invalid tiers, sections or header fields.
        UnknownMemberError: A recipient is not a node in the roster.
        UnknownKeyError: A recipient has no encryption key valid at ``now``.
        TooLargeError: The envelope would exceed ``limits.max_envelope_bytes``.
    """
    if not sections or len(sections) > limits.max_sections:
        raise MalformedError(f"an alert needs 1..{limits.max_sections} sections")
    if not tiers or len(tiers) > limits.max_tiers:
        raise MalformedError(f"an alert needs 1..{limits.max_tiers} tiers")
    for sid, text in sections.items():
        fields.short_name("section", sid)
        fields.typed(f"section {sid}", text, bytes)
    tier_of: dict[str, Tier] = {}
    for tier in tiers:
        missing = set(tier.sections) - sections.keys()
        if missing:
            raise MalformedError(f"tier {tier.name}: unknown section(s) {sorted(missing)}")
        for r in tier.recipients:
            if r in tier_of:
                raise MalformedError(f"recipient {r} is in more than one tier")
            tier_of[r] = tier
    if len({t.name for t in tiers}) != len(tiers):
        raise MalformedError("tier names must be unique")
    unread = set(sections) - {s for t in tiers for s in t.sections}
    if unread:
        raise MalformedError(f"section(s) {sorted(unread)} are visible to no tier")
    recipient_keys = {}
    recipient_kids = {}
    for r in sorted(tier_of):
        member = roster.member(r)
        if member.kind != KIND_NODE:
            raise UnknownMemberError(f"recipient {r} is not an agency node")
        recipient_keys[r] = public = member.encryption_key_at(now).public
        recipient_kids[r] = member.encryption_key_id(public)

    message_id = rng(MESSAGE_ID_SIZE)
    # The context digest is independent of the body, so compute it from a provisional header.
    provisional = Header(
        message_id=message_id,
        origin=sender.member_id,
        origin_key=sender.signing_key_id,
        recipients=tuple(sorted(tier_of)),
        priority=priority,
        label=label,
        kind=kind,
        refs=tuple(sorted(refs)),
        created=now,
        expires=expires,
        body_digest=bytes(32),
        max_recipients=limits.max_recipients,
        max_refs=limits.max_refs,
    )
    context = provisional.context_digest
    section_keys = {sid: rng(AEAD_KEY_SIZE) for sid in sorted(sections)}
    wire_sections = []
    for sid in sorted(sections):
        nonce = rng(AEAD_NONCE_SIZE)
        ct = aead_seal(section_keys[sid], nonce, sections[sid], SECTION_AD + context + sid.encode())
        wire_sections.append({"ct": ct, "id": sid, "nonce": nonce})
    manifest = Manifest(
        message_id=message_id,
        origin=sender.member_id,
        context=context,
        tiers={t.name: tuple(sorted(t.sections)) for t in tiers},
        recipients={r: t.name for r, t in tier_of.items()},
        sections={sid: (len(sections[sid]), section_digest(k, sections[sid]), key_commitment(k)) for sid, k in section_keys.items()},
    )
    manifest_bytes = manifest.to_bytes()
    manifest_key = rng(AEAD_KEY_SIZE)
    manifest_nonce = rng(AEAD_NONCE_SIZE)
    sealed_manifest = encoding.encode_trusted({"manifest": manifest_bytes, "sig": sender.sign(DOMAIN_MANIFEST, manifest_bytes), "v": VERSION})
    stanzas = []
    for r in sorted(tier_of):
        tier = tier_of[r]
        stanza = encoding.encode_trusted(
            {
                "keys": {sid: section_keys[sid] for sid in sorted(tier.sections)},
                "manifest_key": manifest_key,
                "message_id": message_id,
                "recipient": r,
                "tier": tier.name,
                "v": VERSION,
            }
        )
        stanzas.append({"box": seal_box(recipient_keys[r], stanza, rng), "key_id": recipient_kids[r], "recipient": r})
    body = encoding.encode_trusted(
        {
            "manifest": {
                "commit": key_commitment(manifest_key),
                "ct": aead_seal(manifest_key, manifest_nonce, sealed_manifest, MANIFEST_AD + context),
                "nonce": manifest_nonce,
            },
            "sections": wire_sections,
            "stanzas": stanzas,
            "v": VERSION,
        },
    )
    header = provisional.with_body_digest(hashlib.sha256(body).digest())
    header_bytes = header.to_bytes()
    envelope = Envelope.from_parts(header, header_bytes, sender.sign(DOMAIN_ENVELOPE_HEADER, header_bytes), body, limits)
    size = len(envelope.to_bytes())
    if size > limits.max_envelope_bytes:
        raise TooLargeError(f"sealed envelope of {size} bytes exceeds the limit of {limits.max_envelope_bytes}")
    return envelope


def verify_header(envelope: Envelope | bytes, roster: Roster, now: int, *, limits: Limits = DEFAULT_LIMITS) -> Header:
    """What every hop runs: signature, key validity, body digest, time, size.

    The origin's signing key must be valid both when the message was created
    and now. Recipients must be agency nodes in the roster.

    Returns:
        The verified header.

    Raises:
        TooLargeError: Envelope larger than ``limits.max_envelope_bytes``.
        MalformedError: Unparseable envelope or header.
        UnknownMemberError: Origin or a recipient not in the roster.
        UnknownKeyError, RevokedKeyError, KeyExpiredError: The origin key.
        BadSignatureError: The header signature does not verify.
        DigestMismatchError: The body is not the one the header names.
        NotYetValidError: Created further in the future than the allowed skew.
        ExpiredError: The message has expired at ``now``.
    """
    if isinstance(envelope, Envelope):
        env = envelope
        if len(env.to_bytes()) > limits.max_envelope_bytes:
            raise TooLargeError(f"envelope exceeds the limit of {limits.max_envelope_bytes} bytes")
    else:
        env = Envelope.from_bytes(envelope, limits=limits)
    return _verify_parsed(env, roster, now, limits)


def _verify_parsed(env: Envelope, roster: Roster, now: int, limits: Limits) -> Header:
    """:func:`verify_header` for an envelope whose size is already checked."""
    header = env.header
    public = roster.check_signing_key(header.origin, header.origin_key, now)
    roster.check_signing_key(header.origin, header.origin_key, min(header.created, now))
    verify_signature(public, DOMAIN_ENVELOPE_HEADER, env.header_bytes, env.signature)
    if hashlib.sha256(env.body).digest() != header.body_digest:
        raise DigestMismatchError("body does not match the signed body_digest")
    if header.created > now + limits.max_clock_skew_ms:
        raise NotYetValidError(f"message created {header.created - now} ms in the future")
    if now >= header.expires:
        raise ExpiredError(f"message expired at {header.expires}")
    if not roster.all_nodes(header.recipients):
        for r in header.recipients:
            if roster.member(r).kind != KIND_NODE:
                raise UnknownMemberError(f"recipient {r} is not an agency node")
    return header


def open_envelope(envelope: Envelope | bytes, my_keys: MemberKeys, roster: Roster, now: int, *, limits: Limits = DEFAULT_LIMITS) -> Opened:
    """Verify an envelope and decrypt exactly what this recipient's tier allows.

    Args:
        envelope: The envelope or its bytes.
        my_keys: This recipient's secret keys.
        roster: The roster in force.
        now: Current time, unix ms.
        limits: Size and count limits.

    Returns:
        The opened alert: visible sections, withheld section ids, the manifest
        and its origin signature (forwardable proof of content).

    Raises:
        NotRecipientError: ``my_keys`` is not among the recipients.
        DecryptError: Anything wrong past the header, deliberately opaque.
        HeliographError: Any error :func:`verify_header` raises.
    """
    if isinstance(envelope, Envelope):
        env = envelope
        header = verify_header(env, roster, now, limits=limits)
    else:
        env = Envelope.from_bytes(envelope, limits=limits)
        header = _verify_parsed(env, roster, now, limits)
    return open_verified(env, header, my_keys, roster, limits=limits)


open = open_envelope  # noqa: A001 - the spec's name for the operation: ``envelope.open(...)``
