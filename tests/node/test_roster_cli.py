"""``heliograph roster ...``: the authority workflow end to end, with files in tmp_path and a fixed clock."""

from __future__ import annotations

import argparse
import json
import stat
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gateway.keyfile import write_public_identity, write_secret_keys
from gateway.roster_watch import read_signed_roster
from node.roster_cli import parse_duration, parse_time, register
from protocol.errors import HeliographError, KeyExpiredError, RevokedKeyError, UnknownKeyError
from protocol.keys import MemberKeys
from protocol.roster import Roster, SignedRoster
from tests.support.clock import FakeClock
from tests.support.federation import T0, SeededRng

HOUR = 3_600_000
DAY = 24 * HOUR


@dataclass
class Result:
    status: int
    out: str
    err: str

    @property
    def code(self) -> str | None:
        """The error code printed on stderr, e.g. ``E_ROSTER``."""
        return self.err.split("[", 1)[1].split("]", 1)[0] if self.err.startswith("error [") else None


class Authority:
    """Runs ``heliograph roster ...`` like ``node.cli.main`` would, in one directory, at the clock's time."""

    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp = tmp
        self.capsys = capsys
        self.clock = FakeClock(T0)
        self.rng = SeededRng("roster-cli")
        self.keys: dict[str, MemberKeys] = {}
        self.parser = argparse.ArgumentParser(prog="heliograph")
        register(self.parser.add_subparsers(dest="command"), clock=self.clock)

    def identity(self, member_id: str, name: str | None = None) -> Path:
        """``heliograph keys generate``: NAME.key (0600) and NAME.pub.json; returns the public file."""
        name = name or member_id
        keys = MemberKeys.generate(member_id, self.rng)
        self.keys[name] = keys
        write_secret_keys(self.tmp / f"{name}.key", keys)
        write_public_identity(self.tmp / f"{name}.pub.json", keys.public)
        return self.tmp / f"{name}.pub.json"

    def __call__(self, *argv: str | Path) -> Result:
        self.capsys.readouterr()
        args = self.parser.parse_args(["roster", *(str(a) for a in argv)])
        try:
            status = args.handler(args)
        except HeliographError as exc:
            print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
            if exc.hint:
                print(f"hint: {exc.hint}", file=sys.stderr)
            status = 1
        captured = self.capsys.readouterr()
        return Result(status, captured.out, captured.err)

    def ok(self, *argv: str | Path) -> str:
        result = self(*argv)
        assert result.status == 0, result.err
        return result.out


@pytest.fixture
def auth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Authority:
    a = Authority(tmp_path, capsys)
    for name in ("authority-a", "authority-b", "authority-c"):
        a.identity(name)
    return a


def make_v1(auth: Authority, *, signers: tuple[str, ...] = ("authority-a", "authority-b")) -> tuple[Path, Path]:
    """A draft with a gateway and a node, signed by ``signers``; returns (draft, roster file)."""
    t = auth.tmp
    draft, published = t / "v1.draft", t / "roster.bin"
    pubs = ",".join(str(t / f"{n}.pub.json") for n in ("authority-a", "authority-b", "authority-c"))
    auth.ok("init", "--federation", "east-africa", "--authorities", pubs, "--threshold", "2", "--out", draft)
    auth.ok("add-member", "--draft", draft, "--identity", auth.identity("gw-eu"), "--kind", "gateway", "--url", "https://gw-eu.example")
    node = auth.identity("ke-police")
    auth.ok(
        "add-member", "--draft", draft, "--identity", node, "--kind", "node", "--home-gateway", "gw-eu", "--url", "https://ke.example", "--display-name", "KE"
    )
    for signer in signers:
        auth.ok("sign", "--draft", draft, "--key", t / f"{signer}.key")
    return draft, published


