"""Officer authentication and authorisation on HTTP: who is calling, and may they?

The node's officer API and web console share one aiohttp application. Wire it as::

    app = web.Application(middlewares=[error_middleware, auth_middleware(store, clock)])
    add_session_routes(app, store, clock)

``error_middleware`` (:mod:`gateway.http`) must be outermost: this middleware
raises :mod:`protocol.errors` exceptions and relies on it to render
``{"error": {"code", "message"}}``.

**Authentication.** Every route under ``/v1/`` needs credentials, except
``POST /v1/session`` (the login) and the prefixes passed as ``exempt`` (a
node's peer-authenticated federation endpoints and public log API). The
decision uses both the raw path and the matched route's canonical path, so a
path trick cannot reach a ``/v1/`` handler unauthenticated. Everything else
(console files, ``/healthz``, ``/readyz``, ``/metrics``) passes through.
Credentials, in order: ``Authorization: Bearer hgt_...`` (API token) or
``Bearer hgs_...`` (session token, for scripts), else the ``hg_session``
cookie. A cookie is sent by the browser on its own, so a cookie-authenticated
request with any method but GET/HEAD/OPTIONS must also carry ``X-CSRF-Token``
equal to the session's CSRF token (returned at login and by ``GET
/v1/session``); bearer requests need none. The cookie is ``HttpOnly``,
``SameSite=Strict``, ``Path=/``, and ``Secure`` when the request came over TLS,
or always with ``secure_cookie=True`` (``[node] secure_cookies = true``), which
a node behind a TLS-terminating proxy needs since ``request.secure`` is false there. The login only takes ``application/json``, which a
cross-site form cannot send. The principal lands in ``request[PRINCIPAL]``.

**Brute force.** :class:`LoginThrottle` counts login attempts per username on
the monotonic clock: with ``max_failures`` failures inside ``failure_window_ms``
further attempts get ``E_RATE_LIMITED`` (429) without any password check, until
the oldest failure leaves the window. An attempt counts as failed until it
succeeds, so parallel guesses cannot slip past the limit; unknown usernames
count too, so the 429 reveals nothing. Memory is bounded by evicting the least
recently tried username (each eviction costs an attacker ``max_tracked``
password hashes).

**Authorisation** is the pure table :data:`GRANTS` (:func:`require`, :func:`may_modify`):

================ ======= ========== =======
action           officer supervisor auditor
================ ======= ========== =======
alert.send       yes     yes        no
alert.read       yes     yes        yes
alert.update     own     any        no
alert.cancel     own     any        no
inbox.read       yes     yes        no
inbox.ack        yes     yes        no
receipts.read    no      yes        yes
log.read         no      yes        yes
federation.read  yes     yes        yes
================ ======= ========== =======

Auditors oversee the agency's own actions: what was sent, its delivery status,
receipts and logs. They change nothing and never read the decrypted inbox
(other agencies' content addressed to officers). Supervisors also read
receipts and logs, since they answer for their officers.

**Logging.** Every 401, 403 and login 429 is logged as ``auth_denied`` with the
code, an internal reason, the username when known, method, path and remote
address. Passwords and tokens are never logged; a typed username is logged only
if it is a well-formed username, so a password typed into that field is not.
"""

from __future__ import annotations

import collections
import hmac
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.clock import Clock
from node.accounts import SESSION_TOKEN_PREFIX, USERNAME_RE, AccountStore, AuthFailure, Principal, Role, Session
from protocol.errors import BadRequestError, ConfigError, ForbiddenError, HeliographError, RateLimitedError, UnauthenticatedError, ValidationError

log = structlog.get_logger("heliograph.officer_auth")

SESSION_PATH = "/v1/session"
SESSION_COOKIE = "hg_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_LOGIN_BYTES = 4096

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
SESSION: web.RequestKey[Session] = web.RequestKey("session", Session)
_LOGIN_NAME: web.RequestKey[str] = web.RequestKey("login_name", str)


class Action(StrEnum):
    """Everything the officer API and console can be asked to do."""

    ALERT_SEND = "alert.send"
    ALERT_READ = "alert.read"
    ALERT_UPDATE = "alert.update"
    ALERT_CANCEL = "alert.cancel"
    INBOX_READ = "inbox.read"
    INBOX_ACK = "inbox.ack"
    RECEIPTS_READ = "receipts.read"
    LOG_READ = "log.read"
    FEDERATION_READ = "federation.read"


_MODIFY = frozenset({Action.ALERT_UPDATE, Action.ALERT_CANCEL})
_OFFICER = frozenset({Action.ALERT_SEND, Action.ALERT_READ, Action.INBOX_READ, Action.INBOX_ACK, Action.FEDERATION_READ}) | _MODIFY
GRANTS: dict[Role, frozenset[Action]] = {
    Role.OFFICER: _OFFICER,
    Role.SUPERVISOR: _OFFICER | {Action.RECEIPTS_READ, Action.LOG_READ},
    Role.AUDITOR: frozenset({Action.ALERT_READ, Action.RECEIPTS_READ, Action.LOG_READ, Action.FEDERATION_READ}),
}
"""The role matrix; officers hold ``alert.update``/``alert.cancel`` for their own alerts only (:func:`may_modify`)."""


