"""Every way a gateway refuses something, with its stable code, over real HTTP on 127.0.0.1.

Two kinds of refusal:

* request level: the whole ``POST /v1/envelopes`` is refused with an HTTP
  status and ``{"error": {"code", "message"}}`` (authentication, replay, skew,
  size, content type, an unparseable batch); nothing is stored or logged;
* item level: the request is answered 200 and the item gets a signed
  ``rejected`` receipt whose ``reason`` is the code (policy, size, expiry, TTL,
  rate, routing, a poison envelope); the receipt is in the gateway's log,
  provably, and the envelope is never stored or forwarded.

The federation is started by :func:`start_strict_net`, which does what
``tests.support.net.start_net`` does with three tweaks that helper has no
parameter for: small ``[limits]``, an extra node ``ng-police`` whose signing key
the roster revoked an hour ago, and a policy with a deny rule, a short maximum
TTL and a tight rate limit for ``ke-fiu``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.app import create_app, open_hop
from gateway.config import parse_config
from gateway.forwarder import ForwarderConfig
from gateway.hop import NO_MESSAGE_ID
from gateway.hop_store import KIND_ENVELOPE
from protocol import envelope as env_mod
from protocol.batch import BatchItem, BatchResults, EnvelopeBatch
from protocol.checkpoint import NoteVerifier, open_checkpoint
from protocol.header import Envelope
from protocol.keys import MemberKeys
from protocol.merkle import leaf_hash, verify_inclusion
from protocol.receipts import Receipt, SignedReceipt
from protocol.transport import sign_request
from tests.support.clock import FakeClock
from tests.support.federation import T0, SeededRng, build_federation
from tests.support.net import HOUR, MSGPACK, Net, StandInNode

PATH = "/v1/envelopes"
DAY = 24 * HOUR
MAX_ENVELOPE_BYTES = 8 << 10
MAX_REQUEST_BYTES = 128 << 10
MAX_BATCH = 4
SWEEP_INTERVAL_S = 0.05
"""Short, so that a lost forwarder wake-up (see test_shutdown_during_a_sweep_is_prompt) costs 50 ms, not an hour."""
REVOKED = "ng-police"
"""A node homed at gw-af whose only signing key was revoked an hour before T0."""

POLICY: dict[str, Any] = {
    "max_ttl_ms": DAY,
    "default": "deny",
    "rules": [
        {"name": "no-red", "action": "deny", "labels": ["TLP:RED"]},
        {"action": "allow", "origins": ["*"]},
    ],
    "rate_limits": {"default": {"rate": 50.0, "burst": 200}, "ke-fiu": {"rate": 1.0, "burst": 2}},
}


def _listening_socket() -> socket.socket:
    """A socket already bound to a free loopback port, handed to the server as is (no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def start_strict_net(tmp: Path, *, sweep_interval_s: float = SWEEP_INTERVAL_S) -> Net:
    """``start_net`` with small limits, a revoked member and :data:`POLICY`.

    Ports are held from the start (bound sockets passed to the servers), so a
    parallel test run cannot take one between choosing it and listening on it;
    if anything fails half-way, what was started is closed again.
    """
    gateways = ("gw-af", "gw-eu")
    nodes = (("int-org", "gw-eu"), ("ke-fiu", "gw-af"), ("ke-police", "gw-af"), ("fr-police", "gw-eu"), (REVOKED, "gw-af"))
    sockets = {name: _listening_socket() for name in (*gateways, *(n for n, _ in nodes))}
    ports = {name: int(sock.getsockname()[1]) for name, sock in sockets.items()}
    fed = build_federation("rejections", gateways=gateways, nodes=nodes)

    def tweak(member: Any) -> Any:
        member = replace(member, endpoint=f"http://127.0.0.1:{ports[member.id]}")
        if member.id == REVOKED:
            member = replace(member, signing_keys=tuple(replace(k, revoked_at=T0 - HOUR) for k in member.signing_keys))
        return member

    def server_for(name: str, app: web.Application) -> TestServer:
        sock = sockets[name]
        return TestServer(app, host="127.0.0.1", port=ports[name], socket_factory=lambda *_: sock)

    fed.roster = replace(fed.roster, members=tuple(tweak(m) for m in fed.roster.members))
    clock = FakeClock(T0)
    net = Net(fed=fed, clock=clock, gateways={}, servers={}, nodes={}, rng=SeededRng("rejections-rng"))
    try:
        for gw in gateways:
            config = parse_config(
                {
                    "hop": {"id": gw, "listen": f"127.0.0.1:{ports[gw]}", "data_dir": str(tmp / gw), "roster": "unused", "key_file": "unused"},
                    "limits": {"max_envelope_bytes": MAX_ENVELOPE_BYTES, "max_request_bytes": MAX_REQUEST_BYTES, "max_batch": MAX_BATCH},
                    "policy": POLICY,
                },
                base=tmp,
            )
            config = replace(config, queue=ForwarderConfig(sweep_interval_s=sweep_interval_s))
            hop = await open_hop(config, clock=clock, rng=SeededRng(f"{gw}-rng"), keys=fed.keys[gw], roster=fed.roster)
            net.gateways[gw] = hop
            net.servers[gw] = server_for(gw, create_app(hop, close_on_cleanup=False))
            await net.servers[gw].start_server()
        for node, _ in nodes:
            stand_in = StandInNode(keys=fed.keys[node], roster=fed.roster, clock=clock)
            net.nodes[node] = stand_in
            net.servers[node] = stand_in.server = server_for(node, stand_in.app())
            await stand_in.server.start_server()
    except BaseException:
        await net.close()
        for sock in sockets.values():
            sock.close()
        raise
    return net


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    n = await start_strict_net(tmp_path)
    try:
        yield n
    finally:
        await n.close()


# -- helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes


async def send(net: Net, dest: str, body: bytes, headers: dict[str, str], *, path: str = PATH) -> Reply:
    """POST raw bytes with exactly ``headers``; no answer may ever be a 5xx."""
    url = net.fed.roster.member(dest).endpoint + path
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        reply = Reply(resp.status, resp.content_type, await resp.read())
    assert reply.status < 500, reply
    return reply


def auth(net: Net, sender: str | MemberKeys, dest: str, body: bytes, *, now: int | None = None, nonce: bytes | None = None, path: str = PATH) -> dict[str, str]:
    keys = net.fed.keys[sender] if isinstance(sender, str) else sender
    now = net.clock.now_ms() if now is None else now
    header = sign_request(keys, method="POST", path=path, query="", destination=dest, body=body, now=now, nonce=nonce or net.rng(16))
    return {"Authorization": header, "Content-Type": MSGPACK}


def error_of(reply: Reply) -> tuple[int, str]:
    """The (status, code) of a JSON error answer, checking its shape."""
    assert reply.content_type == "application/json", reply
    doc = json.loads(reply.body)
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, doc
    assert doc["error"]["code"].startswith("E_") and doc["error"]["message"], doc
    return reply.status, doc["error"]["code"]


def seal(
    net: Net, origin: str, recipients: Sequence[str], *, label: str = "TLP:AMBER", ttl: int = HOUR, details: bytes = b"details", seed: str = "m"
) -> Envelope:
    now = net.clock.now_ms()
    return env_mod.seal(
        sender=net.fed.keys[origin],
        roster=net.fed.roster,
        tiers=[env_mod.Tier(name="all", sections=("summary", "details"), recipients=tuple(sorted(recipients)))],
        sections={"summary": f"alert {seed}".encode(), "details": details},
        priority="FLASH",
        label=label,
        now=now,
        expires=now + ttl,
        rng=SeededRng(f"{seed}-{now}"),
    )


def item(envelope: Envelope, recipients: Sequence[str] | None = None) -> BatchItem:
    return BatchItem(envelope=envelope.to_bytes(), recipients=tuple(sorted(recipients or envelope.header.recipients)))


def batch(*items: BatchItem) -> bytes:
    return EnvelopeBatch(items=items).to_bytes()


async def post_items(net: Net, sender: str, dest: str, *items: BatchItem) -> list[bytes]:
    """Send one signed batch; return the raw result per item (the request itself must succeed)."""
    body = batch(*items)
    reply = await send(net, dest, body, auth(net, sender, dest, body))
    assert reply.status == 200 and reply.content_type == MSGPACK, reply
    results = BatchResults.from_bytes(reply.body).results
    assert len(results) == len(items)
    return list(results)


def receipt_of(net: Net, raw: bytes) -> Receipt:
    return SignedReceipt.from_bytes(raw).verify(net.fed.roster)


def accepted(net: Net, gateway: str, raw: bytes) -> Receipt:
    receipt = receipt_of(net, raw)
    assert (receipt.event, receipt.hop, receipt.reason) == ("accepted", gateway, None), receipt
    return receipt


async def rejected(net: Net, gateway: str, raw: bytes, code: str, *, peer: str) -> Receipt:
    """Check a rejection: signed by ``gateway``'s roster key, the right code, and provably in its log."""
    receipt = receipt_of(net, raw)
    assert (receipt.event, receipt.reason, receipt.hop, receipt.peer) == ("rejected", code, gateway, peer), receipt
    assert receipt.hop_key == net.fed.keys[gateway].signing_key_id
    assert receipt.log_index is not None
    base = net.fed.roster.member(gateway).endpoint
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/v1/log/checkpoint") as resp:
            assert resp.status == 200
            note = await resp.text()
        checkpoint = open_checkpoint(note, NoteVerifier.from_vkey(net.fed.roster.member(gateway).log_vkey))
        assert receipt.log_index < checkpoint.size
        params = {"index": str(receipt.log_index), "size": str(checkpoint.size)}
        async with session.get(base + "/v1/log/proof/inclusion", params=params) as resp:
            assert resp.status == 200
            proof = [base64.b64decode(p) for p in (await resp.json())["path"]]
        params = {"start": str(receipt.log_index), "end": str(receipt.log_index + 1)}
        async with session.get(base + "/v1/log/entries", params=params) as resp:
            assert [base64.b64decode(e) for e in (await resp.json())["entries"]] == [raw]
    verify_inclusion(receipt.log_index, checkpoint.size, leaf_hash(raw), proof, checkpoint.root)
    return receipt


async def log_sizes(net: Net) -> dict[str, int]:
    return {name: await hop.ctx.log.size() for name, hop in net.gateways.items()}


async def assert_never_forwarded(net: Net, *message_ids: bytes) -> None:
    """After every queue has run, no gateway stores or queues these messages and no node got them."""
    await net.drain()
    for name, hop in net.gateways.items():
        db = hop.ctx.reader._db
        for mid in message_ids:
            assert await db.execute_fetchall("SELECT 1 FROM messages WHERE message_id = ?", (mid,)) == [], name
            assert await db.execute_fetchall("SELECT 1 FROM outbox WHERE message_id = ? AND kind = ?", (mid, KIND_ENVELOPE)) == [], name
    for name, node in net.nodes.items():
        assert not set(message_ids) & set(node.delivered), name


# -- request-level refusals: an HTTP status and a JSON error, nothing stored --------------------


async def test_a_well_signed_request_is_accepted(net: Net) -> None:
    """The control for every refusal below: the same request, signed right, goes through."""
    env = seal(net, "ke-police", ["int-org"])
    (raw,) = await post_items(net, "ke-police", "gw-af", item(env))
    accepted(net, "gw-af", raw)
    await net.drain()
    assert list(net.nodes["int-org"].delivered) == [env.message_id]


async def test_bad_signature(net: Net) -> None:
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    other = batch(item(seal(net, "ke-police", ["int-org"], seed="other")))
    before = await log_sizes(net)
    # Signed over one body, sent with another: the body hash under the signature differs.
    assert error_of(await send(net, "gw-af", body, auth(net, "ke-police", "gw-af", other))) == (401, "E_BAD_SIGNATURE")
    # Signed for another path.
    headers = auth(net, "ke-police", "gw-af", body, path="/v1/receipts")
    assert error_of(await send(net, "gw-af", body, headers)) == (401, "E_BAD_SIGNATURE")
    # A signature by a different key pair claiming to be ke-police's registered key.
    impostor = MemberKeys.generate("ke-police", SeededRng("impostor"))
    header = auth(net, impostor, "gw-af", body)["Authorization"]
    real_kid = net.fed.keys["ke-police"].signing_key_id.hex()
    forged = header.replace(f'key="{impostor.signing_key_id.hex()}"', f'key="{real_kid}"')
    assert forged != header
    assert error_of(await send(net, "gw-af", body, {"Authorization": forged, "Content-Type": MSGPACK})) == (401, "E_BAD_SIGNATURE")
    assert await log_sizes(net) == before


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Heliograph garbage", id="garbage"),
        pytest.param("Bearer abc", id="wrong-scheme"),
        pytest.param("X-Matrix origin=ke-police", id="matrix"),
        pytest.param('Heliograph origin="ke-police"', id="truncated"),
    ],
)
async def test_malformed_authorization(net: Net, header: str) -> None:
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    assert error_of(await send(net, "gw-af", body, {"Authorization": header, "Content-Type": MSGPACK})) == (401, "E_BAD_AUTH")