def test_three_authorities_threshold_two(auth: Authority) -> None:
    draft, published = make_v1(auth, signers=("authority-a",))
    refused = auth("publish", "--draft", draft, "--trust-anchor", "--out", published)
    assert refused.status == 1 and refused.code == "E_ROSTER" and "1 valid authority signatures, needs 2" in refused.err
    assert not published.exists()

    once = draft.read_bytes()
    assert "already signed" in auth.ok("sign", "--draft", draft, "--key", auth.tmp / "authority-a.key")
    assert draft.read_bytes() == once  # signing the same bytes twice changes nothing

    out = auth.ok("sign", "--draft", draft, "--key", auth.tmp / "authority-b.key")
    assert "2 of threshold 2" in out
    assert "published east-africa v1 as a trust anchor" in auth.ok("publish", "--draft", draft, "--trust-anchor", "--out", published)
    assert stat.S_IMODE(published.stat().st_mode) == 0o644
    assert sorted(p.name for p in auth.tmp.iterdir() if p.name.endswith(".tmp")) == []
    roster = read_signed_roster(published).verify_trusted(T0)
    assert roster.version == 1 and [m.id for m in roster.members] == ["gw-eu", "ke-police"]
    assert roster.member("ke-police").home_gateway == "gw-eu" and roster.member("ke-police").display_name == "KE"
    assert "verifies against its own authorities" in auth.ok("verify", published)

    shown = auth.ok("show", published)
    assert "east-africa v1" in shown and "2 valid of threshold 2 (meets threshold)" in shown
    assert auth.keys["ke-police"].signing_key_id.hex() in shown and "home gw-eu" in shown
    for keys in auth.keys.values():  # never a secret
        doc = json.loads(keys.to_file_text())
        for field in ("signing_seed", "encryption_secret", "log_seed"):
            assert doc[field] not in shown + out


def test_editing_a_signed_draft_needs_discard(auth: Authority) -> None:
    draft, _ = make_v1(auth, signers=("authority-a",))
    refused = auth("remove-member", "--draft", draft, "--member", "ke-police")
    assert refused.code == "E_CONFLICT" and "--discard-signatures" in refused.err
    auth.ok("remove-member", "--draft", draft, "--member", "ke-police", "--discard-signatures")
    signed = read_signed_roster(draft)
    assert signed.signatures == () and [m.id for m in signed.roster.members] == ["gw-eu"]


def test_tampered_draft_is_refused(auth: Authority) -> None:
    draft, published = make_v1(auth, signers=("authority-a",))
    signed = read_signed_roster(draft)
    member = signed.roster.member("ke-police")
    evil = replace(signed.roster, members=(signed.roster.member("gw-eu"), replace(member, endpoint="https://attacker.example")))
    draft.write_bytes(SignedRoster(body=evil.to_bytes(), signatures=signed.signatures).to_bytes())
    for attempt in (
        auth("sign", "--draft", draft, "--key", auth.tmp / "authority-b.key"),
        auth("publish", "--draft", draft, "--trust-anchor", "--out", published),
    ):
        assert attempt.status == 1 and attempt.code == "E_BAD_SIGNATURE" and "changed after authority-a signed" in attempt.err
    assert not published.exists()


def test_signer_must_be_an_authority(auth: Authority) -> None:
    draft, _ = make_v1(auth, signers=())
    auth.identity("stranger")
    refused = auth("sign", "--draft", draft, "--key", auth.tmp / "stranger.key")
    assert refused.code == "E_ROSTER" and "not an authority" in refused.err
    assert read_signed_roster(draft).signatures == ()


