"""The witness against a log double it controls: honest growth is cosigned; forks, rollbacks,
bad proofs, bad signatures and tampered entries raise alarms that stick until cleared."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from gateway.keyfile import KeyFileError
from gateway.witness import Verdict, Witness, WitnessAlarmError, create_witness_app, judge, merge_cosignatures, serve_witness, verify_cosignatures
from gateway.witness_store import (
    AlarmKind,
    AuditMode,
    Health,
    WarningKind,
    WitnessKey,
    WitnessStateError,
    WitnessStore,
    load_witness_config,
    parse_witness_config,
    read_witness_key,
    write_witness_key,
)
from protocol import fields
from protocol.checkpoint import Checkpoint, CosignatureVerifier, SignedNote, cosign, verify_cosignature
from protocol.errors import BadSignatureError, CheckpointError, ConfigError, MalformedError, NotFoundError
from protocol.merkle import EMPTY_ROOT
from tests.support.clock import FakeClock
from tests.support.fake_log import FakeLog, leaves, note_for, tree_of
from tests.support.federation import T0
from tests.support.logs import ORIGIN, VKEY

W_KEY = WitnessKey(name="witness.example/w1", signer=nacl.signing.SigningKey(hashlib.sha256(b"heliograph test witness key").digest()))
OTHER_KEYS = [WitnessKey(name=f"witness.example/w{i}", signer=nacl.signing.SigningKey(bytes([i]) * 32)) for i in (2, 3)]
ROOT = Path(__file__).resolve().parents[2]


def config_doc(tmp: Path, url: str, *, audit: str = "new", **extra: Any) -> dict[str, Any]:
    return {
        "witness": {"name": W_KEY.name, "key_file": "keys/witness.key", "state_dir": "state", "audit": audit, "logs": [{"vkey": VKEY, "url": url}], **extra}
    }


async def open_witness(tmp: Path, url: str, clock: FakeClock, *, audit: str = "new") -> Witness:
    return await Witness.open(parse_witness_config(config_doc(tmp, url, audit=audit), base=tmp), clock=clock, key=W_KEY)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def cosigned_at(witness: Witness) -> int:
    note = SignedNote.from_text(witness.cosigned_note(ORIGIN))
    return verify_cosignature(note, CosignatureVerifier.from_vkey(W_KEY.vkey))


# -- honest logs -------------------------------------------------------------------------------


async def test_consistent_growth_is_cosigned_persisted_and_reloaded_after_a_restart(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(5)
    witness = await open_witness(tmp_path, fake.url, clock)
    await witness.poll_once()
    verify_cosignatures(witness.cosigned_note(ORIGIN), VKEY, [W_KEY.vkey], 1)
    assert cosigned_at(witness) == T0 // 1000 and witness.states[ORIGIN].health is Health.OK
    fake.leaves = leaves(12)
    clock.advance(60_000)
    await witness.poll_once()
    assert "/v1/log/proof/consistency?first=5&second=12" in fake.requests
    assert "/v1/log/entries?start=5&end=12" in fake.requests  # audit "new": only what it has not seen
    assert cosigned_at(witness) == T0 // 1000 + 60
    assert SignedNote.from_text(witness.cosigned_note(ORIGIN)).text == Checkpoint(origin=ORIGIN, size=12, root=tree_of(fake.leaves).root(12)).body()
    witness.close()

    fake.requests.clear()
    fake.leaves = leaves(20)
    restarted = await open_witness(tmp_path, fake.url, clock)
    state = restarted.states[ORIGIN]
    assert state.tree() is not None and state.tree().size == 12 and state.audited_size == 12  # type: ignore[union-attr]
    await restarted.poll_once()
    assert fake.requests[1:3] == ["/v1/log/proof/consistency?first=12&second=20", "/v1/log/entries?start=12&end=20"]
    on_disk = json.loads((tmp_path / "state" / "heliograph%2Fgw-test.json").read_text())
    assert on_disk["format"] == "heliograph-witness-state" and on_disk["cosigned"] == restarted.cosigned_note(ORIGIN) and on_disk["alarms"] == []
    restarted.close()


async def test_unchanged_log_is_recosigned_with_a_fresh_timestamp(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(3)
    witness = await open_witness(tmp_path, fake.url, clock, audit="off")
    await witness.poll_once()
    clock.advance(3_600_000)
    await witness.poll_once()
    assert cosigned_at(witness) == T0 // 1000 + 3600
    assert not any("entries" in r or "proof" in r for r in fake.requests)  # audit "off"; same size needs no proof
    witness.close()


async def test_empty_log_then_growth(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    witness = await open_witness(tmp_path, fake.url, clock)
    await witness.poll_once()
    assert witness.states[ORIGIN].tree() == Checkpoint(origin=ORIGIN, size=0, root=EMPTY_ROOT)
    fake.leaves = leaves(1001)  # two pages of entries
    await witness.poll_once()
    assert witness.states[ORIGIN].health is Health.OK and witness.states[ORIGIN].audited_size == 1001
    witness.close()


# -- misbehaving logs --------------------------------------------------------------------------


async def test_split_view_raises_the_alarm_and_nothing_is_cosigned_until_cleared(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(4)
    witness = await open_witness(tmp_path, fake.url, clock)
    await witness.poll_once()
    good = witness.cosigned_note(ORIGIN)
    honest, forked = note_for(fake.leaves), note_for(leaves(4, "R"))
    fake.notes = [forked]  # the hop shows this witness another tree of the same size
    with capture_logs() as logs:
        await witness.poll_once()
    (alarm,) = witness.states[ORIGIN].alarms
    assert alarm.kind is AlarmKind.FORK and alarm.old_size == alarm.new_size == 4 and alarm.evidence == (honest, forked)
    assert [(e["event"], e["log_level"], e["kind"], e["origin"]) for e in logs if e["event"] == "witness_alarm"] == [("witness_alarm", "error", "fork", ORIGIN)]
    with pytest.raises(WitnessAlarmError, match="fork"):
        witness.cosigned_note(ORIGIN)

    async with TestClient(TestServer(create_witness_app(witness))) as client:
        resp = await client.get(f"/v1/witness/cosignatures/{ORIGIN}")
        assert resp.status == 409 and (await resp.json())["error"]["code"] == "E_WITNESS_ALARM"
        status = await (await client.get("/v1/witness/status")).json()
        (entry,) = status["logs"]
        assert entry["state"] == "alarm" and entry["alarms"][0]["kind"] == "fork" and entry["size"] == 4
        assert (await (await client.get("/healthz")).json())["alarms"] == [ORIGIN]
        assert "heliograph_witness_log_alarm" in await (await client.get("/metrics")).text()

    # Back to the honest view: still in alarm, nothing is fetched or cosigned.
    fake.requests.clear()
    with capture_logs() as logs:
        await witness.poll_once()
    assert fake.requests == [] and any(e["event"] == "witness_log_in_alarm" for e in logs)
    # An operator clears it; the witness verifies against the checkpoint it kept and cosigns again.
    witness.store.request_clear(ORIGIN, reset=False)
    clock.advance(1000)
    await witness.poll_once()
    assert witness.states[ORIGIN].health is Health.OK and witness.cosigned_note(ORIGIN) != good
    assert SignedNote.from_text(witness.cosigned_note(ORIGIN)).text == SignedNote.from_text(good).text
    witness.close()


async def test_split_view_within_one_round_is_caught_by_the_full_audit(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(4)
    fake.notes = [note_for(fake.leaves), note_for(leaves(4, "R"))]  # one view for the witness, another for the audit
    witness = await open_witness(tmp_path, fake.url, clock, audit="full")
    await witness.poll_once()
    (alarm,) = witness.states[ORIGIN].alarms
    assert alarm.kind is AlarmKind.FORK and alarm.new_size == 4
    assert witness.states[ORIGIN].cosigned is None
    witness.close()


async def test_rollback_is_an_alarm_naming_the_first_missing_index(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(8)
    witness = await open_witness(tmp_path, fake.url, clock)
    await witness.poll_once()
    fake.leaves = leaves(5)
    await witness.poll_once()
    (alarm,) = witness.states[ORIGIN].alarms
    assert (alarm.kind, alarm.old_size, alarm.new_size, alarm.index) == (AlarmKind.ROLLBACK, 8, 5, 5)
    assert witness.states[ORIGIN].tree().size == 8  # type: ignore[union-attr]  # the evidence stays
    witness.close()


@pytest.mark.parametrize("how", ["bad proof", "rewritten history"])
async def test_inconsistent_growth_is_an_alarm(fake: FakeLog, clock: FakeClock, tmp_path: Path, how: str) -> None:
    fake.leaves = leaves(4)
    witness = await open_witness(tmp_path, fake.url, clock, audit="off")
    await witness.poll_once()
    if how == "bad proof":
        fake.leaves, fake.bad_proof = leaves(9), True
    else:  # a new history of 9 leaves that does not extend the old 4: its honest proofs cannot verify
        fake.leaves = leaves(9, "R")
    await witness.poll_once()
    (alarm,) = witness.states[ORIGIN].alarms
    assert (alarm.kind, alarm.old_size, alarm.new_size) == (AlarmKind.INCONSISTENT, 4, 9)
    assert "consistency proof 4 -> 9 does not verify" in alarm.message
    witness.close()


def _forged_signature(note: str) -> str:
    parsed = SignedNote.from_text(note)
    sig = parsed.signatures[0]
    return replace(parsed, signatures=(replace(sig, signature=bytes([sig.signature[0] ^ 1]) + sig.signature[1:]),)).to_text()


@pytest.mark.parametrize(
    "bad_note",
    [
        pytest.param(lambda d: _forged_signature(note_for(d)), id="signature does not verify"),
        pytest.param(lambda d: note_for(d, nacl.signing.SigningKey(b"\x99" * 32)), id="signed by another key"),
    ],
)
async def test_bad_log_signature_is_an_alarm(fake: FakeLog, clock: FakeClock, tmp_path: Path, bad_note: Any) -> None:
    fake.leaves = leaves(4)
    fake.notes = [bad_note(fake.leaves)]
    evidence = tuple(fake.notes)
    witness = await open_witness(tmp_path, fake.url, clock)
    await witness.poll_once()
    (alarm,) = witness.states[ORIGIN].alarms
    assert alarm.kind is AlarmKind.BAD_SIGNATURE and alarm.evidence == evidence
    assert witness.states[ORIGIN].cosigned is None
    witness.close()


@pytest.mark.parametrize(("first_size", "bad"), [(0, 3), (10, 13), (10, 19)])
async def test_tampered_entry_is_named_by_index_in_incremental_audit(fake: FakeLog, clock: FakeClock, tmp_path: Path, first_size: int, bad: int) -> None:
    fake.leaves = leaves(first_size)
    witness = await open_witness(tmp_path, fake.url, clock)
    await witness.poll_once()
    fake.leaves = leaves(20)
    fake.served = list(fake.leaves)
    fake.served[bad] = b"a receipt edited on disk"
    await witness.poll_once()
    (alarm,) = witness.states[ORIGIN].alarms
    assert (alarm.kind, alarm.index) == (AlarmKind.TAMPERED_LEAF, bad)
    assert alarm.message == f"hop {ORIGIN} index {bad}: leaf hash mismatch"
    witness.close()


async def test_missing_entries_are_named_by_index(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(12)
    fake.served = fake.leaves[:9]
    witness = await open_witness(tmp_path, fake.url, clock)
    await witness.poll_once()
    (alarm,) = witness.states[ORIGIN].alarms
    assert (alarm.kind, alarm.index) == (AlarmKind.TAMPERED_LEAF, 9)
    witness.close()


async def test_full_audit_catches_an_entry_rewritten_after_it_was_checked(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(10)
    witness = await open_witness(tmp_path, fake.url, clock, audit="full")
    await witness.poll_once()
    assert witness.states[ORIGIN].health is Health.OK
    fake.served = list(fake.leaves)
    fake.served[6] = b"forged"
    await witness.poll_once()
    (alarm,) = witness.states[ORIGIN].alarms
    assert (alarm.kind, alarm.index) == (AlarmKind.TAMPERED_LEAF, 6) and "entry 6 does not match" in alarm.message
    assert not list((tmp_path / "state").glob("*.audit*"))
    witness.close()


async def test_full_audit_names_a_wrong_stored_hash_and_a_failing_hop_is_only_a_warning(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(10)
    fake.broken = {"/v1/log/entries"}
    witness = await open_witness(tmp_path, fake.url, clock, audit="full")
    await witness.poll_once()
    state = witness.states[ORIGIN]
    assert state.warning is not None and state.warning.kind is WarningKind.BAD_RESPONSE and "answered 503" in state.warning.message
    assert not state.alarms and state.cosigned is None
    fake.broken, fake.bad_proof = set(), True  # proofs built from a wrong stored hash
    await witness.poll_once()
    (alarm,) = witness.states[ORIGIN].alarms
    assert (alarm.kind, alarm.index) == (AlarmKind.TAMPERED_LEAF, 1) and "stored hash for leaves [1, 2) is wrong" in alarm.message
    witness.close()


async def test_unreachable_or_garbled_hop_is_a_warning_not_an_alarm(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(3)
    fake.down = True
    witness = await open_witness(tmp_path, fake.url, clock)
    with capture_logs() as logs:
        await witness.poll_once()
    state = witness.states[ORIGIN]
    assert state.health is Health.PENDING and state.warning is not None and state.warning.kind is WarningKind.UNREACHABLE
    assert [e["log_level"] for e in logs if e["event"] == "witness_warning"] == ["warning"]
    with pytest.raises(NotFoundError):
        witness.cosigned_note(ORIGIN)
    fake.down = False
    fake.notes = ["this is not a signed note"]
    await witness.poll_once()
    assert witness.states[ORIGIN].warning.kind is WarningKind.BAD_RESPONSE and not witness.states[ORIGIN].alarms  # type: ignore[union-attr]
    await witness.poll_once()
    assert witness.states[ORIGIN].health is Health.OK and witness.states[ORIGIN].warning is None
    witness.close()


async def test_closed_port_is_unreachable(clock: FakeClock, tmp_path: Path) -> None:
    from tests.support.net import free_port

    witness = await open_witness(tmp_path, f"http://127.0.0.1:{free_port()}", clock, audit="full")
    await witness.poll_once()
    assert witness.states[ORIGIN].warning.kind is WarningKind.UNREACHABLE  # type: ignore[union-attr]
    witness.close()


async def test_clear_with_reset_accepts_the_new_history(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(8)
    witness = await open_witness(tmp_path, fake.url, clock)
    await witness.poll_once()
    fake.leaves = leaves(3, "R")
    await witness.poll_once()
    assert witness.states[ORIGIN].alarms[0].kind is AlarmKind.ROLLBACK
    witness.store.request_clear(ORIGIN, reset=True)
    await witness.poll_once()
    assert witness.states[ORIGIN].health is Health.OK and witness.states[ORIGIN].tree().size == 3  # type: ignore[union-attr]
    witness.close()


# -- the HTTP API --------------------------------------------------------------------------------


async def test_http_api_serves_the_cosigned_note_status_and_key(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    fake.leaves = leaves(6)
    witness = await open_witness(tmp_path, fake.url, clock)
    async with TestClient(TestServer(create_witness_app(witness))) as client:
        resp = await client.get(f"/v1/witness/cosignatures/{ORIGIN}")
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "E_NOT_FOUND"
        await witness.poll_once()
        for path in (f"/v1/witness/cosignatures/{ORIGIN}", "/v1/witness/cosignatures/heliograph%2Fgw-test"):
            resp = await client.get(path)
            assert resp.status == 200 and resp.headers["Content-Type"] == "text/plain; charset=utf-8"
            verify_cosignatures(await resp.text(), VKEY, [W_KEY.vkey], 1)
        assert (await client.get("/v1/witness/cosignatures/heliograph/nobody")).status == 404
        assert (await (await client.get("/v1/witness/key")).text()) == W_KEY.vkey + "\n"
        status = await (await client.get("/v1/witness/status")).json()
        assert status["witness"] == W_KEY.name and status["now"] == T0
        assert status["logs"] == [
            {
                "origin": ORIGIN,
                "url": fake.url,
                "state": "ok",
                "size": 6,
                "root": tree_of(fake.leaves).root(6).hex(),
                "last_checked": T0,
                "warning": None,
                "alarms": [],
            }
        ]
        assert (await client.post("/v1/witness/status")).status == 405
    witness.close()


# -- k of n -------------------------------------------------------------------------------------


PROTOCOL_VECTOR = """heliograph/ke-police
8
XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=

