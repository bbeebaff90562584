"""The inner model of an envelope: recipient tiers and the origin-signed manifest.

:func:`protocol.envelope.seal` takes :class:`Tier` values and writes a
:class:`Manifest` into the body, encrypted under the manifest key;
:mod:`protocol.envelope_open` parses it back with :meth:`Manifest.from_bytes`
and checks that it matches the verified header and the recipient's stanza. The
inner version and the associated-data labels are defined here once, for both
directions, so the sealer and the opener cannot drift apart.
:mod:`protocol.envelope` re-exports these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from protocol import encoding, fields
from protocol.errors import MalformedError
from protocol.header import MESSAGE_ID_SIZE
from protocol.limits import DEFAULT_LIMITS, Limits

VERSION = 1
"""Version of the body, the sealed manifest, the manifest and each stanza."""
SECTION_AD = b"heliograph/section/v1\x00"
"""Associated-data prefix of a section ciphertext; the context digest and section id follow."""
MANIFEST_AD = b"heliograph/manifest-ct/v1\x00"
"""Associated-data prefix of the manifest ciphertext; the context digest follows."""


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
