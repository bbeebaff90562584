"""Assemble a hop: stores, policy, forwarder and the aiohttp application.

``open_hop`` opens everything a hop owns (the SQLite file with the audit log
and the queues, the roster, the keys) and ``create_app`` exposes it:

* ``POST /v1/envelopes`` and ``POST /v1/receipts``: peer-authenticated
  (``Authorization: Heliograph ...``, docs/PROTOCOL.md), msgpack bodies;
* ``GET /v1/log/...``: the public log read API;
* ``GET /v1/destinations``: each next hop's backlog, last success, last error,
  next retry and state ("why is this alert late?"), and ``GET /v1/messages/{id}``:
  one message's copies, their retry state and its receipts ("where is this alert?");
* ``GET /healthz`` (the process answers), ``GET /readyz`` (stores open, roster
  valid, not shutting down), ``GET /metrics`` (Prometheus text).

Shutdown (SIGTERM) stops the listener, lets in-flight requests finish their
commits, stops the forwarder, then drains and closes the log: nothing already
answered "accepted" can be lost, because it was committed before the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from gateway.clock import Clock
from gateway.config import HopConfig
from gateway.forwarder import Forwarder
from gateway.hop import HopContext, accept_batch, accept_receipts
from gateway.hop_store import MIGRATIONS as HOP_MIGRATIONS
from gateway.hop_store import HopReader
from gateway.http import error_middleware
from gateway.keyfile import read_secret_keys
from gateway.log_api import setup_log_routes
from gateway.log_store import LogStore
from gateway.metrics import HopMetrics
from gateway.policy import NonceCache, Policy, RateLimiter
from gateway.roster_watch import RosterWatcher
from protocol.errors import BadAuthError, BadRequestError, ConfigError, HeliographError, NotFoundError, TooLargeError, UnauthenticatedError
from protocol.keys import MemberKeys, Rng, format_vkey, log_origin
from protocol.receipts import SignedReceipt
from protocol.roster import Roster, SignedRoster
from protocol.transport import verify_request

log = structlog.get_logger("heliograph.app")

MSGPACK = "application/x-msgpack"


@dataclass(slots=True)
class Hop:
    """A running hop: its context, forwarder and config."""

    config: HopConfig
    ctx: HopContext
    forwarder: Forwarder
    nonces: NonceCache
    ready: bool = True
    roster_task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        self.ready = False
        if self.roster_task is not None:
            self.roster_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.roster_task
        await self.forwarder.stop()
        await self.ctx.log.close()
        await self.ctx.reader.close()


def load_roster(config: HopConfig, now: int) -> Roster:
    """Read and verify the pinned roster file.

    Raises:
        ConfigError: Unreadable file.
        HeliographError: The roster does not verify (threshold, expiry).
    """
    try:
        data = config.roster_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"hop.roster: cannot read {config.roster_path}: {exc.strerror}") from None
    return SignedRoster.from_bytes(data).verify_trusted(now)


async def open_hop(
    config: HopConfig,
    *,
    clock: Clock,
    rng: Rng,
    keys: MemberKeys | None = None,
    roster: Roster | None = None,
    migrations: Sequence[tuple[str, Sequence[str]]] = (),
) -> Hop:
    """Open the hop's stores and start its forwarder.

    Raises:
        ConfigError, StorageError, HeliographError: Anything that prevents a safe start.
    """
    keys = keys or read_secret_keys(config.key_file)
    if keys.member_id != config.member_id:
        raise ConfigError(f"hop.key_file holds keys for {keys.member_id}, not {config.member_id}")
    watcher: RosterWatcher | None = None
    if roster is None:
        roster = load_roster(config, clock.now_ms())
        watcher = RosterWatcher(config.roster_path, SignedRoster.from_bytes(config.roster_path.read_bytes()), local_check=lambda r: _check_membership(r, keys))
    _check_membership(roster, keys)
    if config.tls.server is not None and roster.member(keys.member_id).endpoint.startswith("http://"):
        log.warning("endpoint_scheme_mismatch", member=keys.member_id, hint="this member serves TLS only, but the roster gives peers an http:// endpoint")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = await LogStore.open(config.db_path, origin=log_origin(keys.member_id), signer=keys.log_signer, config=config.log)
    try:
        await store.migrate("hop", HOP_MIGRATIONS)  # same file, same single writer
        for component, steps in migrations:  # e.g. a node's own tables; before anything else writes
            await store.migrate(component, steps)
        reader = await HopReader.open(config.db_path)
    except BaseException:
        await store.close()
        raise
    ctx = HopContext(
        keys=keys,
        roster=roster,
        log=store,
        reader=reader,
        clock=clock,
        policy=Policy.from_config(config.policy),
        rate_limiter=RateLimiter.from_config(config.policy, clock),
        metrics=HopMetrics(),
        limits=config.limits,
        max_batch=config.max_batch,
        client_ssl=config.tls.client,
    )
    ctx.metrics.watch_roster(lambda: ctx.roster)
    forwarder = Forwarder(ctx, config.queue, rng)
    ctx.on_queued = forwarder.wake
    await forwarder.start()
    nonces = NonceCache(window_ms=config.limits.max_clock_skew_ms, clock=clock)
    hop = Hop(config=config, ctx=ctx, forwarder=forwarder, nonces=nonces)
    if watcher is not None:

        async def adopt(signed: SignedRoster) -> None:
            ctx.roster = watcher.roster  # new requests and sends use it; nothing restarts

        hop.roster_task = asyncio.create_task(watcher.run(clock, interval_s=config.queue.sweep_interval_s, on_update=adopt), name="roster-watch")
    return hop


def _check_membership(roster: Roster, keys: MemberKeys) -> None:
    """The roster must list this hop with the log key it signs with.

    Raises:
        ConfigError: Not a member, or the log key differs from the key file's.
    """
    member = roster.member(keys.member_id)
    if member.log_vkey != format_vkey(log_origin(keys.member_id), bytes(keys.log_signer.verify_key)):
        raise ConfigError("the roster's log_vkey for this member does not match hop.key_file")


HOP: web.AppKey[Hop] = web.AppKey("hop", Hop)
OFFICER_AUTH: web.AppKey[bool] = web.AppKey("officer_auth", bool)
"""Set by a node: its officer authentication already guards every ``/v1/`` operations endpoint."""


async def _authenticated(request: web.Request) -> tuple[str, bytes]:
    """Read and authenticate a peer request; every refusal is counted and logged for the operator."""
    try:
        return await _authenticate(request)
    except HeliographError as exc:
        request.app[HOP].ctx.metrics.requests_refused.labels(code=exc.code).inc()
        log.warning("peer_request_refused", code=exc.code, error=exc.message, path=request.path, remote=request.remote)
        raise


async def _authenticate(request: web.Request) -> tuple[str, bytes]:
    hop = request.app[HOP]
    if request.content_type != MSGPACK:
        raise web.HTTPUnsupportedMediaType(text=f"Content-Type must be {MSGPACK}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLargeError(f"request body exceeds {hop.config.max_request_bytes} bytes") from None
    ctx = hop.ctx
    headers = request.headers.getall("Authorization", [])
    if len(headers) > 1:
        raise BadAuthError("exactly one Authorization header is allowed")
    auth = verify_request(
        headers[0] if headers else "",
        method=request.method,
        path=request.rel_url.raw_path,
        query=request.rel_url.raw_query_string,
        body=body,
        me=ctx.me,
        roster=ctx.roster,
        now=ctx.clock.now_ms(),
        max_skew_ms=ctx.limits.max_clock_skew_ms,
    )
    hop.nonces.check_and_remember(auth.origin, auth.nonce, auth.ts)
    await hop.forwarder.peer_seen(auth.origin)
    return auth.origin, body


async def post_envelopes(request: web.Request) -> web.Response:
    peer, body = await _authenticated(request)
    return web.Response(body=await accept_batch(request.app[HOP].ctx, peer, body), content_type=MSGPACK)


async def post_receipts(request: web.Request) -> web.Response:
    peer, body = await _authenticated(request)
    return web.Response(body=await accept_receipts(request.app[HOP].ctx, peer, body), content_type=MSGPACK)


def _operator(request: web.Request) -> None:
    """With ``[ops] token_file``, the operations endpoints demand ``Authorization: Bearer <token>``.

    Raises:
        UnauthenticatedError: The token is set and the request does not carry it.
    """
    token = request.app[HOP].config.ops_token
    if token is None or (request.path.startswith("/v1/") and request.app.get(OFFICER_AUTH, False)):
        return
    sent = request.headers.get("Authorization", "")
    if not hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), f"Bearer {token}".encode()):
        raise UnauthenticatedError("this endpoint needs the hop's operations token", hint="Send 'Authorization: Bearer <token>' ([ops] token_file).")


async def get_message(request: web.Request) -> web.Response:
    """``GET /v1/messages/{id}``: one message's copies, their retry state and its receipts, here."""
    _operator(request)
    ctx = request.app[HOP].ctx
    text = request.match_info["id"]
    if len(text) != 32 or not all(c in "0123456789abcdef" for c in text):
        raise BadRequestError("message id: expected 32 lowercase hex digits")
    trace = await ctx.reader.trace(bytes.fromhex(text))
    if trace is None:
        raise NotFoundError("this hop has no record of that message")
    receipts = []
    for raw in trace.pop("receipts"):
        digest = hashlib.sha256(raw).hexdigest()
        try:
            r = SignedReceipt.from_bytes(raw, limits=ctx.limits).verify(ctx.roster)
        except HeliographError as exc:
            receipts.append({"digest": digest, "verified": False, "error": exc.code})
            continue
        entry = {"hop": r.hop, "event": r.event, "time": r.time, "peer": r.peer, "log_index": r.log_index, "digest": digest, "verified": True}
        receipts.append(entry | {k: v for k, v in (("reason", r.reason), ("retry_until", r.retry_until)) if v is not None})
    return web.json_response({"message_id": text, "now": ctx.clock.now_ms(), **trace, "receipts": receipts})