def may_modify(principal: Principal, alert_owner: str) -> bool:
    """Whether ``principal`` may update or cancel an alert sent by ``alert_owner``."""
    return principal.role is Role.SUPERVISOR or (principal.role is Role.OFFICER and principal.username == alert_owner)


def require(principal: Principal, action: Action | str, *, owner: str | None = None) -> None:
    """Allow ``action`` for ``principal`` or raise; returns None so the answer cannot be ignored.

    For ``alert.update`` and ``alert.cancel`` pass the alert's sender as
    ``owner``; without it only the role-level right is checked (a route gate).

    Raises:
        ForbiddenError: The role does not allow the action (or not on this alert).
        ValueError: ``action`` is not an :class:`Action` (a programming error).
    """
    act = Action(action)
    if act not in GRANTS[principal.role]:
        raise ForbiddenError(f"role {principal.role} may not {act}")
    if act in _MODIFY and owner is not None and not may_modify(principal, owner):
        raise ForbiddenError(f"only the sender or a supervisor may {act.removeprefix('alert.')} this alert")


def authorize(request: web.Request, action: Action | str, *, owner: str | None = None) -> Principal:
    """The request's principal, once :func:`require` allows ``action``; for handlers.

    Raises:
        UnauthenticatedError: The route is not behind :func:`auth_middleware`.
        ForbiddenError: See :func:`require`.
    """
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:
        raise AuthFailure("authentication required", reason="no_principal")
    require(principal, action, owner=owner)
    return principal


@dataclass(frozen=True, slots=True, kw_only=True)
class OfficerAuthConfig:
    """Session lifetime and login damping limits."""

    session_ttl_ms: int = 12 * 3_600_000
    max_failures: int = 5
    failure_window_ms: int = 5 * 60_000
    max_tracked: int = 10_000
    secure_cookie: bool | None = None
    """Mark the session cookie Secure: None follows the request (TLS served by the node itself); True behind a TLS proxy."""

    def __post_init__(self) -> None:
        if min(self.session_ttl_ms, self.max_failures, self.failure_window_ms, self.max_tracked) < 1:
            raise ConfigError("officer auth limits must all be positive")


class LoginThrottled(RateLimitedError):
    """Too many failed logins for one username (logged as a denial, unlike other rate limits)."""


class LoginThrottle:
    """Per-username sliding window of failed logins, in memory, on the injected monotonic clock."""

    def __init__(self, clock: Clock, config: OfficerAuthConfig) -> None:
        self._clock = clock
        self._config = config
        self._failures: dict[str, collections.deque[float]] = {}

    def begin(self, username: str) -> None:
        """Record an attempt (counted as failed until :meth:`succeeded`), or refuse it.

        Raises:
            LoginThrottled: ``max_failures`` failures within the window already.
        """
        now, window = self._clock.monotonic(), self._config.failure_window_ms / 1000
        times = self._failures.pop(username, None) or collections.deque()
        while times and times[0] <= now - window:
            times.popleft()
        self._failures[username] = times  # re-inserted: dict order is least recently tried first
        if len(times) >= self._config.max_failures:
            retry_ms = max(1, math.ceil((times[0] + window - now) * 1000))
            raise LoginThrottled(f"too many failed logins for this username; try again in {math.ceil(retry_ms / 1000)} s", retry_after_ms=retry_ms)
        times.append(now)
        if len(self._failures) > self._config.max_tracked:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, username: str) -> None:
        """Forget the username's failures after a correct password."""
        self._failures.pop(username, None)


def _secure(config: OfficerAuthConfig, request: web.Request) -> bool:
    return request.secure if config.secure_cookie is None else config.secure_cookie


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def _needs_auth(request: web.Request, exempt: tuple[str, ...]) -> bool:
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else ""
    if not (_under(request.path, "/v1") or _under(canonical, "/v1")):
        return False
    if canonical and any(_under(canonical, prefix) for prefix in exempt):
        return False
    return not (request.method == "POST" and canonical == SESSION_PATH)


async def _authenticate(request: web.Request, store: AccountStore, now_ms: int) -> None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential:
            raise AuthFailure("send 'Authorization: Bearer <token>' or log in", reason="bad_authorization_header")
        if credential.startswith(SESSION_TOKEN_PREFIX):
            session = await store.authenticate_session(credential, now_ms=now_ms)
            request[SESSION], request[PRINCIPAL] = session, session.principal
        else:
            request[PRINCIPAL] = await store.authenticate_token(credential, now_ms=now_ms)
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise AuthFailure("authentication required: log in or send an API token", reason="no_credentials")
    session = await store.authenticate_session(cookie, now_ms=now_ms)
    request[SESSION], request[PRINCIPAL] = session, session.principal
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(sent, session.csrf_token.encode("ascii")):
            raise ForbiddenError("CSRF token missing or wrong", hint=f"Send the csrf_token from the login answer in the {CSRF_HEADER} header.")


