"""The handlers behind ``heliograph roster ...``: each edits, signs, publishes or shows a roster file.

:mod:`node.roster_cli` parses the command line and calls one ``cmd_*`` function here with the
parsed ``argparse.Namespace`` (its docstring walks through drafts and published rosters). The
shared steps at the top read and check drafts, so every command refuses the same things: an
edit of a signed draft, a signature by no known authority, a body changed after signing, a
roster beyond a parser limit. Handlers print only public keys and key ids, and return the exit
status.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import nacl.signing

from gateway.clock import Clock
from gateway.keyfile import read_public_identity, read_secret_keys
from gateway.roster_watch import RosterFileError, read_signed_roster, write_file_atomic
from protocol.errors import BadSignatureError, ConflictError, MalformedError, RosterError, UnknownKeyError, UnknownMemberError
from protocol.keys import ALG_ED25519, ALG_X25519, DOMAIN_ROSTER, PublicIdentity, key_id, verify_signature
from protocol.roster import KIND_GATEWAY, KIND_NODE, Authority, Member, Roster, RosterKey, SignedRoster


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- shared steps ------------------------------------------------------------------------


def _now(args: argparse.Namespace) -> int:
    clock: Clock = args.clock
    return clock.now_ms()


def _check_out_free(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise RosterFileError(f"{path} already exists", hint="Pass --force to replace it.")


def _identity(path: str) -> PublicIdentity:
    return read_public_identity(Path(path))


def _checked(roster: Roster) -> Roster:
    """Round-trip through the wire form, so every parser limit (e.g. 16 keys a member) holds."""
    Roster.from_bytes(roster.to_bytes())
    return roster


def _trusted_previous(path: str) -> Roster:
    """A published roster to build on: it must carry a threshold of its own authorities (expiry aside)."""
    signed = read_signed_roster(Path(path))
    signed.verify_trusted(signed.roster.issued)  # now = issued: checks the threshold, never the expiry
    return signed.roster


def _valid_signers(signed: SignedRoster, authorities: Iterable[Authority]) -> list[str]:
    by_kid = {a.key_id: a for a in authorities}
    names = []
    for kid, sig in signed.signatures:
        authority = by_kid.get(kid)
        if authority is None:
            continue
        try:
            verify_signature(authority.public, DOMAIN_ROSTER, signed.body, sig)
        except BadSignatureError:
            continue
        names.append(authority.id)
    return names


def _check_signatures(signed: SignedRoster, previous: Roster | None) -> None:
    """Refuse a draft carrying a signature that is not a valid one by a known authority.

    Raises:
        BadSignatureError: The body changed after an authority signed it.
        RosterError: A signature by a key that is no authority of this version (or of ``previous``).
    """
    known = {a.key_id: a for a in previous.authorities} if previous is not None else {}
    known.update({a.key_id: a for a in signed.roster.authorities})
    for kid, sig in signed.signatures:
        authority = known.get(kid)
        if authority is None:
            hint = (
                "Pass --previous with the version this draft updates." if previous is None else "Remove the stray signature by starting again from the draft."
            )
            raise RosterError(f"the draft carries a signature by key {kid.hex()}, which is not a known authority", hint=hint)
        try:
            verify_signature(authority.public, DOMAIN_ROSTER, signed.body, sig)
        except BadSignatureError:
            raise BadSignatureError(
                f"the signature of {authority.id} does not match the draft: it was changed after {authority.id} signed",
                hint="Do not edit a draft by hand. Rebuild it from the last agreed version and sign it again.",
            ) from None


def _edit(args: argparse.Namespace, change: Callable[[Roster, int], Roster]) -> Roster:
    """Load the draft, apply ``change(roster, now)``, and write the draft back without signatures."""
    draft = read_signed_roster(Path(args.draft))
    if draft.signatures and not args.discard_signatures:
        raise ConflictError(
            f"draft v{draft.roster.version} already carries {len(draft.signatures)} signature(s), which an edit would invalidate",
            hint="Pass --discard-signatures to edit anyway; every authority must then sign again.",
        )
    roster = _checked(change(draft.roster, _now(args)))
    write_file_atomic(Path(args.out or args.draft), SignedRoster(body=roster.to_bytes(), signatures=()).to_bytes())
    return roster


def _with_member(roster: Roster, member: Member) -> Roster:
    others = [m for m in roster.members if m.id != member.id]
    return replace(roster, members=tuple(sorted([*others, member], key=lambda m: m.id)))


def _new_keys(ident: PublicIdentity, not_before: int, valid_for: int) -> tuple[RosterKey, RosterKey]:
    not_after = not_before + valid_for
    return RosterKey(public=ident.signing_public, not_before=not_before, not_after=not_after), RosterKey(
        public=ident.encryption_public, not_before=not_before, not_after=not_after
    )


# -- commands ----------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out_free(out, args.force)
    now = _now(args)
    idents = [_identity(p) for p in args.authorities]
    authorities = tuple(sorted((Authority(id=i.member_id, public=i.signing_public) for i in idents), key=lambda a: a.id))
    roster = _checked(
        Roster(federation=args.federation, version=1, issued=now, expires=now + args.valid_for, threshold=args.threshold, authorities=authorities, members=())
    )
    write_file_atomic(out, SignedRoster(body=roster.to_bytes(), signatures=()).to_bytes())
    print(f"wrote draft {out}: {roster.federation} v1, {len(authorities)} authorities, threshold {roster.threshold}, expires {_iso(roster.expires)}")
    return 0


def cmd_next(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out_free(out, args.force)
    previous = _trusted_previous(args.source)
    issued = max(_now(args), previous.issued)
    roster = _checked(replace(previous, version=previous.version + 1, issued=issued, expires=issued + args.valid_for))
    write_file_atomic(out, SignedRoster(body=roster.to_bytes(), signatures=()).to_bytes())
    print(f"wrote draft {out}: {roster.federation} v{roster.version} (from v{previous.version}), expires {_iso(roster.expires)}")
    return 0


def cmd_add_member(args: argparse.Namespace) -> int:
    ident = _identity(args.identity)

    def change(roster: Roster, now: int) -> Roster:
        if ident.member_id in {m.id for m in roster.members}:
            raise ConflictError(f"{ident.member_id} is already a member", hint="Use update-member or rotate-key to change it.")
        if args.kind == KIND_NODE and args.home_gateway not in {g.id for g in roster.gateways()}:
            raise MalformedError(f"a node needs --home-gateway naming a gateway of this roster, got {args.home_gateway!r}", hint="Add the gateway first.")
        signing, encryption = _new_keys(ident, args.not_before if args.not_before is not None else now, args.valid_for)
        member = Member(
            id=ident.member_id,
            kind=args.kind,
            endpoint=args.url,
            log_vkey=ident.log_vkey,
            signing_keys=(signing,),
            encryption_keys=(encryption,),
            home_gateway=args.home_gateway if args.kind == KIND_NODE else None,
            display_name=args.display_name,
        )
        return _with_member(roster, member)

    if args.kind == KIND_GATEWAY and args.home_gateway is not None:
        raise MalformedError("a gateway has no --home-gateway")
    roster = _edit(args, change)
    print(f"added {args.kind} {ident.member_id} to draft v{roster.version}; members: {len(roster.members)}")
    return 0


def cmd_update_member(args: argparse.Namespace) -> int:
    def change(roster: Roster, _now: int) -> Roster:
        member = roster.member(args.member)
        if args.home_gateway is not None and member.kind != KIND_NODE:
            raise MalformedError(f"{member.id} is a gateway; only a node has a home gateway")
        updated = replace(
            member,
            endpoint=args.url if args.url is not None else member.endpoint,
            home_gateway=args.home_gateway if args.home_gateway is not None else member.home_gateway,
            display_name=args.display_name if args.display_name is not None else member.display_name,
        )
        return _with_member(roster, updated)

    roster = _edit(args, change)
    print(f"updated {args.member} in draft v{roster.version}")
    return 0


def cmd_remove_member(args: argparse.Namespace) -> int:
    def change(roster: Roster, _now: int) -> Roster:
        roster.member(args.member)
        homed = [m.id for m in roster.nodes() if m.home_gateway == args.member]
        if homed:
            raise ConflictError(f"{args.member} is the home gateway of {', '.join(homed)}", hint="Move or remove those nodes first.")
        return replace(roster, members=tuple(m for m in roster.members if m.id != args.member))

    roster = _edit(args, change)
    print(f"removed {args.member} from draft v{roster.version}; members: {len(roster.members)}")
    return 0


def _retire(keys: tuple[RosterKey, ...], at: int) -> tuple[RosterKey, ...]:
    """Shorten every key still valid after ``at`` to end there (kept, so old signatures still verify)."""
    return tuple(k if k.not_after <= at else replace(k, not_after=max(at, k.not_before + 1)) for k in keys)


def cmd_rotate_key(args: argparse.Namespace) -> int:
    ident = _identity(args.identity)
    if ident.member_id != args.member:
        raise MalformedError(f"{args.identity} is the identity of {ident.member_id}, not {args.member}")

    def change(roster: Roster, now: int) -> Roster:
        member = roster.member(args.member)
        if ident.log_vkey != member.log_vkey and args.log_key is None:
            raise ConflictError(
                f"the new identity of {member.id} has a different log key, and a member has only one",
                hint="Pass --log-key replace (oversight re-pins the log's vkey) or --log-key keep (the member keeps signing its log with the old key).",
            )
        old_ids = {key_id(ALG_ED25519, k.public) for k in member.signing_keys} | {key_id(ALG_X25519, k.public) for k in member.encryption_keys}
        if ident.signing_key_id in old_ids or ident.encryption_key_id in old_ids:
            raise ConflictError(f"{args.identity} holds a key {member.id} already has", hint="Generate new keys with: heliograph keys generate")
        signing, encryption = _new_keys(ident, args.not_before if args.not_before is not None else now, args.valid_for)
        retire_at = now + args.overlap
        return _with_member(
            roster,
            replace(
                member,
                signing_keys=(*_retire(member.signing_keys, retire_at), signing),
                encryption_keys=(*_retire(member.encryption_keys, retire_at), encryption),
                log_vkey=ident.log_vkey if args.log_key == "replace" else member.log_vkey,
            ),
        )

    roster = _edit(args, change)
    print(
        f"rotated {args.member} in draft v{roster.version}: signing key {ident.signing_key_id.hex()}, encryption key {ident.encryption_key_id.hex()};"
        f" the old keys stay valid until {_iso(_now(args) + args.overlap)}"
    )
    return 0


def cmd_revoke_key(args: argparse.Namespace) -> int:
    try:
        kid = bytes.fromhex(args.key_id)
    except ValueError:
        kid = b""
    if len(kid) != 8:
        raise MalformedError(f"--key-id must be 16 hex digits, got {args.key_id!r}")
    outcome: list[str] = []

    def change(roster: Roster, now: int) -> Roster:
        member = roster.member(args.member)
        at = args.at if args.at is not None else now
        revoked: list[int] = []

        def revoke(keys: tuple[RosterKey, ...], alg: int) -> tuple[RosterKey, ...]:
            # A revocation only ever moves earlier: a later time would re-validate a window already revoked.
            out = []
            for k in keys:
                if key_id(alg, k.public) == kid:
                    when = at if k.revoked_at is None else min(k.revoked_at, at)
                    revoked.append(when)
                    out.append(replace(k, revoked_at=when))
                else:
                    out.append(k)
            return tuple(out)

        updated = replace(member, signing_keys=revoke(member.signing_keys, ALG_ED25519), encryption_keys=revoke(member.encryption_keys, ALG_X25519))
        if revoked:
            outcome.append(f"key {kid.hex()} of {member.id} revoked from {_iso(revoked[0])} ({revoked[0]})")
            return _with_member(roster, updated)
        raise UnknownKeyError(f"{member.id} has no signing or encryption key {kid.hex()}", hint=f"List its keys with: heliograph roster show {args.draft}")

    roster = _edit(args, change)
    print(f"{outcome[0]} in draft v{roster.version}")
    return 0


def cmd_set_authorities(args: argparse.Namespace) -> int:
    def change(roster: Roster, _now: int) -> Roster:
        current = {a.id: a for a in roster.authorities}
        for name in args.remove:
            if current.pop(name, None) is None:
                raise UnknownMemberError(f"{name} is not an authority of draft v{roster.version}")
        for path in args.add:
            ident = _identity(path)
            if ident.member_id in current:
                raise ConflictError(f"{ident.member_id} is already an authority")
            current[ident.member_id] = Authority(id=ident.member_id, public=ident.signing_public)
        threshold = args.threshold if args.threshold is not None else roster.threshold
        return replace(roster, authorities=tuple(sorted(current.values(), key=lambda a: a.id)), threshold=threshold)

    roster = _edit(args, change)
    names = ", ".join(a.id for a in roster.authorities)
    print(f"draft v{roster.version}: authorities {names}; threshold {roster.threshold} of {len(roster.authorities)}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    draft = read_signed_roster(Path(args.draft))
    roster = draft.roster
    previous = _trusted_previous(args.previous) if args.previous else None
    _check_signatures(draft, previous)
    keys = read_secret_keys(Path(args.key))
    signer = nacl.signing.SigningKey(keys.signing_seed)
    kid = key_id(ALG_ED25519, bytes(signer.verify_key))
    known = {a.key_id for a in roster.authorities} | ({a.key_id for a in previous.authorities} if previous else set())
    if kid not in known:
        where = f"draft v{roster.version}" + (f" or of v{previous.version}" if previous else "")
        raise RosterError(f"the key of {keys.member_id} ({kid.hex()}) is not an authority of {where}")
    already = kid in dict(draft.signatures)
    signed = draft.add_signatures([signer])  # Ed25519 is deterministic: signing again yields the same bytes
    write_file_atomic(Path(args.out or args.draft), signed.to_bytes())
    own = _valid_signers(signed, roster.authorities)
    status = f"{len(own)} of threshold {roster.threshold} from v{roster.version} authorities"
    if previous is not None:
        status += f", {len(_valid_signers(signed, previous.authorities))} of threshold {previous.threshold} from v{previous.version} authorities"
    print(f"{'already signed' if already else 'signed'} draft v{roster.version} as {keys.member_id} ({kid.hex()}): {status}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    draft = read_signed_roster(Path(args.draft))
    now = _now(args)
    previous = _trusted_previous(args.previous) if args.previous else None
    _check_signatures(draft, previous)
    roster = draft.verify_trusted(now) if previous is None else draft.verify_update(previous, now)
    write_file_atomic(Path(args.out), draft.to_bytes())
    how = "as a trust anchor" if previous is None else f"as the update of v{previous.version}"
    print(f"published {roster.federation} v{roster.version} {how} to {args.out} ({len(draft.signatures)} signatures)")
    if previous is None and roster.version > 1:
        print(f"note: parties holding v{roster.version - 1} accept v{roster.version} only if it verifies as its update (publish --previous)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    signed = read_signed_roster(Path(args.file))
    now = _now(args)
    if args.previous:
        previous = _trusted_previous(args.previous)
        roster = signed.verify_update(previous, now)
        old = _valid_signers(signed, previous.authorities)
        print(f"ok: {roster.federation} v{roster.version} verifies as the update of v{previous.version}")
        print(f"    {len(old)} of threshold {previous.threshold} v{previous.version} authorities")
    else:
        roster = signed.verify_trusted(now)
        print(f"ok: {roster.federation} v{roster.version} verifies against its own authorities")
    print(f"    {len(_valid_signers(signed, roster.authorities))} of threshold {roster.threshold} own authorities; expires {_iso(roster.expires)}")
    return 0


def _key_line(kind: str, alg: int, k: RosterKey) -> str:
    revoked = f"  REVOKED from {_iso(k.revoked_at)}" if k.revoked_at is not None else ""
    return f"    {kind:<10}  {key_id(alg, k.public).hex()}  {_iso(k.not_before)} .. {_iso(k.not_after)}{revoked}"


def cmd_show(args: argparse.Namespace) -> int:
    signed = read_signed_roster(Path(args.file))
    roster = signed.roster
    valid = set(_valid_signers(signed, roster.authorities))
    present = {kid for kid, _ in signed.signatures}
    state = "meets" if len(valid) >= roster.threshold else "below"
    print(f"roster      {roster.federation} v{roster.version}")
    print(f"issued      {_iso(roster.issued)} ({roster.issued})")
    print(f"expires     {_iso(roster.expires)} ({roster.expires})")
    print(f"signatures  {len(valid)} valid of threshold {roster.threshold} ({state} threshold); {len(signed.signatures)} present")
    print(f"authorities ({len(roster.authorities)}):")
    for a in roster.authorities:
        mark = "signed" if a.id in valid else ("INVALID signature (draft changed after signing)" if a.key_id in present else "-")
        print(f"    {a.id:<24}  {a.key_id.hex()}  {mark}")
    for kid in sorted(present - {a.key_id for a in roster.authorities}):
        print(f"    {'(other)':<24}  {kid.hex()}  not an authority of this version (check with: roster verify --previous)")
    print(f"members ({len(roster.members)}):")
    for m in roster.members:
        home = f"  home {m.home_gateway}" if m.home_gateway else ""
        name = f"  {m.display_name!r}" if m.display_name else ""
        print(f"  {m.id}  {m.kind}  {m.endpoint}{home}{name}")
        print(f"    {'log vkey':<10}  {m.log_vkey}")
        for k in m.signing_keys:
            print(_key_line("signing", ALG_ED25519, k))
        for k in m.encryption_keys:
            print(_key_line("encryption", ALG_X25519, k))
    return 0