async def test_authorization_with_a_tampered_parameter(net: Net) -> None:
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    good = auth(net, "ke-police", "gw-af", body)["Authorization"]
    for bad in (good.replace(",", ", ", 1), good + ',extra="1"', good.replace("Heliograph", "heliograph"), good.replace('ts="', 'ts="0')):
        assert error_of(await send(net, "gw-af", body, {"Authorization": bad, "Content-Type": MSGPACK})) == (401, "E_BAD_AUTH"), bad


async def test_missing_authorization(net: Net) -> None:
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    before = await log_sizes(net)
    assert error_of(await send(net, "gw-af", body, {"Content-Type": MSGPACK})) == (401, "E_BAD_AUTH")
    assert error_of(await send(net, "gw-af", body, {"Content-Type": MSGPACK}, path="/v1/receipts")) == (401, "E_BAD_AUTH")
    assert await log_sizes(net) == before


async def test_replayed_request(net: Net) -> None:
    env = seal(net, "ke-police", ["int-org"])
    body = batch(item(env))
    headers = auth(net, "ke-police", "gw-af", body, nonce=b"n" * 16)
    first = await send(net, "gw-af", body, headers)
    assert first.status == 200
    await net.drain()  # let the accepted copy's forwarding settle before snapshotting the logs
    before = await log_sizes(net)
    # The captured request, byte for byte, a little later but within the window.
    await net.clock.advance(1_000)
    assert error_of(await send(net, "gw-af", body, headers)) == (401, "E_REPLAY")
    # The same nonce under a fresh signature and timestamp is a replay too.
    again = auth(net, "ke-police", "gw-af", body, nonce=b"n" * 16)
    assert error_of(await send(net, "gw-af", body, again)) == (401, "E_REPLAY")
    assert await log_sizes(net) == before