def _log_denial(request: web.Request, exc: HeliographError) -> None:
    principal = request.get(PRINCIPAL)
    username = principal.username if principal is not None else request.get(_LOGIN_NAME)
    reason = exc.reason if isinstance(exc, AuthFailure) else exc.message
    log.warning("auth_denied", code=exc.code, reason=reason, username=username, method=request.method, path=request.path, remote=request.remote)


def auth_middleware(store: AccountStore, clock: Clock, *, exempt: Iterable[str] = (), on_denied: Callable[[str], None] = lambda _code: None) -> Middleware:
    """Authenticate ``/v1/`` requests (see the module docstring) and log every denial.

    Args:
        store: Where users, tokens and sessions live.
        clock: Wall-clock time for token and session expiry.
        exempt: Route prefixes under ``/v1/`` that authenticate otherwise or are public.
        on_denied: Called with the code of every denial (the node's metrics).
    """
    exempt_prefixes = tuple(exempt)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if _needs_auth(request, exempt_prefixes):
                await _authenticate(request, store, clock.now_ms())
            return await handler(request)
        except (UnauthenticatedError, ForbiddenError, LoginThrottled) as exc:
            _log_denial(request, exc)
            on_denied(exc.code)
            raise

    return middleware


async def _read_login(request: web.Request) -> tuple[str, str]:
    if request.content_type != "application/json":
        raise BadRequestError("send the login as application/json")
    raw = await request.read()  # bounded by the app's client_max_size first
    try:
        doc = json.loads(raw) if len(raw) <= MAX_LOGIN_BYTES else None
    except ValueError:
        raise BadRequestError("login body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadRequestError(f"login body must be a JSON object of at most {MAX_LOGIN_BYTES} bytes")
    fields = {key: "required, a non-empty string" for key in ("username", "password") if not isinstance(doc.get(key), str) or not doc[key]}
    fields.update({key: "unknown field" for key in doc if key not in ("username", "password")})
    if fields:
        raise ValidationError(fields)
    return doc["username"], doc["password"]


def _no_store(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Cache-Control"] = "no-store"
    return response


def add_session_routes(app: web.Application, store: AccountStore, clock: Clock, config: OfficerAuthConfig | None = None) -> LoginThrottle:
    """Mount ``POST``, ``GET`` and ``DELETE /v1/session`` (log in, who am I, log out) on ``app``.

    Returns:
        The login throttle, for inspection.
    """
    config = config or OfficerAuthConfig()
    throttle = LoginThrottle(clock, config)

    async def login(request: web.Request) -> web.StreamResponse:
        username, password = await _read_login(request)
        if USERNAME_RE.fullmatch(username):
            request[_LOGIN_NAME] = username
        throttle.begin(username)
        principal = await store.authenticate_password(username, password)
        throttle.succeeded(username)
        session = await store.create_session(principal, now_ms=clock.now_ms(), ttl_ms=config.session_ttl_ms)
        log.info("session_started", username=principal.username, role=str(principal.role), remote=request.remote)
        body = {"username": principal.username, "role": str(principal.role), "csrf_token": session.csrf_token}
        response = web.json_response(body | {"expires_at": session.expires_at, "token": session.token})
        response.set_cookie(
            SESSION_COOKIE, session.token, max_age=config.session_ttl_ms // 1000, path="/", secure=_secure(config, request), httponly=True, samesite="Strict"
        )
        return _no_store(response)

    async def whoami(request: web.Request) -> web.StreamResponse:
        principal = request[PRINCIPAL]
        body: dict[str, object] = {"username": principal.username, "role": str(principal.role), "via": principal.via}
        session = request.get(SESSION)
        if session is not None:
            body |= {"csrf_token": session.csrf_token, "expires_at": session.expires_at}
        return _no_store(web.json_response(body))

    async def logout(request: web.Request) -> web.StreamResponse:
        session = request.get(SESSION)
        if session is None:
            raise BadRequestError("this request is not authenticated by a session", hint="API tokens are revoked with `user revoke-token`.")
        await store.end_session(session.token)
        log.info("session_ended", username=session.principal.username, remote=request.remote)
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/", secure=_secure(config, request), httponly=True, samesite="Strict")
        return _no_store(response)

    app.router.add_post(SESSION_PATH, login)
    app.router.add_get(SESSION_PATH, whoami)
    app.router.add_delete(SESSION_PATH, logout)
    return throttle
