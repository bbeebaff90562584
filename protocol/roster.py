"""The federation roster: the signed document every party trusts.

In the spirit of TUF root metadata, a roster lists the federation's members
(nodes and gateways) with their keys, routes and log keys, plus the roster
authorities and a threshold *m* of *n*. A roster is trusted only when *m*
distinct authorities have signed it; a new version is trusted only when it is
signed by a threshold of the *previous* version's authorities **and** by a
threshold of its own, so neither a single compromised key nor a set of newly
introduced authorities can rewrite the federation.

Keys carry validity windows and an optional revocation time, so every lookup
answers "was key K of member M valid at time T". Times are unix milliseconds.

This module holds the roster document (:class:`Roster`), its authorities and
the signed form whose thresholds make it trusted (:class:`SignedRoster`).
Members and their keys live in :mod:`protocol.roster_member`; their names are
re-exported here, so ``from protocol.roster import ...`` stays the one import
callers need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import nacl.signing

from protocol import encoding, fields
from protocol.errors import BadSignatureError, ExpiredError, MalformedError, RosterError, UnknownMemberError
from protocol.keys import ALG_ED25519, DOMAIN_ROSTER, key_id, signed_message, verify_signature
from protocol.roster_member import KIND_GATEWAY, KIND_NODE, MAX_KEYS, Member, RosterKey

__all__ = [
    "KIND_GATEWAY",
    "KIND_NODE",
    "MAX_AUTHORITIES",
    "MAX_KEYS",
    "MAX_MEMBERS",
    "MAX_ROSTER_BYTES",
    "VERSION",
    "Authority",
    "Member",
    "Roster",
    "RosterKey",
    "SignedRoster",
]

VERSION = 1
MAX_MEMBERS = 4096
MAX_AUTHORITIES = 64
MAX_ROSTER_BYTES = 4 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Authority:
    """A roster authority: one Ed25519 key that may sign rosters."""

    id: str
    public: bytes

    def __post_init__(self) -> None:
        fields.member_id("authority.id", self.id)
        fields.fixed_bytes("authority.public", self.public, 32)

    @property
    def key_id(self) -> bytes:
        return key_id(ALG_ED25519, self.public)


@dataclass(frozen=True, slots=True, kw_only=True)
class Roster:
    """The signed content of one roster version (what authorities sign)."""

    federation: str
    version: int
    issued: int
    expires: int
    threshold: int
    authorities: tuple[Authority, ...]
    members: tuple[Member, ...]
    _index: dict[str, Member] = field(init=False, repr=False, compare=False)
    _node_ids: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.member_id("federation", self.federation)
        if type(self.version) is not int or self.version < 1:
            raise MalformedError("roster version must be a positive integer")
        fields.timestamp("issued", self.issued)
        fields.timestamp("expires", self.expires)
        if self.expires <= self.issued:
            raise MalformedError("roster expires must be later than issued")
        if not 1 <= len(self.authorities) <= MAX_AUTHORITIES:
            raise MalformedError(f"a roster needs 1..{MAX_AUTHORITIES} authorities")
        if type(self.threshold) is not int or not 1 <= self.threshold <= len(self.authorities):
            raise MalformedError("threshold must be between 1 and the number of authorities")
        fields.sorted_unique("authorities", tuple(a.id for a in self.authorities))
        if len({a.key_id for a in self.authorities}) != len(self.authorities):
            raise MalformedError("two authorities share a key")
        if len(self.members) > MAX_MEMBERS:
            raise MalformedError(f"more than {MAX_MEMBERS} members")
        fields.sorted_unique("members", tuple(m.id for m in self.members))
        by_id = {m.id: m for m in self.members}
        for member in self.members:
            if member.home_gateway is not None:
                home = by_id.get(member.home_gateway)
                if home is None or home.kind != KIND_GATEWAY:
                    raise MalformedError(f"member {member.id}: home_gateway {member.home_gateway} is not a gateway in this roster")
        object.__setattr__(self, "_index", by_id)
        object.__setattr__(self, "_node_ids", frozenset(m.id for m in self.members if m.kind == KIND_NODE))

    def all_nodes(self, member_ids: tuple[str, ...]) -> bool:
        """True if every id names an agency node of this roster (one set operation)."""
        return self._node_ids.issuperset(member_ids)

    def member(self, member_id: str) -> Member:
        """Return the member called ``member_id``.

        Raises:
            UnknownMemberError: No such member.
        """
        found = self._index.get(member_id)
        if found is not None:
            return found
        raise UnknownMemberError(f"{member_id!r} is not a member of federation {self.federation}")

    def check_signing_key(self, member_id: str, kid: bytes, at: int) -> bytes:
        """Answer "was signing key ``kid`` of ``member_id`` valid at ``at``".

        Returns:
            The 32-byte Ed25519 public key.

        Raises:
            UnknownMemberError: No such member.
            UnknownKeyError: The member has no such key.
            RevokedKeyError: The key was revoked at or before ``at``.
            KeyExpiredError: ``at`` is outside the key's validity window.
        """
        key = self.member(member_id).signing_key(kid)
        key.check_valid_at(f"signing key {kid.hex()} of {member_id}", at)
        return key.public

    def gateways(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.kind == KIND_GATEWAY)

    def nodes(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.kind == KIND_NODE)

    def to_bytes(self) -> bytes:
        return encoding.encode(
            {
                "v": VERSION,
                "federation": self.federation,
                "version": self.version,
                "issued": self.issued,
                "expires": self.expires,
                "threshold": self.threshold,
                "authorities": [{"id": a.id, "public": a.public} for a in self.authorities],
                "members": [m.to_wire() for m in self.members],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Roster:
        """Parse the signed roster body.

        Raises:
            MalformedError: Anything wrong with the bytes or the model.
            TooLargeError: Input over the roster size limit.
        """
        m = fields.check_keys(
            "roster",
            encoding.decode(data, max_size=MAX_ROSTER_BYTES),
            frozenset({"v", "federation", "version", "issued", "expires", "threshold", "authorities", "members"}),
            version=VERSION,
        )
        authorities = []
        for i, a in enumerate(fields.array("authorities", m["authorities"], MAX_AUTHORITIES)):
            am = fields.check_keys(f"authorities[{i}]", a, frozenset({"id", "public"}))
            authorities.append(Authority(id=am["id"], public=am["public"]))
        members = tuple(Member.from_wire(f"members[{i}]", item) for i, item in enumerate(fields.array("members", m["members"], MAX_MEMBERS)))
        return cls(
            federation=m["federation"],
            version=m["version"],
            issued=m["issued"],
            expires=m["expires"],
            threshold=m["threshold"],
            authorities=tuple(authorities),
            members=members,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedRoster:
    """A roster body as the exact signed bytes, with authority signatures."""

    body: bytes
    signatures: tuple[tuple[bytes, bytes], ...]

    def __post_init__(self) -> None:
        for kid, sig in self.signatures:
            fields.fixed_bytes("signature key_id", kid, 8)
            fields.fixed_bytes("signature", sig, 64)
        fields.sorted_unique("signatures", tuple(kid for kid, _ in self.signatures))

    @property
    def roster(self) -> Roster:
        return Roster.from_bytes(self.body)

    @classmethod
    def sign(cls, roster: Roster, authority_keys: Iterable[nacl.signing.SigningKey]) -> SignedRoster:
        """Sign ``roster`` with each of ``authority_keys``."""
        body = roster.to_bytes()
        return cls(body=body, signatures=()).add_signatures(authority_keys)

    def add_signatures(self, authority_keys: Iterable[nacl.signing.SigningKey]) -> SignedRoster:
        """Return a copy with more authority signatures (for m-of-n ceremonies)."""
        sigs = dict(self.signatures)
        for key in authority_keys:
            sigs[key_id(ALG_ED25519, bytes(key.verify_key))] = key.sign(signed_message(DOMAIN_ROSTER, self.body)).signature
        return SignedRoster(body=self.body, signatures=tuple(sorted(sigs.items())))

    def to_bytes(self) -> bytes:
        return encoding.encode({"v": VERSION, "roster": self.body, "signatures": [{"key_id": k, "sig": s} for k, s in self.signatures]})

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedRoster:
        """Parse a signed roster file.

        Raises:
            MalformedError: Anything wrong with the bytes.
            TooLargeError: Input over the roster size limit.
        """
        m = fields.check_keys("signed roster", encoding.decode(data, max_size=MAX_ROSTER_BYTES), frozenset({"v", "roster", "signatures"}), version=VERSION)
        sigs = []
        for i, item in enumerate(fields.array("signatures", m["signatures"], MAX_AUTHORITIES)):
            sm = fields.check_keys(f"signatures[{i}]", item, frozenset({"key_id", "sig"}))
            sigs.append((sm["key_id"], sm["sig"]))
        signed = cls(body=fields.typed("roster", m["roster"], bytes), signatures=tuple(sigs))
        signed.roster  # noqa: B018 - parse eagerly so a bad body fails here
        return signed

    def _count_valid(self, authorities: Sequence[Authority]) -> int:
        by_kid = {a.key_id: a for a in authorities}
        valid = 0
        for kid, sig in self.signatures:
            authority = by_kid.get(kid)
            if authority is None:
                continue
            try:
                verify_signature(authority.public, DOMAIN_ROSTER, self.body, sig)
            except BadSignatureError:
                continue
            valid += 1
        return valid

    def verify_trusted(self, now: int) -> Roster:
        """Verify a roster pinned out of band (the first one a party trusts).

        Returns:
            The verified roster.

        Raises:
            RosterError: Fewer than the threshold of its own authorities signed.
            ExpiredError: The roster has expired at ``now``.
        """
        roster = self.roster
        got = self._count_valid(roster.authorities)
        if got < roster.threshold:
            raise RosterError(f"roster v{roster.version} has {got} valid authority signatures, needs {roster.threshold}")
        if now >= roster.expires:
            raise ExpiredError(f"roster v{roster.version} expired at {roster.expires}")
        return roster

    def verify_update(self, trusted: Roster, now: int) -> Roster:
        """Verify the next roster version against the currently trusted one.

        Returns:
            The new verified roster.

        Raises:
            RosterError: Wrong federation, not the next version, or fewer than
                the threshold of the previous or of its own authorities signed.
            ExpiredError: The new roster has expired at ``now``.
        """
        new = self.roster
        if new.federation != trusted.federation:
            raise RosterError(f"roster is for federation {new.federation}, not {trusted.federation}")
        if new.version != trusted.version + 1:
            raise RosterError(f"roster v{new.version} does not follow trusted v{trusted.version}")
        if new.issued < trusted.issued:
            raise RosterError(f"roster v{new.version} was issued before v{trusted.version}")
        got = self._count_valid(trusted.authorities)
        if got < trusted.threshold:
            raise RosterError(f"roster v{new.version} has {got} signatures from the v{trusted.version} authorities, needs {trusted.threshold}")
        return self.verify_trusted(now)