@pytest.mark.parametrize("offset", [pytest.param(-10 * 60_000, id="10-min-old"), pytest.param(10 * 60_000, id="10-min-ahead")])
async def test_clock_skew_beyond_the_window(net: Net, offset: int) -> None:
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    headers = auth(net, "ke-police", "gw-af", body, now=net.clock.now_ms() + offset)
    assert error_of(await send(net, "gw-af", body, headers)) == (401, "E_CLOCK_SKEW")


async def test_skew_just_inside_the_window_is_accepted(net: Net) -> None:
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    headers = auth(net, "ke-police", "gw-af", body, now=net.clock.now_ms() - 300_000)
    assert (await send(net, "gw-af", body, headers)).status == 200


async def test_wrong_destination(net: Net) -> None:
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    # Signed for gw-eu, delivered to gw-af (e.g. a misrouted or reflected request).
    assert error_of(await send(net, "gw-af", body, auth(net, "ke-police", "gw-eu", body))) == (421, "E_WRONG_DESTINATION")


async def test_unknown_member(net: Net) -> None:
    rogue = MemberKeys.generate("xx-rogue", SeededRng("rogue"))
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    assert error_of(await send(net, "gw-af", body, auth(net, rogue, "gw-af", body))) == (403, "E_UNKNOWN_MEMBER")


