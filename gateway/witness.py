"""The witness: an oversight body's monitor that cosigns each hop's log only while it stays honest.

``heliograph witness run --config FILE`` (docs/WITNESS.md) polls every watched log's read API
(docs/PROTOCOL.md 14) each ``poll_interval_s`` and, per log, at most one check in flight:

1. fetch ``/v1/log/checkpoint`` and open it with the log's vkey from the roster (13.8);
2. compare it with the last checkpoint it verified (:func:`judge`): a smaller tree is a
   ``rollback``, the same size with another root a ``fork`` (split view), a larger tree needs
   a consistency proof (13.5) that verifies, else ``inconsistent``;
3. audit the entries (``audit`` in the config): ``new`` downloads each entry once and folds it
   into a compact range kept in the state, ``full`` runs :func:`gateway.log_verifier.verify_log`
   (every entry and sampled inclusion proofs) every round. A served entry that does not match
   the signed tree is ``tampered_leaf`` with its index;
4. only then cosign it (``cosignature/v1``, 13.9) with a timestamp from the injected clock, and
   persist the note and the cosignature atomically (:mod:`gateway.witness_store`).

Alarms are logged at error level as ``witness_alarm`` with the origin, sizes and index, kept in
the state with the signed notes that prove them, and shown by the HTTP API. A log in alarm is
never cosigned again until an operator clears it (``heliograph witness clear``). A hop that does
not answer, or answers something unparsable, proves nothing: that is a ``witness_warning``
(``unreachable``, ``bad_response``) and the witness tries again next round.

The HTTP API (:func:`create_witness_app`) serves ``GET /v1/witness/cosignatures/{origin}`` (the
latest cosigned note, so hops and verifiers can gather k of n witnesses and check them with
:func:`verify_cosignatures`), ``/v1/witness/status``, ``/v1/witness/key``, ``/healthz`` and
``/metrics``.

The witness is split by concern: the config is :mod:`gateway.witness_config`, the key
:mod:`gateway.witness_key`, the files :mod:`gateway.witness_store`, the stateless checks
:mod:`gateway.witness_checks` and the poll loop :mod:`gateway.witness_monitor`. This module
holds what hops and verifiers use (k of n cosignatures), the HTTP API and :func:`serve_witness`,
and re-exports the names callers import from ``gateway.witness``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import structlog
from aiohttp import web

from gateway.clock import Clock
from gateway.http import error_middleware
from gateway.service import serve_until_signal
from gateway.witness_checks import Verdict, judge
from gateway.witness_config import load_witness_config
from gateway.witness_monitor import Witness, WitnessAlarmError
from gateway.witness_store import Health
from protocol.checkpoint import CosignatureVerifier, NoteSignature, NoteVerifier, SignedNote, open_checkpoint, verify_cosignature
from protocol.errors import BadSignatureError, CheckpointError, MalformedError

log = structlog.get_logger("heliograph.witness")


# -- for hops and verifiers: k of n witnesses ------------------------------------------------


def verify_cosignatures(note_text: str, log_vkey: str, witness_vkeys: Iterable[str], k: int, *, not_before: int | None = None) -> None:
    """Check a checkpoint is signed by its log and cosigned by at least ``k`` distinct trusted witnesses.

    Args:
        note_text: The checkpoint note with the log's signature and the witnesses' lines.
        log_vkey: The log's vkey, from the roster.
        witness_vkeys: The trusted witnesses' cosigner vkeys (duplicate keys count once).
        k: How many of them must have cosigned, 1 to the number of distinct witnesses.
        not_before: If given (unix seconds), cosignatures older than this do not count.

    Raises:
        MalformedError: A bad note, vkey or ``k`` (TooLargeError: over the note limits).
        CheckpointError: Not signed by the log, another log's checkpoint, or fewer than ``k``
            valid cosignatures (a line that does not verify is not counted).
        BadSignatureError: The log's signature line does not verify.
    """
    note = SignedNote.from_text(note_text)
    checkpoint = open_checkpoint(note_text, NoteVerifier.from_vkey(log_vkey))
    witnesses = {v.public: v for v in map(CosignatureVerifier.from_vkey, witness_vkeys)}
    if type(k) is not int or not 1 <= k <= len(witnesses):
        raise MalformedError(f"k must be 1..{len(witnesses)} (the number of distinct witnesses), got {k!r}")
    valid = 0
    for witness in witnesses.values():
        try:
            timestamp = verify_cosignature(note, witness)
        except (CheckpointError, BadSignatureError):
            continue
        valid += not_before is None or timestamp >= not_before
    if valid < k:
        raise CheckpointError(
            f"checkpoint {checkpoint.origin} size {checkpoint.size} has {valid} valid cosignature(s) from trusted witnesses, needs {k}",
            hint="Fetch fresh cosignatures from more witnesses (GET /v1/witness/cosignatures/ORIGIN).",
        )


def merge_cosignatures(notes: Sequence[str]) -> str:
    """Combine notes of one checkpoint (e.g. one per witness) into one note with every signature line.

    Raises:
        MalformedError: No notes, or notes of different checkpoint texts (TooLargeError: over 100 lines).
    """
    if not notes:
        raise MalformedError("nothing to merge")
    parsed = [SignedNote.from_text(n) for n in notes]
    if any(p.text != parsed[0].text for p in parsed):
        raise MalformedError("cosigned notes are for different checkpoints")
    lines: dict[tuple[str, bytes], NoteSignature] = {}
    for note in parsed:
        for line in note.signatures:
            lines.setdefault((line.name, line.key_hash), line)  # the first line of each key wins
    return SignedNote(text=parsed[0].text, signatures=tuple(lines.values())).to_text()


# -- HTTP ---------------------------------------------------------------------------------------

WITNESS: web.AppKey[Witness] = web.AppKey("witness", Witness)


async def get_cosignatures(request: web.Request) -> web.Response:
    note = request.app[WITNESS].cosigned_note(request.match_info["origin"])
    return web.Response(text=note, content_type="text/plain", charset="utf-8", headers={"Cache-Control": "no-store"})


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[WITNESS].status())


async def get_key(request: web.Request) -> web.Response:
    return web.Response(text=request.app[WITNESS].key.vkey + "\n", content_type="text/plain", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    witness = request.app[WITNESS]
    return web.json_response({"status": "ok", "witness": witness.key.name, "alarms": witness.in_alarm()})


async def metrics(request: web.Request) -> web.Response:
    body, ctype = request.app[WITNESS].metrics.render()
    return web.Response(body=body, headers={"Content-Type": ctype})


def create_witness_app(witness: Witness) -> web.Application:
    """The witness's read-only aiohttp application (the caller runs it and the poll loop)."""
    app = web.Application(middlewares=[error_middleware])
    app[WITNESS] = witness
    app.router.add_get("/v1/witness/cosignatures/{origin:.+}", get_cosignatures)
    app.router.add_get("/v1/witness/status", get_status)
    app.router.add_get("/v1/witness/key", get_key)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve_witness(config_path: Path, *, clock: Clock, once: bool = False, ready_file: Path | None = None) -> int:
    """Run the witness at ``config_path``: one round with ``once``, else serve and poll until SIGTERM/SIGINT.

    Returns:
        The exit status: 1 if ``once`` and any log is in alarm, else 0.

    Raises:
        HeliographError: The config, key, roster or state files do not allow a safe start.
    """
    config = load_witness_config(config_path)
    witness = await Witness.open(config, clock=clock)
    try:
        if once:
            await witness.poll_once()
            return 1 if witness.in_alarm() else 0
        def started() -> None:
            log.info("witness_started", witness=config.name, listen=f"{config.host}:{config.port}", logs=len(witness.targets))

        await serve_until_signal(
            create_witness_app(witness),
            config.host,
            config.port,
            ready_file=ready_file,
            on_listening=started,
            alongside=witness.run(),
            tls=config.tls,
        )
        log.info("witness_stopped", witness=config.name)
        return 0
    finally:
        witness.close()


__all__ = [
    "Health",
    "Verdict",
    "Witness",
    "WitnessAlarmError",
    "create_witness_app",
    "judge",
    "merge_cosignatures",
    "serve_witness",
    "verify_cosignatures",
]
