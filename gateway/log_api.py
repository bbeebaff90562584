"""The audit log's public read API, mounted on every hop's aiohttp app.

Paths and bodies are a public contract (docs/PROTOCOL.md, "Log read API"):

* ``GET /v1/log/checkpoint``: the latest signed checkpoint, exactly the C2SP note text;
* ``GET /v1/log/entries?start=S&end=E``: ``{"entries": [base64 leaf, ...]}`` for [S, E);
* ``GET /v1/log/proof/inclusion?index=I&size=N``: ``{"index", "size", "path"}``;
* ``GET /v1/log/proof/consistency?first=M&second=N``: ``{"first", "second", "path"}``;
* ``GET /v1/log/key``: the log's C2SP vkey line.

Bytes are standard base64 with padding. Handlers are thin: parse, call the
store, encode.
"""

from __future__ import annotations

import base64

from aiohttp import web

from gateway.http import query_int
from gateway.log_store import LogStore

LOG_STORE: web.AppKey[LogStore] = web.AppKey("log_store", LogStore)
LOG_VKEY: web.AppKey[str] = web.AppKey("log_vkey", str)
TEXT = "text/plain"


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(item).decode("ascii") for item in items]


async def get_checkpoint(request: web.Request) -> web.Response:
    note = await request.app[LOG_STORE].checkpoint()
    return web.Response(text=note, content_type=TEXT, charset="utf-8", headers={"Cache-Control": "no-store"})


async def get_entries(request: web.Request) -> web.Response:
    start, end = query_int(request, "start"), query_int(request, "end")
    entries = await request.app[LOG_STORE].entries(start, end)
    return web.json_response({"entries": _b64(entries)})


async def get_inclusion(request: web.Request) -> web.Response:
    index, size = query_int(request, "index"), query_int(request, "size", minimum=1)
    path = await request.app[LOG_STORE].inclusion_proof(index, size)
    return web.json_response({"index": index, "size": size, "path": _b64(path)})


async def get_consistency(request: web.Request) -> web.Response:
    first, second = query_int(request, "first"), query_int(request, "second")
    path = await request.app[LOG_STORE].consistency_proof(first, second)
    return web.json_response({"first": first, "second": second, "path": _b64(path)})


async def get_key(request: web.Request) -> web.Response:
    return web.Response(text=request.app[LOG_VKEY] + "\n", content_type=TEXT, charset="utf-8")


def setup_log_routes(app: web.Application, store: LogStore, vkey: str) -> None:
    """Mount the read API for ``store`` (whose checkpoints verify under ``vkey``) on ``app``."""
    app[LOG_STORE] = store
    app[LOG_VKEY] = vkey
    app.router.add_get("/v1/log/checkpoint", get_checkpoint)
    app.router.add_get("/v1/log/entries", get_entries)
    app.router.add_get("/v1/log/proof/inclusion", get_inclusion)
    app.router.add_get("/v1/log/proof/consistency", get_consistency)
    app.router.add_get("/v1/log/key", get_key)