def test_update_needs_the_previous_threshold(auth: Authority) -> None:
    draft, v1 = make_v1(auth)
    auth.ok("publish", "--draft", draft, "--trust-anchor", "--out", v1)
    v2_draft, v2 = auth.tmp / "v2.draft", auth.tmp / "v2.bin"
    auth.clock.advance(DAY)
    assert "v2 (from v1)" in auth.ok("next", "--from", v1, "--out", v2_draft)
    d, e = auth.identity("authority-d"), auth.identity("authority-e")
    auth.ok("set-authorities", "--draft", v2_draft, "--add", d, "--add", e, "--remove", "authority-a", "--remove", "authority-b")
    # Only the new authorities sign: v2's own threshold is met, v1's is not.
    auth.ok("sign", "--draft", v2_draft, "--key", auth.tmp / "authority-d.key")
    auth.ok("sign", "--draft", v2_draft, "--key", auth.tmp / "authority-e.key")
    assert "verifies against its own" in auth.ok("verify", v2_draft)
    refused = auth("publish", "--draft", v2_draft, "--previous", v1, "--out", v2)
    assert refused.code == "E_ROSTER" and "0 signatures from the v1 authorities, needs 2" in refused.err
    auth.ok("sign", "--draft", v2_draft, "--key", auth.tmp / "authority-c.key")
    assert auth("publish", "--draft", v2_draft, "--previous", v1, "--out", v2).code == "E_ROSTER"
    assert auth("verify", v2_draft, "--previous", v1).code == "E_ROSTER"
    # authority-a is no authority of v2: signing needs --previous to know it.
    assert auth("sign", "--draft", v2_draft, "--key", auth.tmp / "authority-a.key").code == "E_ROSTER"
    assert "2 of threshold 2 from v1 authorities" in auth.ok("sign", "--draft", v2_draft, "--key", auth.tmp / "authority-a.key", "--previous", v1)
    # Without --previous the old authority's signature cannot be checked, so publishing refuses to guess.
    assert auth("publish", "--draft", v2_draft, "--trust-anchor", "--out", v2).code == "E_ROSTER"
    assert "as the update of v1" in auth.ok("publish", "--draft", v2_draft, "--previous", v1, "--out", v2)
    new = read_signed_roster(v2).verify_update(read_signed_roster(v1).roster, T0 + DAY)
    assert [a.id for a in new.authorities] == ["authority-c", "authority-d", "authority-e"] and new.issued == T0 + DAY
    assert "verifies as the update of v1" in auth.ok("verify", v2, "--previous", v1)


def _publish_v2(auth: Authority, v1: Path, draft: Path) -> Roster:
    v2 = auth.tmp / "v2.bin"
    for signer in ("authority-b", "authority-c"):
        auth.ok("sign", "--draft", draft, "--key", auth.tmp / f"{signer}.key")
    auth.ok("publish", "--draft", draft, "--previous", v1, "--out", v2)
    return read_signed_roster(v2).verify_update(read_signed_roster(v1).roster, auth.clock.now_ms())


def test_rotate_and_revoke(auth: Authority) -> None:
    draft, v1 = make_v1(auth)
    auth.ok("publish", "--draft", draft, "--trust-anchor", "--out", v1)
    old = auth.keys["ke-police"]
    v2_draft = auth.tmp / "v2.draft"
    auth.clock.advance(HOUR)
    rotated_at = auth.clock.now_ms()
    auth.ok("next", "--from", v1, "--out", v2_draft)
    new_pub = auth.identity("ke-police", "ke-police-2")
    new = auth.keys["ke-police-2"]
    refused = auth("rotate-key", "--draft", v2_draft, "--member", "ke-police", "--identity", new_pub)
    assert refused.code == "E_CONFLICT" and "different log key" in refused.err
    auth.ok("rotate-key", "--draft", v2_draft, "--member", "ke-police", "--identity", new_pub, "--log-key", "replace", "--overlap", "2h")
    assert auth("rotate-key", "--draft", v2_draft, "--member", "ke-police", "--identity", new_pub, "--log-key", "replace").code == "E_CONFLICT"
    revoke_at = rotated_at + HOUR
    auth.ok("revoke-key", "--draft", v2_draft, "--member", "ke-police", "--key-id", old.signing_key_id.hex(), "--at", str(revoke_at))
    roster = _publish_v2(auth, v1, v2_draft)

    member = roster.member("ke-police")
    assert member.log_vkey == new.public.log_vkey and len(member.signing_keys) == 2
    # The old key is kept: valid before its revocation, E_REVOKED from then on, and it would have expired after the overlap.
    assert roster.check_signing_key("ke-police", old.signing_key_id, revoke_at - 1) == old.signing_public
    with pytest.raises(RevokedKeyError):
        roster.check_signing_key("ke-police", old.signing_key_id, revoke_at)
    assert member.signing_key(old.signing_key_id).not_after == rotated_at + 2 * HOUR
    assert roster.check_signing_key("ke-police", new.signing_key_id, revoke_at) == new.signing_public
    with pytest.raises(KeyExpiredError):
        roster.check_signing_key("ke-police", new.signing_key_id, rotated_at - 1)
    assert member.encryption_key_at(rotated_at).public == new.encryption_public  # senders switch at once
    assert member.encryption_key_at(rotated_at - 1).public == old.encryption_public
    assert "REVOKED from" in auth.ok("show", auth.tmp / "v2.bin")


