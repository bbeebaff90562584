"""The [tls] config table: validated and loaded at start-up, with errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.config import parse_config
from protocol.errors import ConfigError

POLICY = {"max_ttl_ms": 86_400_000, "rules": [{"action": "allow", "origins": ["*"]}]}


def _doc(tls: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"hop": {"id": "gw-eu", "data_dir": "data", "roster": "roster.bin", "key_file": "k.key"}, "policy": POLICY}
    if tls is not None:
        doc["tls"] = tls
    return doc


@pytest.fixture
def pems(tmp_path: Path) -> Path:
    ca = trustme.CA()
    leaf = ca.issue_cert("gw-eu.example")
    leaf.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    (tmp_path / "tls.key").chmod(0o600)
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    other = trustme.CA().issue_cert("elsewhere.example")
    other.cert_chain_pems[0].write_to_path(str(tmp_path / "other.crt"))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    return tmp_path


def test_without_tls_the_member_speaks_plain_http(tmp_path: Path) -> None:
    tls = parse_config(_doc(None), base=tmp_path).tls
    assert (tls.server, tls.client, tls.scheme) == (None, None, "http")


def test_a_valid_table_builds_both_contexts(pems: Path) -> None:
    tls = parse_config(_doc({"cert": "tls.crt", "key": "tls.key", "ca": "ca.pem"}), base=pems).tls
    assert tls.server is not None and tls.client is not None and tls.scheme == "https"
    assert (tls.cert, tls.key, tls.ca) == (pems / "tls.crt", pems / "tls.key", pems / "ca.pem")
    only_trust = parse_config(_doc({"ca": str(pems / "ca.pem")}), base=Path("/nonexistent")).tls  # absolute paths are taken as they are
    assert only_trust.server is None and only_trust.client is not None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"cert": "tls.crt"}, "tls.cert and tls.key: give both, or neither"),
        ({"key": "tls.key"}, "tls.cert and tls.key: give both, or neither"),
        ({"cert": "missing.crt", "key": "tls.key"}, "tls.cert: "),
        ({"cert": "tls.crt", "key": 7}, "tls.key: expected a file path"),
        ({"cert": "other.crt", "key": "tls.key"}, "tls.cert/tls.key: cannot load"),
        ({"ca": "junk.pem"}, "tls.ca: cannot load"),
        ({"bogus": "x"}, "tls.bogus: unknown key"),
    ],
)
def test_bad_tables_are_refused_naming_the_key(pems: Path, table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_doc(table), base=pems)
    assert message in info.value.message and info.value.code == "E_CONFIG"


def test_a_private_key_others_can_read_is_refused(pems: Path) -> None:
    (pems / "tls.key").chmod(0o644)
    with pytest.raises(ConfigError, match="accessible by group or others") as info:
        parse_config(_doc({"cert": "tls.crt", "key": "tls.key"}), base=pems)
    assert info.value.hint and "chmod 600" in info.value.hint


async def test_a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not(pems: Path) -> None:
    import ssl

    import aiohttp
    from aiohttp import web

    from gateway.tls import CertificateReloader
    from tests.support.net import free_port, loopback_server

    first_ca, renewal_ca = trustme.CA(), trustme.CA()

    def install(ca: trustme.CA, *, key: bool = True) -> None:
        leaf = ca.issue_cert("127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(str(pems / "tls.crt"))
        if key:
            leaf.private_key_pem.write_to_path(str(pems / "tls.key"))

    def trusting(ca: trustme.CA) -> ssl.SSLContext:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        return context

    install(first_ca)
    tls = parse_config(_doc({"cert": "tls.crt", "key": "tls.key"}), base=pems).tls
    reloader = CertificateReloader(tls)
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    server = loopback_server(app, free_port())
    await server.start_server(ssl=tls.server)
    url = str(server.make_url("/"))

    async def served_by(ca: trustme.CA) -> bool:
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting(ca))) as session, session.get(url) as resp:
                return resp.status == 200
        except aiohttp.ClientConnectorCertificateError:
            return False

    try:
        assert await served_by(first_ca) and not await served_by(renewal_ca)
        assert not reloader.check(), "nothing changed"
        install(renewal_ca, key=False)  # a certificate whose key has not been copied yet
        assert not reloader.check()
        assert await served_by(first_ca), "the old pair keeps serving"
        install(renewal_ca)
        assert reloader.check()
        assert await served_by(renewal_ca) and not await served_by(first_ca)
    finally:
        await server.close()


async def test_a_tls_listener_behind_an_http_roster_endpoint_is_flagged(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    from gateway.app import open_hop
    from gateway.config import load_config
    from tests.support.clock import FakeClock
    from tests.support.federation import SeededRng
    from tests.support.procs import wall_ms, write_federation

    write_federation(tmp_path, "mismatch", nodes=(("int-org", "gw-eu"),))  # roster endpoints are http://
    leaf = trustme.CA().issue_cert("127.0.0.1")
    leaf.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    (tmp_path / "tls.key").chmod(0o600)
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    with (tmp_path / "gw-eu.toml").open("a") as fh:
        fh.write('\n[tls]\ncert = "tls.crt"\nkey = "tls.key"\n')
    with capture_logs() as logs:
        hop = await open_hop(load_config(tmp_path / "gw-eu.toml"), clock=FakeClock(wall_ms()), rng=SeededRng("mismatch"))
    await hop.close()
    assert [e for e in logs if e["event"] == "endpoint_scheme_mismatch" and e["member"] == "gw-eu"]
