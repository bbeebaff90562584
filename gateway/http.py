"""HTTP conventions shared by every hop's aiohttp app.

Every error leaves as ``{"error": {"code": "E_...", "message": "..."}}`` with the
status the error class names; unknown paths and methods get the same shape; an
unexpected exception is logged (without request bodies) and answered with
``E_INTERNAL`` rather than aiohttp's HTML page, so clients never have to parse
anything else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from protocol.errors import BadRequestError, HeliographError

log = structlog.get_logger("heliograph.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(code: str, message: str, status: int) -> web.Response:
    """A JSON error body with a stable code."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error with a stable code."""
    try:
        return await handler(request)
    except HeliographError as exc:
        return web.json_response({"error": exc.to_dict()}, status=exc.http_status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "E_NOT_FOUND", 405: "E_METHOD_NOT_ALLOWED", 413: "E_TOO_LARGE"}.get(exc.status, "E_HTTP")
        return error_response(code, exc.reason, exc.status)
    except Exception:
        log.exception("unhandled_error", path=request.path, method=request.method)
        return error_response("E_INTERNAL", "internal error; see the server log", 500)


def query_int(request: web.Request, name: str, *, minimum: int = 0) -> int:
    """Read a required non-negative decimal integer query parameter.

    Raises:
        BadRequestError: Missing, not a plain decimal, or below ``minimum``.
    """
    raw = request.query.get(name)
    if raw is None:
        raise BadRequestError(f"query parameter {name!r} is required")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or (len(raw) > 1 and raw[0] == "0"):
        raise BadRequestError(f"query parameter {name!r} must be a non-negative decimal integer")
    value = int(raw)
    if value < minimum:
        raise BadRequestError(f"query parameter {name!r} must be at least {minimum}")
    return value


def json_ok(body: dict[str, Any]) -> web.Response:
    return web.json_response(body)