async def test_unknown_key_id(net: Net) -> None:
    """A member of the roster signing with a key the roster does not list for it."""
    stale = MemberKeys.generate("ke-police", SeededRng("not-in-roster"))
    assert stale.signing_key_id != net.fed.keys["ke-police"].signing_key_id
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    assert error_of(await send(net, "gw-af", body, auth(net, stale, "gw-af", body))) == (403, "E_UNKNOWN_KEY")


async def test_revoked_key(net: Net) -> None:
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    before = await log_sizes(net)
    assert error_of(await send(net, "gw-af", body, auth(net, REVOKED, "gw-af", body))) == (403, "E_REVOKED")
    assert await log_sizes(net) == before


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream", "text/plain", None])
async def test_wrong_content_type(net: Net, content_type: str | None) -> None:
    body = batch(item(seal(net, "ke-police", ["int-org"])))
    headers = auth(net, "ke-police", "gw-af", body)
    if content_type is None:
        del headers["Content-Type"]
    else:
        headers["Content-Type"] = content_type
    status, _code = error_of(await send(net, "gw-af", body, headers))
    assert status == 415


async def test_oversize_request_body(net: Net) -> None:
    body = b"\x00" * (MAX_REQUEST_BYTES + 1024)
    before = await log_sizes(net)
    assert error_of(await send(net, "gw-af", body, auth(net, "ke-police", "gw-af", body))) == (413, "E_TOO_LARGE")
    assert await log_sizes(net) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1not msgpack", id="not-msgpack"),
        pytest.param(b"\x92\x01\x02", id="an-array"),
        pytest.param(EnvelopeBatch(items=(BatchItem(envelope=b"x", recipients=("ke-police",)),)).to_bytes() + b"\x00", id="trailing-bytes"),
        pytest.param(b"\x82\xa1v\x01\xa5items\x90", id="no-items"),
        pytest.param(b"\x82\xa1v\x02\xa5items\x91\x00", id="version-2"),
    ],
)
async def test_malformed_batch_body(net: Net, body: bytes) -> None:
    before = await log_sizes(net)
    status, code = error_of(await send(net, "gw-af", body, auth(net, "ke-police", "gw-af", body)))
    assert status == 400 and code in {"E_MALFORMED", "E_UNSUPPORTED_VERSION"}, code
    assert await log_sizes(net) == before


