"""Export a delivery evidence bundle (docs/PROTOCOL.md 22) for an alert this node sent.

The origin node already holds everything but the log proofs: the signed header of
the alert (in the hop's ``messages`` table until the ciphertext is purged after
expiry), of each escalation message it sent for it, and of each ``ack`` message it
accepted for either; and every receipt those messages produced (the hop receipt
store). :func:`export_bundle` adds, per receipt, a checkpoint of the issuing hop's
log and the receipt's inclusion proof, fetched over the public log read API
(section 14) from the hop's roster endpoint, and returns the canonical bundle bytes.

With ``witnesses``, the checkpoint is instead the newest one that at least
``require_k`` of them cosigned (``GET /v1/witness/cosignatures/{origin}``, served by
:mod:`gateway.witness`), so a verifier need not trust the hops' logs alone.

Nothing here judges the evidence: the verifier (:func:`protocol.evidence.verify_bundle`)
does, offline. A hop that cannot be reached, or answers nonsense, is
``E_UNREACHABLE``; a message whose header is gone is ``E_CONFLICT``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import structlog

from node.service import Node
from protocol.checkpoint import Checkpoint, CosignatureVerifier, SignedNote
from protocol.errors import CheckpointError, ConflictError, HeliographError, MalformedError, NotFoundError, UnreachableError
from protocol.evidence import EvidenceBundle, EvidenceItem, MessageEvidence
from protocol.keys import log_origin
from protocol.receipts import SignedReceipt
from protocol.roster import Roster

log = structlog.get_logger("heliograph.evidence")

Witness = tuple[str, str]
"""A witness: its base URL and its cosigner vkey (``name+hash+base64(0x04 || key)``)."""
CosignedFetch = Callable[[aiohttp.ClientSession, str, str], Awaitable[str]]
"""``fetch(session, witness_url, log_origin)`` returns that witness's latest cosigned note for the log."""
MAX_ANSWER_BYTES = 1 << 20


async def fetch_text(session: aiohttp.ClientSession, url: str) -> str:
    """GET ``url`` and return its text body.

    Raises:
        UnreachableError: No connection, a status other than 200 (with the peer's code), or an oversized body.
    """
    try:
        async with session.get(url) as resp:
            body = await resp.content.read(MAX_ANSWER_BYTES + 1)
            if len(body) > MAX_ANSWER_BYTES:
                raise UnreachableError(f"{url}: answer larger than {MAX_ANSWER_BYTES} bytes")
            if resp.status != 200:
                raise UnreachableError(f"{url}: HTTP {resp.status} {_error_code(body)}".rstrip())
            return body.decode("utf-8")
    except (aiohttp.ClientError, TimeoutError, OSError, UnicodeDecodeError) as exc:
        raise UnreachableError(f"{url}: {type(exc).__name__}: {exc}") from None


async def fetch_cosigned(session: aiohttp.ClientSession, witness_url: str, origin: str) -> str:
    """The default :data:`CosignedFetch`: ``GET {witness_url}/v1/witness/cosignatures/{origin}``."""
    return await fetch_text(session, f"{witness_url.rstrip('/')}/v1/witness/cosignatures/{origin}")


def _error_code(body: bytes) -> str:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return code if isinstance(code, str) and code.isascii() and len(code) <= 64 else ""


