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
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol import encoding, fields
from protocol.errors import (
    DecryptError,
    DigestMismatchError,
    ExpiredError,
    HeliographError,
    MalformedError,
    NotRecipientError,
    NotYetValidError,
    TooLargeError,
    UnknownMemberError,
)
from protocol.header import MESSAGE_ID_SIZE, Envelope, Header
from protocol.keys import DOMAIN_ENVELOPE_HEADER, DOMAIN_MANIFEST, MemberKeys, Rng, verify_signature
from protocol.limits import DEFAULT_LIMITS, Limits
from protocol.roster import KIND_NODE, Roster
from protocol.sealing import AEAD_KEY_SIZE, AEAD_NONCE_SIZE, aead_open, aead_seal, key_commitment, open_box, seal_box, section_digest

VERSION = 1
_SECTION_AD = b"heliograph/section/v1\x00"
_MANIFEST_AD = b"heliograph/manifest-ct/v1\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class Tier:
    """A recipient tier: who is in it and which sections its members may open."""

    name: str
    sections: tuple[str, ...]
    recipients: tuple[str, ...]

    def __post_init__(self) -> None:
        fields.short_name("tier.name", self.name)
        if not self.sections or not self.recipients:
            raise MalformedError(f"tier {self.name}: needs at least one section and one recipient")
        for s in self.sections:
            fields.short_name(f"tier {self.name}: section", s)
        for r in self.recipients:
            fields.member_id(f"tier {self.name}: recipient", r)
        if len(set(self.sections)) != len(self.sections) or len(set(self.recipients)) != len(self.recipients):
            raise MalformedError(f"tier {self.name}: duplicate section or recipient")


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """The origin-signed inner manifest, visible only after decryption."""

    message_id: bytes
    origin: str
    context: bytes
    tiers: Mapping[str, tuple[str, ...]]
    recipients: Mapping[str, str]
    sections: Mapping[str, tuple[int, bytes, bytes]]
    """section id -> (plaintext size, keyed plaintext digest, key commitment)."""

    def to_bytes(self) -> bytes:
        return encoding.encode_trusted(  # keys in canonical (sorted) order
            {
                "context": self.context,
                "message_id": self.message_id,
                "origin": self.origin,
                "recipients": dict(sorted(self.recipients.items())),
                "sections": {sid: {"digest": d, "key_commit": c, "size": s} for sid, (s, d, c) in sorted(self.sections.items())},
                "tiers": {name: list(secs) for name, secs in sorted(self.tiers.items())},
                "v": VERSION,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Manifest:
        """Parse a manifest and check it is self-consistent.

        Raises:
            MalformedError: Anything wrong with the bytes, or a tier naming an
                unknown section, or a recipient in an unknown tier.
        """
        m = fields.check_keys(
            "manifest",
            encoding.decode(data, max_size=limits.max_envelope_bytes),
            frozenset({"v", "message_id", "origin", "context", "tiers", "recipients", "sections"}),
            version=VERSION,
        )
        sections = {}
        for sid, entry in fields.string_map("sections", m["sections"], limits.max_sections).items():
            e = fields.check_keys(f"section {sid}", entry, frozenset({"size", "digest", "key_commit"}))
            sections[fields.short_name("section", sid)] = (
                fields.timestamp("size", e["size"]),
                fields.fixed_bytes("digest", e["digest"], 32),
                fields.fixed_bytes("key_commit", e["key_commit"], 32),
            )
        tiers = {}
        for name, secs in fields.string_map("tiers", m["tiers"], limits.max_tiers).items():
            listed = fields.sorted_unique(f"tier {name}", tuple(fields.short_name("section", s) for s in fields.array("tier", secs, limits.max_sections)))
            if not listed or not set(listed) <= sections.keys():
                raise MalformedError(f"tier {name} must list known sections")
            tiers[fields.short_name("tier", name)] = listed
        recipients = {}
        listed_recipients = fields.string_map("recipients", m["recipients"], limits.max_recipients)
        fields.member_ids("recipient", tuple(listed_recipients))
        for member, tier in listed_recipients.items():
            if fields.short_name("tier", tier) not in tiers:
                raise MalformedError(f"recipient {member} is in an unknown tier")
            recipients[member] = tier
        return cls(
            message_id=fields.fixed_bytes("message_id", m["message_id"], MESSAGE_ID_SIZE),
            origin=fields.member_id("origin", m["origin"]),
            context=fields.fixed_bytes("context", m["context"], 32),
            tiers=tiers,
            recipients=recipients,
            sections=sections,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened:
    """What one recipient can see of an envelope."""

    header: Header
    tier: str
    sections: Mapping[str, bytes]
    withheld: tuple[str, ...]
    manifest: Manifest
    manifest_bytes: bytes
    manifest_signature: bytes


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
        ct = aead_seal(section_keys[sid], nonce, sections[sid], _SECTION_AD + context + sid.encode())
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
                "ct": aead_seal(manifest_key, manifest_nonce, sealed_manifest, _MANIFEST_AD + context),
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


@dataclass(frozen=True, slots=True)
class _Body:
    """The parsed body: every field type-checked, nothing decrypted."""

    manifest: tuple[bytes, bytes, bytes]
    """(key commitment, nonce, ciphertext) of the sealed manifest."""
    sections: dict[str, tuple[bytes, bytes]]
    """section id -> (nonce, ciphertext)."""
    stanzas: dict[str, tuple[bytes, bytes]]
    """recipient -> (X25519 key id, sealed box)."""


_STANZA_FIELDS = frozenset({"recipient", "key_id", "box"})


def _parse_body(data: bytes, limits: Limits) -> _Body:
    m = fields.check_keys(
        "body", encoding.decode(data, max_size=limits.max_envelope_bytes), frozenset({"v", "manifest", "sections", "stanzas"}), version=VERSION
    )
    mf = fields.check_keys("body.manifest", m["manifest"], frozenset({"commit", "nonce", "ct"}))
    manifest = (fields.fixed_bytes("commit", mf["commit"], 32), fields.fixed_bytes("nonce", mf["nonce"], AEAD_NONCE_SIZE), fields.typed("ct", mf["ct"], bytes))
    sections: dict[str, tuple[bytes, bytes]] = {}
    for i, item in enumerate(fields.array("body.sections", m["sections"], limits.max_sections)):
        sm = fields.check_keys(f"body.sections[{i}]", item, frozenset({"id", "nonce", "ct"}))
        sid = fields.short_name("section id", sm["id"])
        if sections and sid <= max(sections):
            raise MalformedError("body.sections: must be sorted by id with no duplicates")
        sections[sid] = (fields.fixed_bytes("nonce", sm["nonce"], AEAD_NONCE_SIZE), fields.typed("ct", sm["ct"], bytes))
    stanzas: dict[str, tuple[bytes, bytes]] = {}
    prev = ""
    for i, item in enumerate(fields.array("body.stanzas", m["stanzas"], limits.max_recipients)):
        if type(item) is not dict or item.keys() != _STANZA_FIELDS:
            fields.check_keys(f"body.stanzas[{i}]", item, _STANZA_FIELDS)
        rid = item["recipient"]
        # Not checked as a member id here: the caller requires the stanza recipients to equal the
        # header's (validated, sorted) recipients, which implies it.
        if type(rid) is not str or rid <= prev:
            raise MalformedError("body.stanzas: must be sorted by recipient with no duplicates")
        stanzas[rid] = (fields.fixed_bytes("key_id", item["key_id"], 8), fields.typed("box", item["box"], bytes))
        prev = rid
    return _Body(manifest=manifest, sections=sections, stanzas=stanzas)


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


def open_verified(envelope: Envelope, header: Header, my_keys: MemberKeys, roster: Roster, *, limits: Limits = DEFAULT_LIMITS) -> Opened:
    """Decrypt an envelope whose header the caller has just verified with :func:`verify_header`.

    For a hop that verifies every envelope before deciding what to do with it: it
    saves the second signature check :func:`open_envelope` would make. ``header``
    must be the value ``verify_header(envelope, ...)`` returned.

    Raises:
        MalformedError: ``header`` is not this envelope's header.
        NotRecipientError: ``my_keys`` is not among the recipients.
        DecryptError: Anything wrong past the header, deliberately opaque.
    """
    if header != envelope.header:
        raise MalformedError("open_verified needs the header verify_header returned for this envelope")
    me = my_keys.member_id
    if me not in header.recipients:
        raise NotRecipientError(f"{me} is not a recipient of this message")
    try:
        return _open_verified(envelope, header, my_keys, roster, limits)
    except DecryptError:
        raise
    except (HeliographError, TypeError, KeyError, ValueError):
        # Past the verified header only the origin can have produced the bytes;
        # whatever is wrong, the answer is the same opaque error.
        raise DecryptError() from None


def _open_verified(env: Envelope, header: Header, my_keys: MemberKeys, roster: Roster, limits: Limits) -> Opened:
    body = _parse_body(env.body, limits)
    me = my_keys.member_id
    if tuple(body.stanzas) != header.recipients:
        raise DecryptError()
    stanza_key_id, box = body.stanzas[me]
    if stanza_key_id != my_keys.encryption_key_id:
        raise DecryptError()
    max_size = limits.max_envelope_bytes
    stanza = fields.check_keys(
        "stanza",
        encoding.decode(open_box(my_keys.encryption_public, my_keys.encryption_secret, box), max_size=max_size),
        frozenset({"v", "message_id", "recipient", "tier", "manifest_key", "keys"}),
        version=VERSION,
    )
    if stanza["message_id"] != header.message_id or stanza["recipient"] != me:
        raise DecryptError()
    context = header.context_digest
    manifest_key = fields.fixed_bytes("manifest_key", stanza["manifest_key"], AEAD_KEY_SIZE)
    commit, nonce, ciphertext = body.manifest
    if key_commitment(manifest_key) != commit:
        raise DecryptError()
    sealed = fields.check_keys(
        "sealed manifest",
        encoding.decode(aead_open(manifest_key, nonce, ciphertext, _MANIFEST_AD + context), max_size=max_size),
        frozenset({"v", "manifest", "sig"}),
        version=VERSION,
    )
    manifest_bytes = fields.typed("manifest", sealed["manifest"], bytes)
    signature = fields.fixed_bytes("sig", sealed["sig"], 64)
    verify_signature(roster.check_signing_key(header.origin, header.origin_key, header.created), DOMAIN_MANIFEST, manifest_bytes, signature)
    manifest = Manifest.from_bytes(manifest_bytes, limits=limits)
    tier = fields.short_name("tier", stanza["tier"])
    keys = fields.string_map("keys", stanza["keys"], limits.max_sections)
    if (manifest.message_id, manifest.origin, manifest.context) != (header.message_id, header.origin, context):
        raise DecryptError()
    if tuple(sorted(manifest.recipients)) != header.recipients or manifest.recipients[me] != tier:
        raise DecryptError()
    if set(manifest.sections) != set(body.sections) or tuple(sorted(keys)) != manifest.tiers[tier]:
        raise DecryptError()
    visible: dict[str, bytes] = {}
    for sid in sorted(keys):
        size, digest, commit = manifest.sections[sid]
        key = fields.fixed_bytes("section key", keys[sid], AEAD_KEY_SIZE)
        if key_commitment(key) != commit:
            raise DecryptError()
        nonce, ciphertext = body.sections[sid]
        plaintext = aead_open(key, nonce, ciphertext, _SECTION_AD + context + sid.encode())
        if len(plaintext) != size or section_digest(key, plaintext) != digest:
            raise DecryptError()
        visible[sid] = plaintext
    return Opened(
        header=header,
        tier=tier,
        sections=visible,
        withheld=tuple(sorted(set(body.sections) - set(visible))),
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        manifest_signature=signature,
    )


open = open_envelope  # noqa: A001 - the spec's name for the operation: ``envelope.open(...)``