def test_revoke_encryption_key_and_errors(auth: Authority) -> None:
    draft, _ = make_v1(auth, signers=())
    police = auth.keys["ke-police"]
    bad = auth("revoke-key", "--draft", draft, "--member", "ke-police", "--key-id", "00" * 8)
    assert bad.code == "E_UNKNOWN_KEY"
    assert auth("revoke-key", "--draft", draft, "--member", "ke-police", "--key-id", "xyz").code == "E_MALFORMED"
    assert auth("revoke-key", "--draft", draft, "--member", "nobody", "--key-id", "00" * 8).code == "E_UNKNOWN_MEMBER"
    kid = police.encryption_key_id.hex()
    auth.ok("revoke-key", "--draft", draft, "--member", "ke-police", "--key-id", kid, "--at", str(T0 + 10))
    # Revocation only moves earlier.
    auth.ok("revoke-key", "--draft", draft, "--member", "ke-police", "--key-id", kid, "--at", str(T0 + 99))
    key = read_signed_roster(draft).roster.member("ke-police").encryption_keys[0]
    assert key.revoked_at == T0 + 10
    with pytest.raises(RevokedKeyError):
        key.check_valid_at("encryption key", T0 + 10)
    with pytest.raises(UnknownKeyError):
        read_signed_roster(draft).roster.member("ke-police").encryption_key_at(T0 + 10)


def test_member_edits(auth: Authority) -> None:
    draft, _ = make_v1(auth, signers=())
    gw = auth.tmp / "gw-eu.pub.json"
    assert auth("add-member", "--draft", draft, "--identity", gw, "--kind", "gateway", "--url", "https://x.example").code == "E_CONFLICT"
    node = auth.identity("fr-police")
    lost = auth("add-member", "--draft", draft, "--identity", node, "--kind", "node", "--home-gateway", "gw-nowhere", "--url", "https://fr.example")
    assert lost.code == "E_MALFORMED" and "Add the gateway first" in lost.err
    assert (
        auth("add-member", "--draft", draft, "--identity", node, "--kind", "node", "--url", "ftp://fr.example", "--home-gateway", "gw-eu").code == "E_MALFORMED"
    )
    assert auth("remove-member", "--draft", draft, "--member", "gw-eu").code == "E_CONFLICT"
    auth.ok("update-member", "--draft", draft, "--member", "gw-eu", "--url", "https://gw-eu2.example", "--display-name", "EU hub")
    gw_member = read_signed_roster(draft).roster.member("gw-eu")
    assert gw_member.endpoint == "https://gw-eu2.example" and gw_member.display_name == "EU hub"
    assert auth("update-member", "--draft", draft, "--member", "gw-eu", "--home-gateway", "gw-eu").code == "E_MALFORMED"
    auth.ok("remove-member", "--draft", draft, "--member", "ke-police")
    auth.ok("remove-member", "--draft", draft, "--member", "gw-eu")
    assert read_signed_roster(draft).roster.members == ()


def test_init_next_and_files(auth: Authority) -> None:
    draft, v1 = make_v1(auth)
    pubs = str(auth.tmp / "authority-a.pub.json")
    assert auth("init", "--federation", "x", "--authorities", pubs, "--threshold", "1", "--out", draft).code == "E_ROSTER_FILE"
    assert auth("init", "--federation", "x", "--authorities", pubs, "--threshold", "2", "--out", draft, "--force").code == "E_MALFORMED"
    assert auth("show", auth.tmp / "missing.bin").code == "E_ROSTER_FILE"
    (auth.tmp / "junk.bin").write_bytes(b"\x00junk")
    assert auth("verify", auth.tmp / "junk.bin").code == "E_MALFORMED"
    # next refuses a source that its own authorities did not sign.
    unsigned = auth.tmp / "unsigned.bin"
    auth.ok("remove-member", "--draft", draft, "--member", "ke-police", "--discard-signatures", "--out", unsigned)
    assert auth("next", "--from", unsigned, "--out", auth.tmp / "v2.draft").code == "E_ROSTER"
    auth.clock.advance(400 * DAY)
    assert auth("publish", "--draft", draft, "--trust-anchor", "--out", v1).code == "E_EXPIRED"


