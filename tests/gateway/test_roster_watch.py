"""RosterWatcher: a running hop adopts a verified next roster version from its file, and nothing else."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from structlog.testing import capture_logs

from gateway.roster_watch import RACY_WINDOW_MS, RosterFileError, RosterWatcher, read_signed_roster, write_file_atomic
from protocol.errors import ExpiredError, RosterError, UnknownMemberError
from protocol.roster import Roster, SignedRoster
from tests.support.clock import FakeClock
from tests.support.federation import T0, YEAR_MS, Federation, build_federation

SETTLED = T0 - 10 * RACY_WINDOW_MS


@pytest.fixture(scope="module")
def fed() -> Federation:
    return build_federation("roster-watch")


def version(fed: Federation, n: int, signers: list[nacl.signing.SigningKey] | None = None, **changes: Any) -> SignedRoster:
    roster = replace(fed.roster, version=n, issued=fed.roster.issued + n, **changes)
    return SignedRoster.sign(roster, fed.authority_keys[:2] if signers is None else signers)


def publish(path: Path, signed: SignedRoster, mtime_ms: int = SETTLED) -> None:
    """Install a roster file as an operator would (atomic rename), with an mtime outside the racy window."""
    write_file_atomic(path, signed.to_bytes())
    os.utime(path, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))


def events(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [e["event"] for e in logs]


async def watcher_at_v1(fed: Federation, tmp_path: Path) -> RosterWatcher:
    path = tmp_path / "roster.bin"
    publish(path, fed.signed)
    watcher = await RosterWatcher.open(path, now_ms=T0)
    assert watcher.roster.version == 1 and watcher.signed == fed.signed and watcher.path == path
    return watcher


async def test_picks_up_a_valid_next_version(fed: Federation, tmp_path: Path) -> None:
    watcher = await watcher_at_v1(fed, tmp_path)
    v2 = version(fed, 2)
    publish(watcher.path, v2)
    with capture_logs() as logs:
        assert await watcher.check(T0) == v2
        assert await watcher.check(T0) is None  # adopted once
    assert watcher.signed == v2 and watcher.roster.version == 2
    assert logs == [{"event": "roster_updated", "log_level": "info", "path": str(watcher.path), "old_version": 1, "new_version": 2}]


async def test_refuses_a_forged_version_and_keeps_the_old(fed: Federation, tmp_path: Path) -> None:
    watcher = await watcher_at_v1(fed, tmp_path)
    strangers = [nacl.signing.SigningKey(bytes([i]) * 32) for i in (1, 2)]
    for forged in (version(fed, 2, strangers), version(fed, 2, fed.authority_keys[:1])):
        publish(watcher.path, forged)
        with capture_logs() as logs:
            assert await watcher.check(T0) is None
            assert await watcher.check(T0 + 1000) is None  # reported once, not on every poll
        assert watcher.roster.version == 1 and watcher.signed == fed.signed
        assert events(logs) == ["roster_refused"] and logs[0]["code"] == "E_ROSTER" and logs[0]["version"] == 1
    # A genuine v2 published afterwards is still adopted.
    publish(watcher.path, version(fed, 2))
    assert (await watcher.check(T0)) is not None and watcher.roster.version == 2


async def test_ignores_an_unchanged_or_rewritten_identical_file(fed: Federation, tmp_path: Path) -> None:
    watcher = await watcher_at_v1(fed, tmp_path)
    with capture_logs() as logs:
        assert await watcher.check(T0) is None
        publish(watcher.path, fed.signed, SETTLED + 5)  # same bytes, new inode and mtime
        assert await watcher.check(T0) is None
        assert await watcher.check(T0) is None
    assert logs == [] and watcher.signed == fed.signed


async def test_refuses_rollback_and_a_second_document_for_the_same_version(fed: Federation, tmp_path: Path) -> None:
    watcher = await watcher_at_v1(fed, tmp_path)
    v2 = version(fed, 2)
    publish(watcher.path, v2)
    assert await watcher.check(T0) == v2
    other_v2 = version(fed, 2, fed.authority_keys[1:])  # validly signed, but not the v2 we hold
    assert other_v2.to_bytes() != v2.to_bytes()
    for bad, needle in ((fed.signed, "rollback"), (other_v2, "different document for v2")):
        publish(watcher.path, bad)
        with capture_logs() as logs:
            assert await watcher.check(T0) is None
        assert watcher.signed == v2
        assert events(logs) == ["roster_refused"] and logs[0]["code"] == "E_ROSTER" and needle in logs[0]["error"]


async def test_refuses_skipped_expired_and_malformed_files(fed: Federation, tmp_path: Path) -> None:
    watcher = await watcher_at_v1(fed, tmp_path)
    cases = [
        (version(fed, 3).to_bytes(), "E_ROSTER"),  # each version must be applied in turn
        (version(fed, 2, expires=T0 + 5).to_bytes(), "E_EXPIRED"),
        (version(fed, 2).to_bytes()[:-7], "E_MALFORMED"),  # a half-copied file
    ]
    for data, code in cases:
        write_file_atomic(watcher.path, data)
        with capture_logs() as logs:
            assert await watcher.check(T0 + 10) is None
        assert watcher.roster.version == 1
        assert events(logs) == ["roster_refused"] and logs[0]["code"] == code


async def test_missing_file_is_reported_once_and_the_roster_kept(fed: Federation, tmp_path: Path) -> None:
    watcher = await watcher_at_v1(fed, tmp_path)
    watcher.path.unlink()
    with capture_logs() as logs:
        assert await watcher.check(T0) is None
        assert await watcher.check(T0) is None
        publish(watcher.path, version(fed, 2))
        assert await watcher.check(T0) is not None
    assert events(logs) == ["roster_unreadable", "roster_updated"]


async def test_racy_mtime_is_rehashed(fed: Federation, tmp_path: Path) -> None:
    """A same-size in-place rewrite within one mtime tick is caught while the file is fresh."""
    path = tmp_path / "roster.bin"
    publish(path, fed.signed, mtime_ms=T0 - 100)  # modified just before we read it
    watcher = await RosterWatcher.open(path, now_ms=T0)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # same size, same inode: a flipped signature byte
    with path.open("r+b") as fh:
        fh.write(data)
    os.utime(path, ns=((T0 - 100) * 1_000_000,) * 2)
    with capture_logs() as logs:
        assert await watcher.check(T0) is None
    assert events(logs) == ["roster_refused"]
    # Once the file has settled, an unchanged stat identity is trusted and the file is not read again.
    path2 = tmp_path / "settled.bin"
    publish(path2, fed.signed, mtime_ms=SETTLED)
    settled = await RosterWatcher.open(path2, now_ms=T0)
    with path2.open("r+b") as fh:
        fh.write(data)
    os.utime(path2, ns=(SETTLED * 1_000_000,) * 2)
    with capture_logs() as logs:
        assert await settled.check(T0) is None
    assert logs == []


async def test_open_verifies_the_pinned_roster(fed: Federation, tmp_path: Path) -> None:
    path = tmp_path / "roster.bin"
    publish(path, version(fed, 1, fed.authority_keys[:1]))
    with pytest.raises(RosterError):
        await RosterWatcher.open(path, now_ms=T0)
    publish(path, fed.signed)
    with pytest.raises(ExpiredError):
        await RosterWatcher.open(path, now_ms=T0 + 2 * YEAR_MS)
    with pytest.raises(RosterFileError):
        await RosterWatcher.open(tmp_path / "missing.bin", now_ms=T0)
    assert read_signed_roster(path) == fed.signed


async def test_watcher_built_from_a_verified_roster_starts_from_the_file(fed: Federation, tmp_path: Path) -> None:
    path = tmp_path / "roster.bin"
    publish(path, fed.signed)
    watcher = RosterWatcher(path, fed.signed)
    assert await watcher.check(T0) is None
    publish(path, version(fed, 2))
    assert await watcher.check(T0) is not None


class RecordingWatcher(RosterWatcher):
    """Reports each finished check on a queue, so the test waits for the check rather than for time."""

    def __init__(self, path: Path, current: SignedRoster) -> None:
        super().__init__(path, current)
        self.checks: asyncio.Queue[SignedRoster | None] = asyncio.Queue()

    async def check(self, now_ms: int) -> SignedRoster | None:
        result = await super().check(now_ms)
        self.checks.put_nowait(result)
        return result


async def test_run_checks_periodically(fed: Federation, tmp_path: Path) -> None:
    path = tmp_path / "roster.bin"
    publish(path, fed.signed)
    watcher = RecordingWatcher(path, fed.signed)
    clock = FakeClock(T0)
    seen: list[int] = []

    async def on_update(signed: SignedRoster) -> None:
        seen.append(signed.roster.version)

    task = asyncio.create_task(watcher.run(clock, interval_s=5.0, on_update=on_update))
    try:
        await clock.wait_for_sleepers(1)
        clock.advance(5_000)
        assert await asyncio.wait_for(watcher.checks.get(), timeout=10) is None
        publish(path, version(fed, 2))
        await clock.wait_for_sleepers(1)
        clock.advance(5_000)
        assert await asyncio.wait_for(watcher.checks.get(), timeout=10) is not None
        await clock.wait_for_sleepers(1)
        assert seen == [2]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_local_check_can_refuse_a_verified_version(fed: Federation, tmp_path: Path) -> None:
    def still_member(roster: Roster) -> None:
        roster.member("gw-eu")

    path = tmp_path / "roster.bin"
    publish(path, fed.signed)
    watcher = await RosterWatcher.open(path, now_ms=T0, local_check=still_member)
    without_me = version(fed, 2, members=tuple(m for m in fed.roster.members if m.id != "gw-eu" and m.home_gateway != "gw-eu"))
    publish(path, without_me)
    with capture_logs() as logs:
        assert await watcher.check(T0) is None
    assert watcher.roster.version == 1 and logs[0]["event"] == "roster_refused" and logs[0]["code"] == "E_UNKNOWN_MEMBER"

    def never(roster: Roster) -> None:
        roster.member("nobody")

    with pytest.raises(UnknownMemberError):
        await RosterWatcher.open(path, now_ms=T0, local_check=never)