async def test_batch_over_max_batch_items(net: Net) -> None:
    envs = [seal(net, "ke-police", ["int-org"], seed=f"b{i}") for i in range(MAX_BATCH + 1)]
    body = batch(*(item(e) for e in envs))
    assert error_of(await send(net, "gw-af", body, auth(net, "ke-police", "gw-af", body))) == (400, "E_MALFORMED")
    await assert_never_forwarded(net, *(e.message_id for e in envs))


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", PATH, 405, "E_METHOD_NOT_ALLOWED"), ("PUT", "/v1/receipts", 405, "E_METHOD_NOT_ALLOWED"), ("POST", "/v1/nowhere", 404, "E_NOT_FOUND")],
)
async def test_wrong_method_or_path(net: Net, method: str, path: str, status: int, code: str) -> None:
    url = net.fed.roster.member("gw-af").endpoint + path
    async with aiohttp.ClientSession() as session, session.request(method, url, data=b"\x00", headers={"Content-Type": MSGPACK}) as resp:
        reply = Reply(resp.status, resp.content_type, await resp.read())
    assert error_of(reply) == (status, code)


async def test_receipts_endpoint_refuses_a_malformed_body(net: Net) -> None:
    body = b"\xc1"
    headers = auth(net, "ke-police", "gw-af", body, path="/v1/receipts")
    assert error_of(await send(net, "gw-af", body, headers, path="/v1/receipts")) == (400, "E_MALFORMED")


