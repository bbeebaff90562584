"""Opening an envelope: parse the body, unwrap one stanza, decrypt exactly one tier.

:func:`open_verified` runs after :func:`protocol.envelope.verify_header` has
checked the header signature and the body digest. It parses the body (every
field type-checked before anything is decrypted), opens this recipient's
sealed-box stanza, checks the manifest key against the body's commitment,
verifies the origin's signature on the manifest, then decrypts only the
sections the recipient's tier lists, checking each against its key commitment,
size and digest. Past the verified header every failure is the same opaque
:class:`~protocol.errors.DecryptError`. :mod:`protocol.envelope` re-exports
:class:`Opened` and :func:`open_verified`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from protocol import encoding, fields
from protocol.envelope_manifest import MANIFEST_AD, SECTION_AD, VERSION, Manifest
from protocol.errors import DecryptError, HeliographError, MalformedError, NotRecipientError
from protocol.header import Envelope, Header
from protocol.keys import DOMAIN_MANIFEST, MemberKeys, verify_signature
from protocol.limits import DEFAULT_LIMITS, Limits
from protocol.roster import Roster
from protocol.sealing import AEAD_KEY_SIZE, AEAD_NONCE_SIZE, aead_open, key_commitment, open_box, section_digest


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


def open_verified(envelope: Envelope, header: Header, my_keys: MemberKeys, roster: Roster, *, limits: Limits = DEFAULT_LIMITS) -> Opened:
    """Decrypt an envelope whose header the caller has just verified with :func:`~protocol.envelope.verify_header`.

    For a hop that verifies every envelope before deciding what to do with it: it
    saves the second signature check :func:`~protocol.envelope.open_envelope` would make. ``header``
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
        encoding.decode(aead_open(manifest_key, nonce, ciphertext, MANIFEST_AD + context), max_size=max_size),
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
        plaintext = aead_open(key, nonce, ciphertext, SECTION_AD + context + sid.encode())
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
