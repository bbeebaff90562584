"""Serve the duty-officer web console: static assets shipped inside the package.

The console (``node/console/``: ``index.html``, ES modules, ``styles.css``, an
SVG icon) needs no build step; it talks only to the officer API and
``GET /v1/events``. :func:`add_console_routes` mounts

* ``GET /`` -> ``index.html`` (``Cache-Control: no-store``);
* ``GET /console/{name}`` -> one asset (``no-cache`` with an ETag, so an upgrade
  is picked up on the next load and an unchanged file costs a 304).

The assets are read once, when the routes are added, into a name -> bytes map;
a request can only name a file of that map, so no request path ever reaches the
file system (no traversal, no symlinks, no directory listing). Every answer
carries a strict Content-Security-Policy: scripts and styles only from this
origin, no inline code, no ``eval``, no framing, no third-party connections,
and Trusted Types enforced so that no string can become HTML.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from protocol.errors import NotFoundError

CONSOLE_PACKAGE = "node"
CONSOLE_DIR = "console"
INDEX = "index.html"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; media-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One console file, held in memory."""

    body: bytes
    content_type: str
    etag: str


def load_assets(root: Traversable | None = None) -> dict[str, Asset]:
    """Read every console file with a known type, keyed by its path under the console folder.

    Args:
        root: The console folder; by default ``node/console`` inside the installed package.

    Raises:
        FileNotFoundError: The folder has no ``index.html`` (a broken install).
    """
    root = root or resources.files(CONSOLE_PACKAGE).joinpath(CONSOLE_DIR)
    assets: dict[str, Asset] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            if suffix in CONTENT_TYPES and not entry.name.startswith("."):
                body = entry.read_bytes()
                assets[prefix + entry.name] = Asset(body, CONTENT_TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    walk(root, "")
    if INDEX not in assets:
        raise FileNotFoundError(f"the console assets are missing ({INDEX} not found in {root})")
    return assets


def _answer(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": cache_control, "ETag": asset.etag}
    if request.secure:  # served over TLS (the node's own, [tls]): browsers must never fall back to HTTP
        headers["Strict-Transport-Security"] = "max-age=31536000"
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers=headers | {"Content-Type": asset.content_type})


def add_console_routes(app: web.Application, assets: dict[str, Asset] | None = None) -> None:
    """Mount ``GET /`` and ``GET /console/{name}`` on ``app``.

    Args:
        app: The node's application.
        assets: The files to serve; by default :func:`load_assets`.

    Raises:
        FileNotFoundError: See :func:`load_assets`.
    """
    files = assets if assets is not None else load_assets()

    async def index(request: web.Request) -> web.Response:
        return _answer(request, files[INDEX], "no-store")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = files.get(name)
        if found is None or name == INDEX:
            raise NotFoundError("no such console file")
        return _answer(request, found, "no-cache")

    app.router.add_get("/", index)
    app.router.add_get("/console/{name:.+}", asset)