# -- item-level refusals: HTTP 200, a signed and logged "rejected" receipt -----------------------


async def test_policy_deny_by_label(net: Net) -> None:
    red = seal(net, "int-org", ["fr-police"], label="TLP:RED", seed="red")
    amber = seal(net, "int-org", ["fr-police"], seed="amber")
    prev = hashlib.sha256(b"the sender's last receipt for this copy").digest()
    raw_red, raw_amber = await post_items(net, "int-org", "gw-eu", replace(item(red), prev=prev), item(amber))
    receipt = await rejected(net, "gw-eu", raw_red, "E_POLICY_DENIED", peer="int-org")
    assert (receipt.message_id, receipt.header_digest, receipt.prev) == (red.message_id, red.header_digest, prev)
    accepted(net, "gw-eu", raw_amber)
    await assert_never_forwarded(net, red.message_id)
    assert list(net.nodes["fr-police"].delivered) == [amber.message_id]


async def test_oversize_envelope(net: Net) -> None:
    big = seal(net, "ke-police", ["int-org"], details=b"x" * MAX_ENVELOPE_BYTES, seed="big")
    assert len(big.to_bytes()) > MAX_ENVELOPE_BYTES
    small = seal(net, "ke-police", ["int-org"], seed="small")
    raw_big, raw_small = await post_items(net, "ke-police", "gw-af", item(big), item(small))
    await rejected(net, "gw-af", raw_big, "E_TOO_LARGE", peer="ke-police")
    accepted(net, "gw-af", raw_small)
    await assert_never_forwarded(net, big.message_id)


async def test_expired_envelope(net: Net) -> None:
    env = seal(net, "ke-police", ["int-org"], ttl=60_000, seed="short")
    await net.clock.advance(61_000)
    (raw,) = await post_items(net, "ke-police", "gw-af", item(env))
    receipt = await rejected(net, "gw-af", raw, "E_EXPIRED", peer="ke-police")
    assert receipt.message_id == env.message_id
    await assert_never_forwarded(net, env.message_id)


async def test_expiry_beyond_the_maximum_ttl(net: Net) -> None:
    too_long = seal(net, "ke-police", ["int-org"], ttl=DAY + 1, seed="long")
    at_limit = seal(net, "ke-police", ["int-org"], ttl=DAY, seed="limit")
    raw_long, raw_limit = await post_items(net, "ke-police", "gw-af", item(too_long), item(at_limit))
    await rejected(net, "gw-af", raw_long, "E_TTL_TOO_LONG", peer="ke-police")
    accepted(net, "gw-af", raw_limit)
    await assert_never_forwarded(net, too_long.message_id)


async def test_rate_limited(net: Net) -> None:
    """ke-fiu may send 2 envelopes at once, then one per second."""
    envs = [seal(net, "ke-fiu", ["int-org"], seed=f"r{i}") for i in range(4)]
    for env in envs[:2]:
        (raw,) = await post_items(net, "ke-fiu", "gw-af", item(env))
        accepted(net, "gw-af", raw)
    (raw,) = await post_items(net, "ke-fiu", "gw-af", item(envs[2]))
    await rejected(net, "gw-af", raw, "E_RATE_LIMITED", peer="ke-fiu")
    # Other origins are not held back by ke-fiu's bucket.
    (raw,) = await post_items(net, "ke-police", "gw-af", item(seal(net, "ke-police", ["int-org"], seed="other")))
    accepted(net, "gw-af", raw)
    await assert_never_forwarded(net, envs[2].message_id)
    await net.clock.advance(1_000)
    (raw,) = await post_items(net, "ke-fiu", "gw-af", item(envs[3]))
    accepted(net, "gw-af", raw)


