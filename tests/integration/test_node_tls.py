"""A node serving its officer API and console over TLS: Secure cookies and HSTS without extra settings."""

from __future__ import annotations

import ssl

import aiohttp
import trustme

from node.app import create_node_app
from tests.support.agencies import PASSWORD, Agencies
from tests.support.net import free_port, loopback_server


async def test_over_tls_the_session_cookie_is_secure_and_the_console_pins_https(fed: Agencies) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    server = loopback_server(create_node_app(fed.nodes["int-org"], close_on_cleanup=False), free_port())
    await server.start_server(ssl=server_tls)
    https, http = str(server.make_url("")), fed.url("int-org")
    login = {"username": "officer-int-org", "password": PASSWORD}
    try:
        assert https.startswith("https://")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls)) as session:
            async with session.get(https + "/") as resp:
                assert resp.status == 200 and resp.headers["Strict-Transport-Security"] == "max-age=31536000"
            async with session.post(https + "/v1/session", json=login) as resp:
                assert resp.status == 200
                cookie = resp.cookies["hg_session"]
                assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
        assert fed.session is not None
        async with fed.session.get(http + "/") as resp:  # the same node over plain HTTP (loopback)
            assert resp.status == 200 and "Strict-Transport-Security" not in resp.headers
        async with fed.session.post(http + "/v1/session", json=login) as resp:
            assert resp.status == 200 and not resp.cookies["hg_session"]["secure"]
    finally:
        await server.close()