async def get_destinations(request: web.Request) -> web.Response:
    _operator(request)
    hop = request.app[HOP]
    statuses = await hop.ctx.reader.destinations()
    now = hop.ctx.clock.now_ms()
    body: list[dict[str, Any]] = [
        {
            "destination": s.destination,
            "state": s.state,
            "backlog": s.backlog,
            "failures": s.failures,
            "next_retry_at": s.backoff_until if s.backoff_until > now else None,
            "last_success_at": s.last_success_at,
            "last_error": s.last_error,
            "last_error_at": s.last_error_at,
            "last_attempt_at": s.last_attempt_at,
        }
        for s in statuses
    ]
    return web.json_response({"now": now, "destinations": body})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "member": request.app[HOP].ctx.me})


async def readyz(request: web.Request) -> web.Response:
    hop = request.app[HOP]
    problems = []
    if not hop.ready:
        problems.append("shutting down")
    if hop.ctx.clock.now_ms() >= hop.ctx.roster.expires:
        problems.append("roster expired")
    try:
        await hop.ctx.log.size()
    except HeliographError as exc:
        problems.append(exc.message)
    status = 200 if not problems else 503
    return web.json_response({"ready": not problems, "problems": problems}, status=status)


async def metrics(request: web.Request) -> web.Response:
    _operator(request)
    body, ctype = request.app[HOP].ctx.metrics.render()
    return web.Response(body=body, headers={"Content-Type": ctype})


def create_app(hop: Hop, *, close_on_cleanup: bool = True) -> web.Application:
    """The hop's aiohttp application (the caller runs it)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=hop.config.max_request_bytes)
    app[HOP] = hop
    app.router.add_post("/v1/envelopes", post_envelopes)
    app.router.add_post("/v1/receipts", post_receipts)
    app.router.add_get("/v1/destinations", get_destinations)
    app.router.add_get("/v1/messages/{id}", get_message)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    setup_log_routes(app, hop.ctx.log, hop.ctx.roster.member(hop.ctx.me).log_vkey)

    async def on_shutdown(_app: web.Application) -> None:
        hop.ready = False

    async def on_cleanup(_app: web.Application) -> None:
        if close_on_cleanup:
            await hop.close()

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app