— heliograph/ke-police wjZXQnzgjT/kShShZ6iOVclpRMh49XzdVq51g3lo6H7Qy4Qn5rT93OalTpVzUEcJMJUDPy9J82Jr2XmcI4NpuQ2Lsg0=
— witness.example/w1 LgoYagAAAABqGKUABGqojMzCoB3kW39Fb3MnkLOP1AvC/8yLv8IywhPq41RAsVtabw3KkEVZ7C5FtkBV33DQf6Op6SXoGydAYpW+AQ==
"""
PROTOCOL_LOG_VKEY = "heliograph/ke-police+c2365742+AcR1bSxsVbcmFf+sxUbcWfZG6DipuBt9/NbfLMK49B0P"


def test_the_protocol_vector_is_one_of_one() -> None:
    verify_cosignatures(PROTOCOL_VECTOR, PROTOCOL_LOG_VKEY, [W_KEY.vkey], 1)
    verify_cosignatures(PROTOCOL_VECTOR, PROTOCOL_LOG_VKEY, [W_KEY.vkey], 1, not_before=1780000000)
    with pytest.raises(CheckpointError, match="0 valid"):
        verify_cosignatures(PROTOCOL_VECTOR, PROTOCOL_LOG_VKEY, [W_KEY.vkey], 1, not_before=1780000001)


def _cosigned_by(keys: list[WitnessKey], note: str | None = None, ts: int = 1_780_000_000) -> str:
    notes = [cosign(SignedNote.from_text(note or note_for(leaves(3))), k.name, k.signer, ts).to_text() for k in keys]
    return merge_cosignatures(notes)


def test_k_of_n() -> None:
    everyone = [W_KEY.vkey, *(k.vkey for k in OTHER_KEYS)]
    two = _cosigned_by([W_KEY, OTHER_KEYS[0]])
    assert [s.name for s in SignedNote.from_text(two).signatures] == [ORIGIN, W_KEY.name, OTHER_KEYS[0].name]
    verify_cosignatures(two, VKEY, everyone, 2)
    with pytest.raises(CheckpointError, match="2 valid cosignature\\(s\\) from trusted witnesses, needs 3"):
        verify_cosignatures(two, VKEY, everyone, 3)
    with pytest.raises(CheckpointError):  # listing one witness twice does not make it two
        verify_cosignatures(_cosigned_by([W_KEY]), VKEY, [W_KEY.vkey, W_KEY.vkey, OTHER_KEYS[0].vkey], 2)
    with pytest.raises(CheckpointError):  # cosignatures by keys not trusted are ignored
        verify_cosignatures(two, VKEY, [OTHER_KEYS[1].vkey], 1)
    for k in (0, 4, True):
        with pytest.raises(MalformedError, match="k must be"):
            verify_cosignatures(two, VKEY, everyone, k)


def test_an_invalid_cosignature_does_not_count_and_the_log_must_have_signed() -> None:
    good = _cosigned_by([W_KEY, OTHER_KEYS[0]])
    parsed = SignedNote.from_text(good)
    broken = replace(parsed.signatures[2], signature=parsed.signatures[2].signature[:8] + bytes(64))
    tampered = replace(parsed, signatures=(*parsed.signatures[:2], broken)).to_text()
    verify_cosignatures(tampered, VKEY, [W_KEY.vkey, OTHER_KEYS[0].vkey], 1)
    with pytest.raises(CheckpointError):
        verify_cosignatures(tampered, VKEY, [W_KEY.vkey, OTHER_KEYS[0].vkey], 2)
    with pytest.raises(CheckpointError):  # cosigned, but not by this log's key
        verify_cosignatures(good, PROTOCOL_LOG_VKEY, [W_KEY.vkey], 1)
    with pytest.raises(BadSignatureError):
        verify_cosignatures(_forged_signature(good), VKEY, [W_KEY.vkey], 1)


def test_merge_refuses_notes_of_different_checkpoints() -> None:
    with pytest.raises(MalformedError):
        merge_cosignatures([_cosigned_by([W_KEY]), _cosigned_by([W_KEY], note_for(leaves(4)))])
    with pytest.raises(MalformedError):
        merge_cosignatures([])


@pytest.mark.parametrize(
    ("last", "new", "verdict"),
    [(None, 3, Verdict.FIRST), (3, 3, Verdict.UNCHANGED), (3, 5, Verdict.GROWN), (5, 3, Verdict.ROLLBACK)],
)
def test_judge(last: int | None, new: int, verdict: Verdict) -> None:
    def cp(n: int) -> Checkpoint:
        return Checkpoint(origin=ORIGIN, size=n, root=tree_of(leaves(n)).root(n))

    assert judge(None if last is None else cp(last), cp(new)) is verdict
    assert judge(cp(3), replace(cp(3), root=bytes(32))) is Verdict.FORK


# -- config, key file, state files ----------------------------------------------------------------


def test_the_example_config_parses() -> None:
    config = load_witness_config(ROOT / "configs" / "witness.example.toml")
    assert config.name == "witness.example/w1" and config.audit is AuditMode.FULL and config.poll_interval_s == 60.0
    assert config.roster_path == ROOT / "configs" / "state" / "roster.bin" and [t.origin for t in config.logs] == ["heliograph/gw-eu"]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"name": None}, "witness.name: required"),
        ({"name": "has space"}, "witness.name"),
        ({"audit": "sometimes"}, "witness.audit"),
        ({"listen": "nowhere"}, "witness.listen"),
        ({"poll_interval_s": 0}, "witness.poll_interval_s"),
        ({"request_timeout_s": "10"}, "witness.request_timeout_s: expected float"),
        ({"colour": "blue"}, "witness.colour: unknown key"),
        ({"logs": [{"origin": "heliograph/other", "vkey": VKEY, "url": "http://x"}]}, "witness.logs[0].origin"),
        ({"logs": [{"vkey": VKEY, "url": "http://x"}, {"vkey": VKEY, "url": "http://y"}]}, "witness.logs[1].origin: 'heliograph/gw-test' is listed twice"),
        ({"logs": [{"vkey": "nope", "url": "http://x"}]}, "witness.logs[0].vkey"),
        ({"logs": [{"vkey": VKEY, "url": "ftp://x"}]}, "witness.logs[0].url"),
        ({"logs": [{"vkey": VKEY}]}, "witness.logs[0].url: required"),
        ({"logs": []}, "nothing to watch"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, change: dict[str, Any], key: str) -> None:
    doc = config_doc(tmp_path, "http://127.0.0.1:1")
    for k, v in change.items():
        if v is None:
            del doc["witness"][k]
        else:
            doc["witness"][k] = v
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_witness_config(doc, base=tmp_path)
    with pytest.raises(ConfigError, match="unknown section"):
        parse_witness_config({**doc, "hop": {}}, base=tmp_path)


def test_key_file_is_0600_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / "witness.key"
    write_witness_key(path, W_KEY)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_witness_key(path).vkey == W_KEY.vkey == "witness.example/w1+2e0a186a+BNCtElMOVE4YT9UipcVTpijeR5aXlxzVMBG8l5ePUnCB"
    assert "seed" not in repr(W_KEY) and fields.b64(bytes(W_KEY.signer)) not in repr(W_KEY)
    with pytest.raises(KeyFileError, match="already exists"):
        write_witness_key(path, W_KEY)
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError, match="group or others"):
        read_witness_key(path)
    os.chmod(path, 0o600)
    path.write_text(json.dumps({"format": "heliograph-witness-key", "version": 1.0, "name": "w", "seed": fields.b64(bytes(32))}))
    with pytest.raises(MalformedError):
        read_witness_key(path)


async def test_start_up_refuses_a_key_of_another_name_a_busy_state_dir_and_damaged_state(clock: FakeClock, tmp_path: Path) -> None:
    config = parse_witness_config(config_doc(tmp_path, "http://127.0.0.1:1"), base=tmp_path)
    with pytest.raises(ConfigError, match="holds the key of"):
        await Witness.open(config, clock=clock, key=OTHER_KEYS[0])
    witness = await Witness.open(config, clock=clock, key=W_KEY)
    with pytest.raises(ConfigError, match="in use by another witness"):
        await Witness.open(config, clock=clock, key=W_KEY)
    witness.close()
    (tmp_path / "state" / "heliograph%2Fgw-test.json").write_text('{"format": "heliograph-witness-state", "version": 1}')
    with pytest.raises(WitnessStateError, match="damaged"):
        await Witness.open(config, clock=clock, key=W_KEY)
    assert WitnessStore(tmp_path / "state").try_lock()  # released after the failed start


async def test_roster_lists_the_logs_and_config_entries_win(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    from protocol.keys import log_origin
    from protocol.roster import SignedRoster
    from tests.support.federation import build_federation
    from tests.support.net import free_port

    fed = build_federation("witness-roster")
    members = tuple(replace(m, endpoint=f"http://127.0.0.1:{free_port()}") for m in fed.roster.members)
    roster = replace(fed.roster, members=members)
    (tmp_path / "roster.bin").write_bytes(SignedRoster.sign(roster, fed.authority_keys[:2]).to_bytes())
    doc = config_doc(tmp_path, fake.url, roster="roster.bin")
    config = parse_witness_config(doc, base=tmp_path)
    witness = await Witness.open(config, clock=clock, key=W_KEY)
    assert set(witness.targets) == {log_origin(m.id) for m in members} | {ORIGIN}
    assert witness.targets["heliograph/gw-af"].vkey == fed.keys["gw-af"].public.log_vkey
    fake.leaves = leaves(2)
    await witness.poll_once()
    assert witness.states[ORIGIN].health is Health.OK
    assert {s.warning.kind for o, s in witness.states.items() if o != ORIGIN} == {WarningKind.UNREACHABLE}  # type: ignore[union-attr]
    witness.close()


async def test_serve_once_exits_non_zero_on_alarm(fake: FakeLog, clock: FakeClock, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    write_witness_key(keys / "witness.key", W_KEY)
    doc = config_doc(tmp_path, fake.url)["witness"]
    lines = [f"{k} = {json.dumps(v)}" for k, v in doc.items() if k != "logs"]
    (tmp_path / "witness.toml").write_text("[witness]\n" + "\n".join(lines) + f'\n[[witness.logs]]\nvkey = "{VKEY}"\nurl = "{fake.url}"\n')
    fake.leaves = leaves(4)
    assert await serve_witness(tmp_path / "witness.toml", clock=clock, once=True) == 0
    fake.leaves = leaves(2)
    assert await serve_witness(tmp_path / "witness.toml", clock=clock, once=True) == 1


def test_cli_keygen_and_clear_without_a_running_witness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from gateway.witness_store import Alarm, LogState
    from node.witness_cli import register
    from tests.support.federation import SeededRng

    parser = argparse.ArgumentParser(prog="heliograph")
    register(parser.add_subparsers(), clock=FakeClock(T0), rng=SeededRng("witness-cli"))

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return int(args.handler(args))

    assert run("witness", "keygen", "--name", W_KEY.name, "--out", str(tmp_path / "keys")) == 0
    vkey = capsys.readouterr().out.strip().splitlines()[-1]
    assert vkey == read_witness_key(tmp_path / "keys" / "witness.key").vkey and vkey.startswith(W_KEY.name + "+")
    with pytest.raises(KeyFileError, match="already exists"):
        run("witness", "keygen", "--name", W_KEY.name, "--out", str(tmp_path / "keys"))

    (tmp_path / "witness.toml").write_text(
        f'[witness]\nname = "{W_KEY.name}"\nkey_file = "keys/witness.key"\nstate_dir = "state"\n[[witness.logs]]\nvkey = "{VKEY}"\nurl = "http://127.0.0.1:1"\n'
    )
    store = WitnessStore(tmp_path / "state")
    store.state_dir.mkdir()
    note = note_for(leaves(2))
    alarmed = LogState(origin=ORIGIN, checkpoint=note, cosigned=note).with_alarm(Alarm(kind=AlarmKind.FORK, time=T0, message="fork", evidence=(note,)))
    store.save(alarmed)
    assert run("witness", "clear", "--config", str(tmp_path / "witness.toml"), "--log", ORIGIN) == 0
    assert capsys.readouterr().out.strip() == f"{ORIGIN}: alarms cleared"
    assert store.load(ORIGIN) == replace(alarmed, alarms=())
    store.save(alarmed)
    assert run("witness", "clear", "--config", str(tmp_path / "witness.toml"), "--log", ORIGIN, "--reset") == 0
    assert store.load(ORIGIN) == LogState(origin=ORIGIN)
    with pytest.raises(NotFoundError):
        run("witness", "clear", "--config", str(tmp_path / "witness.toml"), "--log", "heliograph/nobody")
