"""Assemble a node's aiohttp application: the hop's routes plus the officer API and console.

* hop routes (``/v1/envelopes``, ``/v1/receipts``: peer-authenticated; ``/v1/log``:
  public; ``/healthz``, ``/readyz``, ``/metrics``), exactly as on a gateway;
* the officer API (node/api.py) and ``/v1/session`` behind the officer auth
  middleware; ``/v1/destinations`` needs an officer login on a node;
* the duty-officer web console (node/console_routes.py) at ``/`` and ``/console/``.
"""

from __future__ import annotations

from aiohttp import web

from gateway.app import OFFICER_AUTH, create_app
from node.api import add_officer_routes
from node.console_routes import add_console_routes
from node.officer_auth import OfficerAuthConfig, add_session_routes, auth_middleware
from node.service import Node

PEER_ROUTES = ("/v1/envelopes", "/v1/receipts", "/v1/log")


def create_node_app(node: Node, *, close_on_cleanup: bool = True) -> web.Application:
    """The node's application; with ``close_on_cleanup`` the node closes when the app stops."""
    app = create_app(node.hop, close_on_cleanup=False)
    app[OFFICER_AUTH] = True  # /v1/destinations and /v1/messages are for officers here; [ops] guards /metrics
    denied = node.metrics.auth_denied
    app.middlewares.append(auth_middleware(node.accounts, node.clock, exempt=PEER_ROUTES, on_denied=lambda code: denied.labels(code=code).inc()))
    add_session_routes(app, node.accounts, node.clock, OfficerAuthConfig(session_ttl_ms=node.config.session_ttl_ms, secure_cookie=node.config.secure_cookies))
    add_officer_routes(app, node)
    add_console_routes(app)

    async def on_shutdown(_app: web.Application) -> None:
        node.events.close()  # end every /v1/events stream, so shutdown does not wait for consoles to hang up

    app.on_shutdown.append(on_shutdown)

    async def on_cleanup(_app: web.Application) -> None:
        if close_on_cleanup:
            await node.close()

    app.on_cleanup.append(on_cleanup)
    return app