async def test_node_submitting_through_a_gateway_that_is_not_its_home(net: Net) -> None:
    env = seal(net, "ke-police", ["fr-police"], seed="detour")  # ke-police is homed at gw-af
    (raw,) = await post_items(net, "ke-police", "gw-eu", item(env))
    await rejected(net, "gw-eu", raw, "E_POLICY_DENIED", peer="ke-police")
    await assert_never_forwarded(net, env.message_id)


async def test_node_submitting_another_members_message(net: Net) -> None:
    env = seal(net, "int-org", ["ke-fiu"], seed="stolen")
    (raw,) = await post_items(net, "ke-police", "gw-af", item(env))
    await rejected(net, "gw-af", raw, "E_POLICY_DENIED", peer="ke-police")
    await assert_never_forwarded(net, env.message_id)


async def test_gateway_relaying_recipients_not_homed_at_the_receiver(net: Net) -> None:
    stray = seal(net, "int-org", ["fr-police"], seed="stray")  # fr-police is homed at gw-eu itself
    mixed = seal(net, "int-org", ["fr-police", "ke-police"], seed="mixed")
    fine = seal(net, "int-org", ["fr-police", "ke-police"], seed="fine")
    raw_stray, raw_mixed, raw_fine = await post_items(net, "gw-eu", "gw-af", item(stray), item(mixed), item(fine, ["ke-police"]))
    await rejected(net, "gw-af", raw_stray, "E_POLICY_DENIED", peer="gw-eu")
    await rejected(net, "gw-af", raw_mixed, "E_POLICY_DENIED", peer="gw-eu")
    accepted(net, "gw-af", raw_fine)
    await assert_never_forwarded(net, stray.message_id, mixed.message_id)
    assert list(net.nodes["ke-police"].delivered) == [fine.message_id]
    assert net.nodes["fr-police"].delivered == {}


async def test_item_recipients_outside_the_envelope(net: Net) -> None:
    env = seal(net, "int-org", ["ke-police"], seed="widen")
    (raw,) = await post_items(net, "gw-eu", "gw-af", item(env, ["ke-fiu"]))
    await rejected(net, "gw-af", raw, "E_MALFORMED", peer="gw-eu")
    await assert_never_forwarded(net, env.message_id)


async def test_envelope_from_a_revoked_origin_relayed_by_a_valid_gateway(net: Net) -> None:
    env = seal(net, REVOKED, ["ke-police"], seed="revoked")
    (raw,) = await post_items(net, "gw-eu", "gw-af", item(env))
    await rejected(net, "gw-af", raw, "E_REVOKED", peer="gw-eu")
    await assert_never_forwarded(net, env.message_id)


async def test_tampered_envelope(net: Net) -> None:
    env = seal(net, "ke-police", ["int-org"], seed="tamper")
    other = seal(net, "ke-police", ["int-org"], seed="donor")
    bad_sig = Envelope(header_bytes=env.header_bytes, signature=bytes([env.signature[0] ^ 1]) + env.signature[1:], body=env.body)
    swapped_body = Envelope(header_bytes=env.header_bytes, signature=env.signature, body=other.body)
    raw_sig, raw_body = await post_items(net, "ke-police", "gw-af", item(bad_sig), item(swapped_body))
    assert (await rejected(net, "gw-af", raw_sig, "E_BAD_SIGNATURE", peer="ke-police")).message_id == env.message_id
    assert (await rejected(net, "gw-af", raw_body, "E_DIGEST_MISMATCH", peer="ke-police")).message_id == env.message_id
    await assert_never_forwarded(net, env.message_id)
    # The genuine envelope is still welcome: a forgery does not burn its message id.
    (raw,) = await post_items(net, "ke-police", "gw-af", item(env))
    accepted(net, "gw-af", raw)


