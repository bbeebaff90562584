"""A hop's log read API under a test's control, honest unless told to lie (witness tests).

Serves checkpoints, entries and proofs over a small in-memory log signed with the
test log key of tests/support/logs.py; a test can make it serve a split view, a
rolled-back tree, edited entries, bad proofs or errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.signing
from aiohttp import web

from gateway.http import error_middleware
from gateway.log_verifier import LocalTree
from protocol import fields
from protocol.checkpoint import Checkpoint, sign_checkpoint
from protocol.merkle import EMPTY_ROOT, consistency_proof, inclusion_proof, leaf_hash
from tests.support.logs import LOG_KEY, ORIGIN


def leaves(n: int, tag: str = "r") -> list[bytes]:
    return [f"{tag}eceipt {i}".encode() * 4 for i in range(n)]


def tree_of(data: list[bytes]) -> LocalTree:
    return LocalTree(bytearray(b"".join(leaf_hash(d) for d in data)))


def note_for(data: list[bytes], key: nacl.signing.SigningKey = LOG_KEY) -> str:
    root = tree_of(data).root(len(data)) if data else EMPTY_ROOT
    return sign_checkpoint(Checkpoint(origin=ORIGIN, size=len(data), root=root), ORIGIN, key).to_text()


@dataclass
class FakeLog:
    """A hop's log read API under the test's control: honest unless told to lie."""

    leaves: list[bytes] = field(default_factory=list)
    served: list[bytes] | None = None
    """Entries served instead of the real leaves (a receipt edited on disk)."""
    notes: list[str] = field(default_factory=list)
    """Checkpoints to serve first, one per request (a split view); then the honest one."""
    bad_proof: bool = False
    down: bool = False
    broken: set[str] = field(default_factory=set)
    """Paths answered with 503 (a hop whose storage fails)."""
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[error_middleware])
        app.router.add_get("/v1/log/checkpoint", self._checkpoint)
        app.router.add_get("/v1/log/entries", self._entries)
        app.router.add_get("/v1/log/proof/consistency", self._consistency)
        app.router.add_get("/v1/log/proof/inclusion", self._inclusion)
        return app

    def _seen(self, request: web.Request) -> None:
        self.requests.append(request.path_qs)
        if self.down or request.path in self.broken:
            raise web.HTTPServiceUnavailable()

    async def _checkpoint(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.Response(text=self.notes.pop(0) if self.notes else note_for(self.leaves), content_type="text/plain")

    async def _entries(self, request: web.Request) -> web.Response:
        self._seen(request)
        start, end = int(request.query["start"]), int(request.query["end"])
        data = (self.leaves if self.served is None else self.served)[start:end]
        return web.json_response({"entries": [fields.b64(d) for d in data]})

    def _path(self, hashes: list[bytes]) -> list[str]:
        if self.bad_proof and hashes:
            hashes = [bytes([hashes[0][0] ^ 1]) + hashes[0][1:], *hashes[1:]]
        return [fields.b64(h) for h in hashes]

    async def _consistency(self, request: web.Request) -> web.Response:
        self._seen(request)
        first, second = int(request.query["first"]), int(request.query["second"])
        proof = consistency_proof(first, second, tree_of(self.leaves).subtree) if 0 < first < second else []
        return web.json_response({"first": first, "second": second, "path": self._path(proof)})

    async def _inclusion(self, request: web.Request) -> web.Response:
        self._seen(request)
        index, size = int(request.query["index"]), int(request.query["size"])
        return web.json_response({"index": index, "size": size, "path": self._path(inclusion_proof(index, size, tree_of(self.leaves).subtree))})