def test_shows_signature_state(auth: Authority) -> None:
    draft, _ = make_v1(auth, signers=("authority-a",))
    shown = auth.ok("show", draft)
    assert "1 valid of threshold 2 (below threshold)" in shown
    assert "authority-a" in shown and "signed" in shown


def test_time_and_duration_arguments() -> None:
    assert parse_time("1780000000000") == 1_780_000_000_000
    assert parse_time("2026-05-28T20:26:40Z") == 1_780_000_000_000
    assert parse_time("2026-05-28T22:26:40.5+02:00") == 1_780_000_000_500
    for bad in ("2026-05-28T20:26:40", "yesterday"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_time(bad)
    assert parse_duration("0") == 0 and parse_duration("24h") == DAY and parse_duration("90s") == 90_000 and parse_duration("2d") == 2 * DAY
    for bad in ("12", "1w", "-1d", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)


def test_argument_refusals(auth: Authority) -> None:
    draft, _ = make_v1(auth, signers=())
    gw = auth.identity("gw-af")
    assert (
        auth("add-member", "--draft", draft, "--identity", gw, "--kind", "gateway", "--url", "https://af.ex", "--home-gateway", "gw-eu").code == "E_MALFORMED"
    )
    wrong = auth("rotate-key", "--draft", draft, "--member", "gw-eu", "--identity", gw)
    assert wrong.code == "E_MALFORMED" and "identity of gw-af" in wrong.err
    assert auth("set-authorities", "--draft", draft, "--remove", "authority-z").code == "E_UNKNOWN_MEMBER"
    assert auth("set-authorities", "--draft", draft, "--add", auth.tmp / "authority-a.pub.json").code == "E_CONFLICT"
    assert auth("set-authorities", "--draft", draft, "--remove", "authority-a", "--threshold", "3").code == "E_MALFORMED"
    assert "threshold 1 of 2" in auth.ok("set-authorities", "--draft", draft, "--remove", "authority-a", "--threshold", "1")


def test_show_marks_invalid_and_foreign_signatures(auth: Authority) -> None:
    draft, v1 = make_v1(auth)
    auth.ok("publish", "--draft", draft, "--trust-anchor", "--out", v1)
    v2_draft = auth.tmp / "v2.draft"
    auth.ok("next", "--from", v1, "--out", v2_draft)
    auth.ok("set-authorities", "--draft", v2_draft, "--remove", "authority-a")
    for signer in ("authority-b", "authority-c"):
        auth.ok("sign", "--draft", v2_draft, "--key", auth.tmp / f"{signer}.key")
    auth.ok("sign", "--draft", v2_draft, "--key", auth.tmp / "authority-a.key", "--previous", v1)
    shown = auth.ok("show", v2_draft)
    assert f"{auth.keys['authority-a'].signing_key_id.hex()}  not an authority of this version" in shown
    # Published as a trust anchor, v2 would need re-pinning: the CLI says so (after refusing the foreign signature).
    assert auth("publish", "--draft", v2_draft, "--trust-anchor", "--out", auth.tmp / "x.bin").code == "E_ROSTER"
    auth.ok("set-authorities", "--draft", v2_draft, "--discard-signatures", "--threshold", "1")
    auth.ok("sign", "--draft", v2_draft, "--key", auth.tmp / "authority-b.key")
    assert "note: parties holding v1" in auth.ok("publish", "--draft", v2_draft, "--trust-anchor", "--out", auth.tmp / "x.bin")
    signed = read_signed_roster(v2_draft)
    (kid, sig), *_ = signed.signatures
    draft.write_bytes(SignedRoster(body=signed.body, signatures=((kid, bytes([sig[0] ^ 1]) + sig[1:]),)).to_bytes())
    assert "INVALID signature" in auth.ok("show", draft)
