"""Roster members and their keys: who belongs to the federation, and which key was valid when.

A :class:`Member` is one party of the federation, an agency node or a gateway,
with its endpoint, its transparency-log verifier key, its home gateway (nodes
only) and two sets of :class:`RosterKey`: Ed25519 signing keys and X25519
encryption keys. Keys carry validity windows and an optional revocation time,
so every lookup answers "was key K of member M valid at time T". Times are unix
milliseconds.

:class:`protocol.roster.Roster` lists the members and checks the rules that span
them (sorted unique ids, every node's home gateway is a gateway of the same
roster); :mod:`protocol.roster` re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol import fields
from protocol.errors import KeyExpiredError, MalformedError, RevokedKeyError, UnknownKeyError
from protocol.keys import ALG_ED25519, ALG_X25519, key_id, log_origin, parse_vkey
from protocol.sealing import check_x25519_public

KIND_NODE = "node"
KIND_GATEWAY = "gateway"
MAX_KEYS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterKey:
    """One public key of a member with its validity window."""

    public: bytes
    not_before: int
    not_after: int
    revoked_at: int | None = None

    def __post_init__(self) -> None:
        fields.fixed_bytes("key.public", self.public, 32)
        fields.timestamp("key.not_before", self.not_before)
        fields.timestamp("key.not_after", self.not_after)
        if self.not_after <= self.not_before:
            raise MalformedError("key.not_after must be later than key.not_before")
        if self.revoked_at is not None:
            fields.timestamp("key.revoked_at", self.revoked_at)

    def check_valid_at(self, what: str, at: int) -> None:
        """Raise unless this key was valid at ``at``.

        Raises:
            RevokedKeyError: Revoked at or before ``at``.
            KeyExpiredError: ``at`` lies outside [not_before, not_after).
        """
        if self.revoked_at is not None and at >= self.revoked_at:
            raise RevokedKeyError(f"{what} was revoked at {self.revoked_at}")
        if not self.not_before <= at < self.not_after:
            raise KeyExpiredError(f"{what} is valid only in [{self.not_before}, {self.not_after})")

    def to_wire(self, alg: int) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "key_id": key_id(alg, self.public),
            "public": self.public,
            "not_before": self.not_before,
            "not_after": self.not_after,
        }
        if self.revoked_at is not None:
            doc["revoked_at"] = self.revoked_at
        return doc

    @classmethod
    def from_wire(cls, where: str, value: Any, alg: int) -> RosterKey:
        m = fields.check_keys(where, value, frozenset({"key_id", "public", "not_before", "not_after"}), frozenset({"revoked_at"}))
        key = cls(
            public=m["public"] if type(m["public"]) is bytes else b"", not_before=m["not_before"], not_after=m["not_after"], revoked_at=m.get("revoked_at")
        )
        if m["key_id"] != key_id(alg, key.public):
            raise MalformedError(f"{where}: key_id does not match the public key")
        return key


def _keys_to_wire(keys: tuple[RosterKey, ...], alg: int) -> list[dict[str, Any]]:
    return [k.to_wire(alg) for k in keys]


def _keys_from_wire(where: str, value: Any, alg: int) -> tuple[RosterKey, ...]:
    return tuple(RosterKey.from_wire(f"{where}[{i}]", item, alg) for i, item in enumerate(fields.array(where, value, MAX_KEYS)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """A federation member: a node (agency) or a gateway."""

    id: str
    kind: str
    endpoint: str
    log_vkey: str
    signing_keys: tuple[RosterKey, ...]
    encryption_keys: tuple[RosterKey, ...]
    home_gateway: str | None = None
    display_name: str = ""
    _signing_by_id: dict[bytes, RosterKey] = field(init=False, repr=False, compare=False)
    _encryption_ids: dict[bytes, bytes] = field(init=False, repr=False, compare=False)
    """X25519 public key -> key id."""

    def __post_init__(self) -> None:
        fields.member_id("member.id", self.id)
        fields.one_of("member.kind", self.kind, (KIND_NODE, KIND_GATEWAY))
        if type(self.endpoint) is not str or not self.endpoint.startswith(("http://", "https://")) or len(self.endpoint) > 512:
            raise MalformedError(f"member {self.id}: endpoint must be an http(s) URL")
        if type(self.log_vkey) is not str or parse_vkey(self.log_vkey)[0] != log_origin(self.id):
            raise MalformedError(f"member {self.id}: log_vkey must be named {log_origin(self.id)}")
        if type(self.display_name) is not str or len(self.display_name) > 200:
            raise MalformedError(f"member {self.id}: display_name must be text of at most 200 characters")
        if not self.signing_keys or not self.encryption_keys:
            raise MalformedError(f"member {self.id}: needs at least one signing and one encryption key")
        for enc in self.encryption_keys:
            check_x25519_public(f"member {self.id}: encryption key", enc.public)
        for keys, alg in ((self.signing_keys, ALG_ED25519), (self.encryption_keys, ALG_X25519)):
            ids = [key_id(alg, k.public) for k in keys]
            if len(set(ids)) != len(ids):
                raise MalformedError(f"member {self.id}: duplicate key")
            if alg == ALG_ED25519:
                object.__setattr__(self, "_signing_by_id", dict(zip(ids, keys, strict=True)))
            else:
                object.__setattr__(self, "_encryption_ids", {k.public: i for i, k in zip(ids, keys, strict=True)})
        if self.kind == KIND_NODE:
            fields.member_id(f"member {self.id}: home_gateway", self.home_gateway)
        elif self.home_gateway is not None:
            raise MalformedError(f"member {self.id}: a gateway has no home_gateway")

    def signing_key(self, kid: bytes) -> RosterKey:
        """Return the signing key with id ``kid``.

        Raises:
            UnknownKeyError: The member has no such key.
        """
        key = self._signing_by_id.get(kid)
        if key is not None:
            return key
        raise UnknownKeyError(f"member {self.id} has no signing key {kid.hex()}")

    def encryption_key_id(self, public: bytes) -> bytes:
        """The key id of one of this member's encryption keys (computed once, at roster load)."""
        return self._encryption_ids[public]

    def encryption_key_at(self, at: int) -> RosterKey:
        """Return the encryption key to seal to at ``at``: the newest valid one.

        Raises:
            UnknownKeyError: No encryption key of this member is valid at ``at``.
        """
        valid = [k for k in self.encryption_keys if k.not_before <= at < k.not_after and (k.revoked_at is None or at < k.revoked_at)]
        if not valid:
            raise UnknownKeyError(f"member {self.id} has no encryption key valid at {at}")
        return max(valid, key=lambda k: k.not_before)

    def to_wire(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "log_vkey": self.log_vkey,
            "signing_keys": _keys_to_wire(self.signing_keys, ALG_ED25519),
            "encryption_keys": _keys_to_wire(self.encryption_keys, ALG_X25519),
            "display_name": self.display_name,
        }
        if self.home_gateway is not None:
            doc["home_gateway"] = self.home_gateway
        return doc

    @classmethod
    def from_wire(cls, where: str, value: Any) -> Member:
        m = fields.check_keys(
            where,
            value,
            frozenset({"id", "kind", "endpoint", "log_vkey", "signing_keys", "encryption_keys", "display_name"}),
            frozenset({"home_gateway"}),
        )
        return cls(
            id=m["id"],
            kind=m["kind"],
            endpoint=m["endpoint"],
            log_vkey=fields.typed(f"{where}.log_vkey", m["log_vkey"], str),
            signing_keys=_keys_from_wire(f"{where}.signing_keys", m["signing_keys"], ALG_ED25519),
            encryption_keys=_keys_from_wire(f"{where}.encryption_keys", m["encryption_keys"], ALG_X25519),
            home_gateway=m.get("home_gateway"),
            display_name=m["display_name"],
        )