class Prover:
    """Fetches checkpoints (one per hop, cached) and inclusion proofs for receipts."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        roster: Roster,
        *,
        witnesses: Sequence[Witness] = (),
        require_k: int = 0,
        fetch: CosignedFetch = fetch_cosigned,
    ) -> None:
        """Set up a prover; ``fetch`` asks one witness for its cosigned note.

        Raises:
            MalformedError: A bad witness vkey, or ``require_k`` not between 1 and ``len(witnesses)``
                with witnesses, or not 0 without.
        """
        if type(require_k) is not int or not (1 <= require_k <= len(witnesses) if witnesses else require_k == 0):
            raise MalformedError("require_k must be between 1 and the number of witnesses (0 without witnesses)")
        for _url, vkey in witnesses:
            CosignatureVerifier.from_vkey(vkey)
        self.session = session
        self.roster = roster
        self.witnesses = tuple(witnesses)
        self.require_k = require_k
        self.fetch = fetch
        self._checkpoints: dict[str, tuple[str, Checkpoint]] = {}

    async def item(self, raw: bytes) -> EvidenceItem:
        """The evidence item for one signed receipt.

        Raises:
            MalformedError: The receipt does not parse.
            ConflictError: It has no log index, or no checkpoint covers it yet.
            UnreachableError, CheckpointError: From fetching the checkpoint or the proof.
        """
        receipt = SignedReceipt.from_bytes(raw).receipt
        if receipt.log_index is None:
            raise ConflictError(f"receipt of {receipt.hop} for message {receipt.message_id.hex()} has no log index and cannot be proven")
        note, checkpoint = await self.checkpoint(receipt.hop)
        if receipt.log_index >= checkpoint.size:
            note, checkpoint = await self.checkpoint(receipt.hop, fresh=True)
        if receipt.log_index >= checkpoint.size:
            raise ConflictError(
                f"no checkpoint of {receipt.hop}'s log covers index {receipt.log_index} yet (size {checkpoint.size})",
                hint="Retry once the witnesses have cosigned a newer checkpoint." if self.witnesses else None,
            )
        endpoint = self.roster.member(receipt.hop).endpoint.rstrip("/")
        text = await fetch_text(self.session, f"{endpoint}/v1/log/proof/inclusion?index={receipt.log_index}&size={checkpoint.size}")
        return EvidenceItem(receipt=raw, checkpoint=note, inclusion=_proof(text, endpoint))

    async def checkpoint(self, hop: str, *, fresh: bool = False) -> tuple[str, Checkpoint]:
        """The (note text, parsed checkpoint) of ``hop``'s log used for all its receipts.

        Raises:
            UnreachableError: The hop (or every witness) could not be reached.
            MalformedError, CheckpointError: A note that is not a checkpoint, or too few cosignatures.
        """
        if fresh or hop not in self._checkpoints:
            member = self.roster.member(hop)
            if self.witnesses:
                note = await self._witnessed(hop, member.log_vkey)
            else:
                note = await fetch_text(self.session, member.endpoint.rstrip("/") + "/v1/log/checkpoint")
            self._checkpoints[hop] = (note, Checkpoint.from_body(SignedNote.from_text(note).text))
        return self._checkpoints[hop]

    async def _witnessed(self, hop: str, log_vkey: str) -> str:
        from gateway.witness import merge_cosignatures, verify_cosignatures

        origin = log_origin(hop)
        by_text: dict[str, list[str]] = {}
        for url, _vkey in self.witnesses:
            try:
                note = await self.fetch(self.session, url, origin)
                by_text.setdefault(SignedNote.from_text(note).text, []).append(note)
            except HeliographError as exc:  # one witness down or confused is fine while k others answer
                log.warning("witness_unusable", witness=url, origin=origin, code=exc.code)
        candidates = sorted(by_text.items(), key=lambda kv: Checkpoint.from_body(kv[0]).size, reverse=True)
        for _text, notes in candidates:
            merged = merge_cosignatures(notes)
            try:
                verify_cosignatures(merged, log_vkey, [v for _u, v in self.witnesses], self.require_k)
            except CheckpointError:
                continue
            return merged
        raise CheckpointError(f"no checkpoint of {hop}'s log is cosigned by {self.require_k} of the {len(self.witnesses)} witnesses")


def _proof(text: str, where: str) -> tuple[bytes, ...]:
    try:
        path = json.loads(text)["path"]
        if not isinstance(path, list):
            raise TypeError("path")
        return tuple(base64.b64decode(p, validate=True) for p in path)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise UnreachableError(f"{where}: the inclusion proof answer is not {{'path': [base64, ...]}}") from None


async def _message(node: Node, origin: str, message_id: bytes) -> tuple[bytes, bytes, list[bytes]]:
    """(header bytes, header signature, receipts) of a message this node accepted or sent."""
    signed = await node.hop.ctx.reader.signed_header(origin, message_id)
    if signed is None:
        raise NotFoundError(f"this node holds no message {message_id.hex()} from {origin}")
    receipts = [r for r in await node.hop.ctx.reader.receipts_for(message_id) if SignedReceipt.from_bytes(r).receipt.message_id == message_id]
    return signed[0], signed[1], receipts


async def export_bundle(
    node: Node,
    message_id: bytes,
    session: aiohttp.ClientSession,
    *,
    witnesses: Sequence[Witness] = (),
    require_k: int = 0,
    rosters: Sequence[bytes] = (),
    fetch: CosignedFetch = fetch_cosigned,
) -> bytes:
    """Collect and prove every receipt of an alert this node sent, its escalations and the acks to them.

    Args:
        node: The origin node.
        message_id: The alert (any kind but ``ack``) this node sent.
        session: For the log read API of every hop (and the witnesses).
        witnesses: If given, checkpoints must be cosigned by ``require_k`` of them.
        require_k: See ``witnesses``.
        rosters: Signed roster versions to include, oldest first (for verifiers who pinned an older one).
        fetch: How to ask one witness for its cosigned note (tests inject fakes).

    Returns:
        The bundle's canonical bytes (docs/PROTOCOL.md 22.1).

    Raises:
        NotFoundError: This node sent no such alert.
        ConflictError: The header is purged, or a receipt is not yet covered by a checkpoint.
        UnreachableError: A hop's log API (or too many witnesses) could not be reached.
        CheckpointError: Fewer than ``require_k`` witnesses cosigned a usable checkpoint.
        MalformedError: ``require_k`` out of range, or a roster that does not parse.
    """
    alert = await node.reader.alert(message_id)
    if alert is None or alert.kind == "ack":
        raise NotFoundError(f"this node sent no alert {message_id.hex()}")
    prover = Prover(session, node.hop.ctx.roster, witnesses=witnesses, require_k=require_k, fetch=fetch)

    async def part(origin: str, mid: bytes) -> MessageEvidence:
        header, signature, receipts = await _message(node, origin, mid)
        return MessageEvidence(header_bytes=header, signature=signature, items=tuple([await prover.item(raw) for raw in receipts]))

    escalations = [await part(node.me, child.message_id) for child in await node.reader.children(message_id)]
    acks = []
    for ref in (message_id, *(e.message_id for e in escalations)):
        for ack in await node.reader.acks(ref):
            if ack.direction == "in":
                acks.append(await part(ack.member, ack.message_id))
    main = await part(node.me, message_id)
    bundle = EvidenceBundle(message_id=message_id, message=main, escalations=tuple(escalations), acks=tuple(acks), rosters=tuple(rosters))
    log.info("evidence_exported", message_id=message_id.hex(), origin=node.me, receipts=sum(len(p.items) for p in bundle.parts))
    return bundle.to_bytes()