async def test_a_poison_envelope_never_fails_the_batch(net: Net) -> None:
    first = seal(net, "ke-police", ["int-org"], seed="first")
    last = seal(net, "ke-police", ["fr-police"], seed="last")
    garbage = b"\x00 definitely not an envelope"
    poison = BatchItem(envelope=garbage, recipients=("int-org",))
    raw_first, raw_poison, raw_last = await post_items(net, "ke-police", "gw-af", item(first), poison, item(last))
    receipt = await rejected(net, "gw-af", raw_poison, "E_MALFORMED", peer="ke-police")
    assert receipt.message_id == NO_MESSAGE_ID and receipt.header_digest == hashlib.sha256(garbage).digest()
    accepted(net, "gw-af", raw_first)
    accepted(net, "gw-af", raw_last)
    await net.drain()
    assert list(net.nodes["int-org"].delivered) == [first.message_id]
    assert list(net.nodes["fr-police"].delivered) == [last.message_id]
    await assert_never_forwarded(net, NO_MESSAGE_ID)


async def test_the_same_envelope_twice_in_one_batch(net: Net) -> None:
    env = seal(net, "ke-police", ["int-org"], seed="twice")
    other = seal(net, "ke-police", ["fr-police"], seed="bystander")
    body = batch(item(env), item(other), item(env))
    reply = await net_post_unchecked(net, "ke-police", "gw-af", body)
    assert reply.status == 200, reply
    raw_a, raw_other, raw_b = BatchResults.from_bytes(reply.body).results
    assert raw_a == raw_b, "a duplicate gets the original receipt, byte for byte"
    accepted(net, "gw-af", raw_a)
    accepted(net, "gw-af", raw_other)
    await net.drain()
    assert net.nodes["int-org"].delivered == {env.message_id: [b"alert twice"]}


async def net_post_unchecked(net: Net, sender: str, dest: str, body: bytes) -> Reply:
    """Like :func:`send` but lets a 5xx through, so a regression shows its status instead of failing early."""
    url = net.fed.roster.member(dest).endpoint + PATH
    headers = auth(net, sender, dest, body)
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        return Reply(resp.status, resp.content_type, await resp.read())


async def test_every_refusal_is_counted_by_code_and_nothing_was_internal(net: Net) -> None:
    """A mixed run: the metrics count rejections by code, and no answer was a 5xx (``send`` asserts it)."""
    red = seal(net, "int-org", ["fr-police"], label="TLP:RED", seed="m-red")
    await post_items(net, "int-org", "gw-eu", item(red), BatchItem(envelope=b"junk", recipients=("fr-police",)))
    body = b"\xc1"
    error_of(await send(net, "gw-eu", body, auth(net, "int-org", "gw-eu", body)))
    async with aiohttp.ClientSession() as session, session.get(net.fed.roster.member("gw-eu").endpoint + "/metrics") as resp:
        text = await resp.text()
    assert 'code="E_POLICY_DENIED"} 1.0' in text and 'code="E_MALFORMED"} 1.0' in text
    assert "E_INTERNAL" not in text and "E_STORAGE" not in text


async def test_shutdown_during_a_sweep_is_prompt(tmp_path: Path) -> None:
    """Found by this file's fixture: closing a net right after a request hung for the whole sweep interval."""
    net = await start_strict_net(tmp_path, sweep_interval_s=3600.0)
    forwarder = net.gateways["gw-af"].forwarder
    in_sweep, release = asyncio.Event(), asyncio.Event()
    original = forwarder.dispatch

    async def gated_dispatch(now: int) -> None:
        in_sweep.set()
        await release.wait()
        await original(now)

    forwarder.dispatch = gated_dispatch  # type: ignore[method-assign]
    stopping: asyncio.Task[None] | None = None
    try:
        forwarder.wake()
        await asyncio.wait_for(in_sweep.wait(), timeout=5)
        stopping = asyncio.create_task(forwarder.stop())
        await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(asyncio.shield(stopping), timeout=2)
    finally:
        release.set()
        forwarder.wake()  # unstick the loop the bug left waiting, so teardown can finish
        if stopping is not None:
            await stopping
        forwarder.dispatch = original  # type: ignore[method-assign]
        await net.close()
