"""Officer auth on HTTP: login, tokens, cookie sessions with CSRF, the role matrix, lockout, denial logs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from nacl.pwhash import argon2id

from gateway.http import error_middleware
from node.accounts import AccountStore, Principal, Role
from node.officer_auth import (
    GRANTS,
    Action,
    LoginThrottle,
    LoginThrottled,
    OfficerAuthConfig,
    add_session_routes,
    auth_middleware,
    authorize,
    may_modify,
    require,
)
from protocol.errors import ConfigError, ForbiddenError
from tests.support.clock import FakeClock

T0 = 1_800_000_000_000
TTL = 3_600_000
PASSWORD = "correct horse battery staple"
USERS = {"alice": Role.OFFICER, "bob": Role.OFFICER, "sue": Role.SUPERVISOR, "audrey": Role.AUDITOR, "carol": Role.OFFICER}

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]


def _routes(app: web.Application) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def list_alerts(request: web.Request) -> web.Response:
        principal = authorize(request, Action.ALERT_READ)
        return web.json_response({"username": principal.username, "via": principal.via})

    async def send_alert(request: web.Request) -> web.Response:
        return web.json_response({"sent_by": authorize(request, "alert.send").username})

    async def cancel_alert(request: web.Request) -> web.Response:
        return web.json_response({"cancelled_by": authorize(request, "alert.cancel", owner=request.match_info["owner"]).username})

    def needing(action: Action) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            authorize(request, action)
            return web.json_response({})

        return handler

    async def peer(request: web.Request) -> web.Response:
        return web.Response(status=202)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/alerts", list_alerts)
    app.router.add_post("/v1/alerts", send_alert)
    app.router.add_post("/v1/alerts/{owner}/cancel", cancel_alert)
    app.router.add_get("/v1/inbox", needing(Action.INBOX_READ))
    app.router.add_get("/v1/log/entries", healthz)
    app.router.add_get("/misrouted", needing(Action.ALERT_READ))  # a handler wired outside /v1/ by mistake
    app.router.add_get("/v1/logbook", needing(Action.LOG_READ))
    app.router.add_post("/v1/envelopes", peer)


@dataclass
class Env:
    client: Client
    store: AccountStore
    clock: FakeClock

    async def login(self, username: str, password: str = PASSWORD) -> tuple[int, dict[str, Any]]:
        resp = await self.client.post("/v1/session", json={"username": username, "password": password})
        return resp.status, await resp.json()

    async def token(self, username: str, name: str = "ci", ttl_ms: int | None = None) -> dict[str, str]:
        return {"Authorization": "Bearer " + await self.store.create_token(username, name, now_ms=self.clock.now_ms(), ttl_ms=ttl_ms)}

    def forget_cookies(self) -> None:
        self.client.session.cookie_jar.clear()


async def _open_env(tmp_path: Path, aiohttp_client: ClientFactory, *outer: Any) -> AsyncIterator[Env]:
    clock = FakeClock(T0)
    store = await AccountStore.open(tmp_path / "node.db", opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
    try:
        for username, role in USERS.items():
            await store.add_user(username, role, PASSWORD, now_ms=T0)
        await store.set_disabled("carol", True)
        app = web.Application(middlewares=[error_middleware, *outer, auth_middleware(store, clock, exempt=["/v1/envelopes", "/v1/log/"])])
        add_session_routes(app, store, clock, OfficerAuthConfig(session_ttl_ms=TTL))
        _routes(app)
        yield Env(await aiohttp_client(app), store, clock)
    finally:
        await store.close()


@pytest.fixture
async def env(tmp_path: Path, aiohttp_client: ClientFactory) -> AsyncIterator[Env]:
    async for opened in _open_env(tmp_path, aiohttp_client):
        yield opened


async def _error(resp: Any) -> tuple[int, str, str]:
    body = await resp.json()
    return resp.status, body["error"]["code"], body["error"]["message"]


async def test_public_and_exempt_paths_need_no_credentials(env: Env) -> None:
    assert (await env.client.get("/healthz")).status == 200
    assert (await env.client.post("/v1/envelopes")).status == 202
    assert (await env.client.get("/v1/log/entries")).status == 200  # the public log API of a hop, exempted
    assert (await _error(await env.client.get("/v1/logbook")))[:2] == (401, "E_UNAUTHENTICATED")  # "/v1/log/" does not cover it
    assert (await _error(await env.client.get("/v1/alerts")))[:2] == (401, "E_UNAUTHENTICATED")
    assert (await _error(await env.client.get("/v1/no-such-thing")))[:2] == (401, "E_UNAUTHENTICATED")
    assert (await _error(await env.client.get("/misrouted")))[:2] == (401, "E_UNAUTHENTICATED")  # authorize() fails closed


async def test_login_answers_and_sets_a_strict_httponly_cookie(env: Env) -> None:
    resp = await env.client.post("/v1/session", json={"username": "alice", "password": PASSWORD})
    body = await resp.json()
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    assert body["username"] == "alice" and body["role"] == "officer" and body["expires_at"] == T0 + TTL
    assert body["token"].startswith("hgs_") and len(body["csrf_token"]) == 43
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"hg_session={body['token']};")
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert attributes["samesite"] == "SameSite=Strict" and attributes["path"] == "Path=/" and "httponly" in attributes
    assert attributes["max-age"] == f"Max-Age={TTL // 1000}"
    assert "secure" not in attributes  # plain HTTP here; see the TLS test below


async def test_cookie_is_secure_over_tls(tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    @web.middleware
    async def as_if_tls(request: web.Request, handler: Any) -> web.StreamResponse:
        return await handler(request.clone(scheme="https"))

    async for env in _open_env(tmp_path, aiohttp_client, as_if_tls):
        resp = await env.client.post("/v1/session", json={"username": "alice", "password": PASSWORD})
        assert "Secure" in resp.headers["Set-Cookie"].split("; ")


async def test_cookie_session_needs_csrf_on_unsafe_methods(env: Env) -> None:
    _, body = await env.login("alice")
    assert await (await env.client.get("/v1/alerts")).json() == {"username": "alice", "via": "session"}  # GET: no CSRF needed
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": body["csrf_token"][:-1]}):
        status, code, message = await _error(await env.client.post("/v1/alerts", headers=headers))
        assert (status, code, message) == (403, "E_FORBIDDEN", "CSRF token missing or wrong")
    resp = await env.client.post("/v1/alerts", headers={"X-CSRF-Token": body["csrf_token"]})
    assert resp.status == 200 and await resp.json() == {"sent_by": "alice"}


async def test_bearer_credentials_need_no_csrf(env: Env) -> None:
    headers = await env.token("bob")
    resp = await env.client.post("/v1/alerts", headers=headers)
    assert resp.status == 200 and await resp.json() == {"sent_by": "bob"}
    _, body = await env.login("alice")
    env.forget_cookies()
    resp = await env.client.post("/v1/alerts", headers={"Authorization": f"Bearer {body['token']}"})
    assert await resp.json() == {"sent_by": "alice"}
    # The Authorization header wins over a cookie, and does not fall back to it when bad.
    await env.login("alice")
    status, code, _ = await _error(await env.client.get("/v1/alerts", headers={"Authorization": "Bearer hgt_nope"}))
    assert (status, code) == (401, "E_UNAUTHENTICATED")


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong password entirely"), ("alice", "\ud800" * 12), ("mallory", PASSWORD), ("carol", PASSWORD)])
async def test_bad_logins_are_401_and_alike(env: Env, username: str, password: str) -> None:
    status, body = await env.login(username, password)
    assert (status, body["error"]) == (401, {"code": "E_UNAUTHENTICATED", "message": "unknown user or wrong password"})
    assert "Set-Cookie" not in (await env.client.post("/v1/session", json={"username": username, "password": password})).headers


@pytest.mark.parametrize(
    "authorization", ["Basic YWxpY2U6cGFzc3dvcmQ=", "Bearer", "Bearer ", "bearer hgt_" + "A" * 43, "Bearer hgs_" + "A" * 43, "Heliograph x"]
)
async def test_bad_authorization_headers_are_401(env: Env, authorization: str) -> None:
    assert (await _error(await env.client.get("/v1/alerts", headers={"Authorization": authorization})))[:2] == (401, "E_UNAUTHENTICATED")


async def test_revoked_expired_and_disabled_credentials_are_401(env: Env) -> None:
    revoked = await env.token("alice", "revoked")
    await env.store.revoke_token("alice", "revoked")
    expiring = await env.token("alice", "expiring", ttl_ms=60_000)
    _, session = await env.login("bob")
    env.forget_cookies()
    bob_token = await env.token("bob")
    await env.clock.advance(TTL)
    await env.store.set_disabled("bob", True)
    for headers in (revoked, expiring, bob_token, {"Authorization": f"Bearer {session['token']}"}, {"Cookie": f"hg_session={session['token']}"}):
        assert (await _error(await env.client.get("/v1/alerts", headers=headers)))[:2] == (401, "E_UNAUTHENTICATED")


async def test_session_expiry(env: Env) -> None:
    await env.login("alice")
    await env.clock.advance(TTL - 1)
    assert (await env.client.get("/v1/alerts")).status == 200
    await env.clock.advance(1)
    status, code, message = await _error(await env.client.get("/v1/alerts"))
    assert (status, code, message) == (401, "E_UNAUTHENTICATED", "session invalid or expired; log in again")


async def test_role_matrix_over_http(env: Env) -> None:
    async def as_user(username: str, method: str, path: str) -> int:
        return (await env.client.request(method, path, headers=await env.token(username, f"t{method}{path}"))).status

    assert await as_user("audrey", "POST", "/v1/alerts") == 403
    assert await as_user("audrey", "GET", "/v1/inbox") == 403
    assert await as_user("audrey", "GET", "/v1/logbook") == 200
    assert await as_user("alice", "GET", "/v1/logbook") == 403
    assert await as_user("alice", "GET", "/v1/inbox") == 200
    assert await as_user("alice", "POST", "/v1/alerts/bob/cancel") == 403
    assert await as_user("alice", "POST", "/v1/alerts/alice/cancel") == 200
    assert await as_user("sue", "POST", "/v1/alerts/bob/cancel") == 200
    assert await as_user("audrey", "POST", "/v1/alerts/audrey/cancel") == 403
    body = await (await env.client.post("/v1/alerts/bob/cancel", headers=await env.token("alice", "again"))).json()
    assert body["error"] == {"code": "E_FORBIDDEN", "message": "only the sender or a supervisor may cancel this alert"}


async def test_lockout_after_five_failures(env: Env) -> None:
    for _ in range(5):
        assert (await env.login("alice", "wrong password entirely"))[0] == 401
    status, body = await env.login("alice")  # even the right password is not checked now
    assert (status, body["error"]["code"]) == (429, "E_RATE_LIMITED")
    assert "300 s" in body["error"]["message"]
    assert (await env.login("bob"))[0] == 200  # per username
    for _ in range(6):
        await env.login("mallory")  # unknown names lock the same way, so a 429 reveals nothing
    assert (await env.login("mallory"))[0] == 429
    await env.clock.advance(5 * 60_000 - 1)
    assert (await env.login("alice"))[0] == 429
    await env.clock.advance(1)
    assert (await env.login("alice"))[0] == 200


async def test_success_clears_the_failure_count(env: Env) -> None:
    for _ in range(2):
        for _ in range(4):
            assert (await env.login("alice", "wrong password entirely"))[0] == 401
        assert (await env.login("alice"))[0] == 200


async def test_whoami_and_logout(env: Env) -> None:
    _, login = await env.login("alice")
    me = await (await env.client.get("/v1/session")).json()
    assert me == {"username": "alice", "role": "officer", "via": "session", "csrf_token": login["csrf_token"], "expires_at": T0 + TTL}
    assert (await env.client.delete("/v1/session")).status == 403  # a cookie logout needs the CSRF token too
    resp = await env.client.delete("/v1/session", headers={"X-CSRF-Token": login["csrf_token"]})
    assert resp.status == 204 and "hg_session=" in resp.headers["Set-Cookie"]
    env.forget_cookies()
    assert (await env.client.get("/v1/session", headers={"Cookie": f"hg_session={login['token']}"})).status == 401
    token = await env.token("audrey")
    assert await (await env.client.get("/v1/session", headers=token)).json() == {"username": "audrey", "role": "auditor", "via": "token"}
    assert (await _error(await env.client.delete("/v1/session", headers=token)))[:2] == (400, "E_BAD_REQUEST")


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "username=alice&password=x"}, 400, "E_BAD_REQUEST"),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "E_BAD_REQUEST"),
        ({"json": ["alice", PASSWORD]}, 400, "E_BAD_REQUEST"),
        ({"json": {"username": "alice", "password": "x" * 5000}}, 400, "E_BAD_REQUEST"),
        ({"json": {"username": "alice"}}, 422, "E_VALIDATION"),
        ({"json": {"username": "alice", "password": 12}}, 422, "E_VALIDATION"),
        ({"json": {"username": "alice", "password": PASSWORD, "role": "supervisor"}}, 422, "E_VALIDATION"),
    ],
)
async def test_login_body_is_strict(env: Env, kwargs: dict[str, Any], status: int, code: str) -> None:
    assert (await _error(await env.client.post("/v1/session", **kwargs)))[:2] == (status, code)


async def test_denials_are_logged_without_secrets(env: Env) -> None:
    token_headers = await env.token("audrey")
    with structlog.testing.capture_logs() as logs:
        await env.login("alice", "wrong password entirely")
        await env.login("my secret passphrase", PASSWORD)  # a password typed into the username field
        _, session = await env.login("bob")
        await env.client.post("/v1/alerts")  # cookie without CSRF
        await env.client.post("/v1/alerts", headers=token_headers)  # auditor may not send
        env.forget_cookies()
        await env.client.get("/v1/alerts", headers={"Authorization": "Bearer hgt_" + "B" * 43})
    denials = [(e["code"], e["reason"], e["username"], e["path"]) for e in logs if e["event"] == "auth_denied"]
    assert denials == [
        ("E_UNAUTHENTICATED", "bad_password", "alice", "/v1/session"),
        ("E_UNAUTHENTICATED", "unknown_user", None, "/v1/session"),
        ("E_FORBIDDEN", "CSRF token missing or wrong", "bob", "/v1/alerts"),
        ("E_FORBIDDEN", "role auditor may not alert.send", "audrey", "/v1/alerts"),
        ("E_UNAUTHENTICATED", "unknown", None, "/v1/alerts"),
    ]
    assert all(e["log_level"] == "warning" for e in logs if e["event"] == "auth_denied")
    assert [e["username"] for e in logs if e["event"] == "session_started"] == ["bob"]
    everything = repr(logs)
    for secret in ("wrong password entirely", "my secret passphrase", PASSWORD, session["token"], session["csrf_token"], token_headers["Authorization"][7:]):
        assert secret not in everything


async def test_lockout_is_logged(env: Env) -> None:
    for _ in range(5):
        await env.login("alice", "wrong password entirely")
    with structlog.testing.capture_logs() as logs:
        await env.login("alice")
    assert [(e["event"], e["code"], e["username"]) for e in logs] == [("auth_denied", "E_RATE_LIMITED", "alice")]


# -- the pure parts ----------------------------------------------------------------------------

EXPECTED = {
    Role.OFFICER: {"alert.send", "alert.read", "alert.update", "alert.cancel", "inbox.read", "inbox.ack", "federation.read"},
    Role.SUPERVISOR: {"alert.send", "alert.read", "alert.update", "alert.cancel", "inbox.read", "inbox.ack", "federation.read", "receipts.read", "log.read"},
    Role.AUDITOR: {"alert.read", "receipts.read", "log.read", "federation.read"},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_role_matrix(role: Role, action: Action) -> None:
    principal = Principal(username="pat", role=role, via="token")
    assert (action in GRANTS[role]) == (action in EXPECTED[role])
    if action in EXPECTED[role]:
        require(principal, action)
        require(principal, str(action))
    else:
        with pytest.raises(ForbiddenError) as info:
            require(principal, action)
        assert (info.value.code, info.value.http_status) == ("E_FORBIDDEN", 403)


@pytest.mark.parametrize("action", ["alert.update", "alert.cancel"])
def test_modifying_others_alerts(action: str) -> None:
    officer, supervisor, auditor = (
        Principal(username=n, role=r, via="session") for n, r in (("pat", Role.OFFICER), ("sam", Role.SUPERVISOR), ("aud", Role.AUDITOR))
    )
    assert may_modify(officer, "pat") and not may_modify(officer, "kim")
    assert may_modify(supervisor, "kim") and not may_modify(auditor, "aud")
    require(officer, action, owner="pat")
    require(supervisor, action, owner="kim")
    with pytest.raises(ForbiddenError):
        require(officer, action, owner="kim")
    with pytest.raises(ForbiddenError):
        require(auditor, action, owner="aud")


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        require(Principal(username="pat", role=Role.SUPERVISOR, via="token"), "alert.delete")


def test_throttle_forgets_the_least_recently_tried_username() -> None:
    clock = FakeClock(T0)
    throttle = LoginThrottle(clock, OfficerAuthConfig(max_failures=1, max_tracked=2))
    throttle.begin("a")
    throttle.begin("b")
    with pytest.raises(LoginThrottled):
        throttle.begin("a")  # refreshed: now the most recently tried
    throttle.begin("c")  # evicts "b"
    with pytest.raises(LoginThrottled):
        throttle.begin("a")
    throttle.begin("b")  # forgotten, so allowed again
    throttle.succeeded("b")
    throttle.begin("b")


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        OfficerAuthConfig(max_failures=0)


def test_secure_cookie_can_be_forced_behind_a_tls_proxy() -> None:
    from aiohttp.test_utils import make_mocked_request

    from node.officer_auth import _secure

    plain = make_mocked_request("POST", "/v1/session")
    assert _secure(OfficerAuthConfig(), plain) is False
    assert _secure(OfficerAuthConfig(secure_cookie=True), plain) is True
    assert _secure(OfficerAuthConfig(secure_cookie=False), plain.clone(scheme="https")) is False
