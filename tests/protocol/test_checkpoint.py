"""Checkpoints as C2SP signed notes: known answers, goldens, a malformed corpus and tamper properties."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import errors
from protocol.checkpoint import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Checkpoint,
    CosignatureVerifier,
    NoteSignature,
    NoteVerifier,
    SignedNote,
    cosign,
    cosignature_message,
    format_cosigner_vkey,
    note_key_hash,
    open_checkpoint,
    sign_checkpoint,
    sign_note,
    verify_cosignature,
)
from protocol.errors import BadSignatureError, CheckpointError, HeliographError, MalformedError, TooLargeError
from protocol.keys import format_vkey, log_origin, vkey_hash
from tests.support.tamper import MUTATIONS, tamper

ORIGIN = log_origin("ke-police")
LOG_KEY = nacl.signing.SigningKey(hashlib.sha256(b"heliograph test log key").digest())
WITNESS = "witness.example/w1"
WITNESS_KEY = nacl.signing.SigningKey(hashlib.sha256(b"heliograph test witness key").digest())
LOG = NoteVerifier(name=ORIGIN, public=bytes(LOG_KEY.verify_key))
WIT = CosignatureVerifier(name=WITNESS, public=bytes(WITNESS_KEY.verify_key))
ROOT8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")  # RFC 9162 tree of the 8 CT test leaves
CHECKPOINT = Checkpoint(origin=ORIGIN, size=8, root=ROOT8)
T = 1_780_000_000  # unix seconds

# Produced once by sign_checkpoint/cosign with the keys above (Ed25519 is deterministic).
GOLDEN_NOTE = (
    "heliograph/ke-police\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
    "— heliograph/ke-police wjZXQnzgjT/kShShZ6iOVclpRMh49XzdVq51g3lo6H7Qy4Qn5rT93OalTpVzUEcJMJUDPy9J82Jr2XmcI4NpuQ2Lsg0=\n"
)
GOLDEN_COSIGNED = (
    GOLDEN_NOTE + "— witness.example/w1 LgoYagAAAABqGKUABGqojMzCoB3kW39Fb3MnkLOP1AvC/8yLv8IywhPq41RAsVtabw3KkEVZ7C5FtkBV33DQf6Op6SXoGydAYpW+AQ==\n"
)
GOLDEN_LOG_VKEY = "heliograph/ke-police+c2365742+AcR1bSxsVbcmFf+sxUbcWfZG6DipuBt9/NbfLMK49B0P"
GOLDEN_WITNESS_VKEY = "witness.example/w1+2e0a186a+BNCtElMOVE4YT9UipcVTpijeR5aXlxzVMBG8l5ePUnCB"

# The example of golang.org/x/mod/sumdb/note, used across signed-note implementations.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_B64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # 0x01 || Ed25519 seed
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"

# The examples of c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature (their keys are not published).
C2SP_NOTE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def _line(name: str, payload: bytes) -> str:
    return f"— {name} {base64.b64encode(payload).decode()}\n"


def test_golden_checkpoint_and_cosignature() -> None:
    note = sign_checkpoint(CHECKPOINT, ORIGIN, LOG_KEY)
    assert note.to_text() == GOLDEN_NOTE
    assert cosign(note, WITNESS, WITNESS_KEY, T).to_text() == GOLDEN_COSIGNED
    assert LOG.vkey == GOLDEN_LOG_VKEY and WIT.vkey == GOLDEN_WITNESS_VKEY
    # Independent re-derivation of the log signature line.
    body = b"heliograph/ke-police\n8\n" + base64.b64encode(ROOT8) + b"\n"
    key_hash = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + bytes(LOG_KEY.verify_key)).digest()[:4]
    assert body.decode() + "\n" + _line(ORIGIN, key_hash + LOG_KEY.sign(body).signature) == GOLDEN_NOTE
    # ... and of the cosignature line: "cosignature/v1\ntime <T>\n" || whole checkpoint body.
    wit_hash = hashlib.sha256(WITNESS.encode() + b"\n\x04" + bytes(WITNESS_KEY.verify_key)).digest()[:4]
    message = b"cosignature/v1\ntime 1780000000\n" + body
    assert cosignature_message(body.decode(), T) == message
    assert GOLDEN_COSIGNED.endswith(_line(WITNESS, wit_hash + T.to_bytes(8, "big") + WITNESS_KEY.sign(message).signature))


def test_open_and_cosignature_round_trip() -> None:
    assert open_checkpoint(GOLDEN_NOTE, LOG) == CHECKPOINT
    assert open_checkpoint(GOLDEN_COSIGNED.encode(), LOG) == CHECKPOINT
    cosigned = SignedNote.from_text(GOLDEN_COSIGNED)
    assert verify_cosignature(cosigned, WIT) == T
    # Cosigning again replaces the witness's line instead of adding a second one.
    again = cosign(cosigned, WITNESS, WITNESS_KEY, T + 60)
    assert len(again.signatures) == 2 and verify_cosignature(again, WIT) == T + 60
    with pytest.raises(CheckpointError):
        verify_cosignature(SignedNote.from_text(GOLDEN_NOTE), WIT)


def test_cosignatures_cover_extension_lines() -> None:
    cp = Checkpoint(origin=ORIGIN, size=0, root=hashlib.sha256(b"").digest(), extensions=("ext one", "— looks like a signature"))
    note = cosign(sign_checkpoint(cp, ORIGIN, LOG_KEY), WITNESS, WITNESS_KEY, 0)
    assert open_checkpoint(note.to_text(), LOG) == cp
    assert verify_cosignature(SignedNote.from_text(note.to_text()), WIT) == 0
    sig = note.signature_by(WITNESS, WIT.key_hash)
    assert sig is not None
    WITNESS_KEY.verify_key.verify(b"cosignature/v1\ntime 0\n" + cp.body().encode(), sig.signature[8:])


def test_go_signed_note_known_answer() -> None:
    seed = base64.b64decode(GO_SKEY_B64)
    assert seed[0] == 0x01
    assert sign_note(GO_TEXT, "PeterNeumann", nacl.signing.SigningKey(seed[1:])).to_text() == GO_NOTE
    note = SignedNote.from_text(GO_NOTE)
    assert note.to_text() == GO_NOTE and note.signatures[0].key_hash.hex() == "c74f20a3"
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    verifier.verify(note)
    assert verifier.vkey == GO_VKEY
    with pytest.raises(MalformedError):
        open_checkpoint(GO_NOTE, verifier)  # signed, but the text is no checkpoint
    with pytest.raises(BadSignatureError):
        open_checkpoint(GO_NOTE.replace("problem,", "problem;"), verifier)


def test_c2sp_examples_parse() -> None:
    note = SignedNote.from_text(C2SP_NOTE)
    assert note.to_text() == C2SP_NOTE
    cp = Checkpoint.from_body(note.text)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.body() == note.text
    log_sig, cosig = note.signatures
    assert len(log_sig.signature) == 64 and len(cosig.signature) == 72
    # The cosignature's timestamp is the one in the spec's signed-message example.
    assert int.from_bytes(cosig.signature[:8], "big") == 1679315147
    stranger = NoteVerifier(name="example.com/behind-the-sofa", public=bytes(LOG_KEY.verify_key))
    with pytest.raises(CheckpointError):
        open_checkpoint(C2SP_NOTE, stranger)  # only signatures by keys we do not know
    with pytest.raises(CheckpointError):
        verify_cosignature(note, CosignatureVerifier(name="witness.example.com/w1", public=bytes(WITNESS_KEY.verify_key)))


def _corpus() -> list[tuple[str, bytes | str, type[HeliographError]]]:
    other_key = nacl.signing.SigningKey(hashlib.sha256(b"other").digest())
    sig_line = GOLDEN_NOTE.split("\n\n")[1]
    body = CHECKPOINT.body()
    payload = base64.b64decode(sig_line.split(" ")[2])

    def signed(text: str, name: str = ORIGIN, key: nacl.signing.SigningKey = LOG_KEY) -> str:
        return sign_note(text, name, key).to_text()

    root_text = base64.b64encode(ROOT8).decode()
    cosigned_by_log_key = cosign(SignedNote.from_text(GOLDEN_NOTE), ORIGIN, LOG_KEY, T)
    other_origin = signed(Checkpoint(origin="heliograph/ke-fiu", size=8, root=ROOT8).body())
    unknown = [_line(f"w{i}.example", bytes([i]) * 68) for i in range(MAX_SIGNATURES)]
    return [
        ("bad utf-8", GOLDEN_NOTE.encode().replace(b"police\n8", b"police\n\xff"), MalformedError),
        ("carriage return", GOLDEN_NOTE.replace("\n8\n", "\r\n8\n", 1), MalformedError),
        ("crlf everywhere", GOLDEN_NOTE.replace("\n", "\r\n"), MalformedError),
        ("tab", GOLDEN_NOTE.replace("\n8\n", "\n8\t\n", 1), MalformedError),
        ("nul", GOLDEN_NOTE + "\x00", MalformedError),
        ("escape", "\x1b" + GOLDEN_NOTE, MalformedError),
        ("lone surrogate", GOLDEN_NOTE.replace("ke-police\n", "ke-police\ud800\n", 1), MalformedError),
        ("missing blank line", body + sig_line, MalformedError),
        ("no signatures", body + "\n", MalformedError),
        ("blank line only", body + "\n\n", MalformedError),
        ("empty", "", MalformedError),
        ("not text", 42, MalformedError),  # type: ignore[list-item]
        ("unknown key only", signed(body, ORIGIN, other_key), CheckpointError),
        ("wrong name", signed(body, "heliograph/someone-else"), CheckpointError),
        ("wrong origin", other_origin, CheckpointError),
        ("101 signatures", GOLDEN_NOTE + "".join(unknown), TooLargeError),
        ("non-canonical base64", GOLDEN_NOTE.replace("sg0=", "sg1="), MalformedError),
        ("unpadded base64", GOLDEN_NOTE.replace("sg0=\n", "sg0\n"), MalformedError),
        ("base64 with a space", GOLDEN_NOTE.replace("wjZX", "wj ZX"), MalformedError),
        ("trailing text", GOLDEN_NOTE + "trailing", MalformedError),
        ("trailing blank line", GOLDEN_NOTE + "\n", MalformedError),
        ("no final newline", GOLDEN_NOTE[:-1], MalformedError),
        ("hyphen for em dash", GOLDEN_NOTE.replace("— ", "- "), MalformedError),
        ("em dash without space", GOLDEN_NOTE.replace("— ", "—"), MalformedError),
        ("no space before signature", GOLDEN_NOTE.replace("police w", "policew"), MalformedError),
        ("two spaces", GOLDEN_NOTE.replace("police w", "police  w"), MalformedError),
        ("plus in name", body + "\n" + _line("a+b", payload), MalformedError),
        ("empty name", body + "\n" + _line("", payload), MalformedError),
        ("payload of 4 bytes", body + "\n" + _line(ORIGIN, payload[:4]), MalformedError),
        ("duplicate signature", GOLDEN_NOTE + sig_line, MalformedError),
        ("leading zero in size", signed(body.replace("\n8\n", "\n08\n")), MalformedError),
        ("signed size", signed(body.replace("\n8\n", "\n+8\n")), MalformedError),
        ("size over 2**64 - 1", signed(body.replace("\n8\n", f"\n{1 << 64}\n")), MalformedError),
        ("huge size", signed(body.replace("\n8\n", "\n" + "9" * 5000 + "\n")), MalformedError),
        ("unicode digit size", signed(body.replace("\n8\n", "\n\u0668\n")), MalformedError),
        ("empty origin", signed(body.replace(ORIGIN, "")), MalformedError),
        ("empty extension line", signed(body + "ext\n\n"), MalformedError),
        ("two lines", signed(f"{ORIGIN}\n8\n"), MalformedError),
        ("short root", signed(body.replace(root_text, base64.b64encode(ROOT8[:31]).decode())), MalformedError),
        ("unpadded root", signed(body.replace(root_text, root_text[:-1])), MalformedError),
        ("non-canonical root", signed(body.replace("Qyg=", "Qyh=")), MalformedError),
        ("bad signature by the known key", GOLDEN_NOTE.replace("wjZXQnzg", "wjZXQnzh"), BadSignatureError),
        ("short signature by the known key", body + "\n" + _line(ORIGIN, payload[:-1]), BadSignatureError),
        ("cosignature by the log key only", SignedNote(text=body, signatures=cosigned_by_log_key.signatures[1:]).to_text(), CheckpointError),
        ("too large", GOLDEN_NOTE + _line("big.example", b"\x01" * MAX_NOTE_BYTES), TooLargeError),
        ("too large bytes", (GOLDEN_NOTE + _line("big.example", b"\x01" * MAX_NOTE_BYTES)).encode(), TooLargeError),
    ]


@pytest.mark.parametrize(("note", "error"), [pytest.param(note, error, id=label) for label, note, error in _corpus()])
def test_malformed_corpus(note: str | bytes, error: type[HeliographError]) -> None:
    with pytest.raises(error):
        open_checkpoint(note, LOG)


def test_every_bit_flip_is_refused() -> None:
    data = GOLDEN_COSIGNED.encode()
    for i in range(len(data)):
        for bit in range(8):
            tampered = bytearray(data)
            tampered[i] ^= 1 << bit
            try:
                open_checkpoint(bytes(tampered), LOG)
            except HeliographError:
                continue
            # Only the witness's line may change without touching the log signature.
            assert i >= len(GOLDEN_NOTE.encode())
            with pytest.raises(HeliographError):
                verify_cosignature(SignedNote.from_text(bytes(tampered)), WIT)


@settings(max_examples=300, deadline=None)
@given(MUTATIONS)
def test_any_byte_change_makes_open_raise_a_heliograph_error(mutation: tuple[str, int, int]) -> None:
    with pytest.raises(HeliographError):
        open_checkpoint(tamper(GOLDEN_NOTE.encode(), mutation), LOG)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300), st.builds(lambda m: tamper(GOLDEN_COSIGNED.encode(), m), MUTATIONS)))
def test_parsers_only_raise_heliograph_errors(data: bytes | str) -> None:
    try:
        note = SignedNote.from_text(data)
    except HeliographError:
        return
    assert note.to_text() == (data.decode() if isinstance(data, bytes) else data)
    for call in (lambda: Checkpoint.from_body(note.text), lambda: LOG.verify(note), lambda: verify_cosignature(note, WIT)):
        with contextlib.suppress(HeliographError):
            call()


_LINE = st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=30)
_NAME = st.text(st.characters(min_codepoint=0x21, exclude_categories=["Cs", "Zs", "Zl", "Zp"], exclude_characters="+\x85\xa0"), min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@given(_NAME, st.integers(0, (1 << 64) - 1), st.binary(min_size=32, max_size=32), st.lists(_LINE, max_size=3), st.integers(0, (1 << 63) - 1))
def test_checkpoint_round_trip_property(origin: str, size: int, root: bytes, extensions: list[str], timestamp: int) -> None:
    cp = Checkpoint(origin=origin, size=size, root=root, extensions=tuple(extensions))
    assert Checkpoint.from_body(cp.body()) == cp
    note = cosign(sign_checkpoint(cp, origin, LOG_KEY), WITNESS, WITNESS_KEY, timestamp)
    assert SignedNote.from_text(note.to_text().encode()) == note
    assert open_checkpoint(note.to_text(), NoteVerifier(name=origin, public=LOG.public)) == cp
    assert verify_cosignature(note, WIT) == timestamp


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "a\nb"},
        {"origin": "a\tb"},
        {"origin": 5},
        {"size": -1},
        {"size": 1 << 64},
        {"size": True},
        {"root": b"\x00" * 31},
        {"root": "00" * 32},
        {"extensions": ["x"]},
        {"extensions": ("",)},
        {"extensions": ("a\nb",)},
        {"extensions": ("\x7f ok", "\x01")},
    ],
)
def test_checkpoint_validation(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"origin": ORIGIN, "size": 1, "root": ROOT8, **kwargs}
    with pytest.raises(MalformedError):
        Checkpoint(**args)  # type: ignore[arg-type]


def test_checkpoint_from_body_rejects_non_text() -> None:
    with pytest.raises(MalformedError):
        Checkpoint.from_body(b"x\n1\n" + base64.b64encode(ROOT8) + b"\n")  # type: ignore[arg-type]


def test_checkpoint_error_is_registered() -> None:
    assert CheckpointError in errors.ALL_ERRORS
    assert (CheckpointError.code, CheckpointError.http_status) == ("E_BAD_CHECKPOINT", 422)


def test_note_model_validation() -> None:
    sig = NoteSignature(name=ORIGIN, key_hash=LOG.key_hash, signature=b"\x00" * 64)
    for kwargs in (
        {"name": "a b"},
        {"name": "a\u3000b"},
        {"name": ""},
        {"name": "a+b"},
        {"name": "a\ud800"},
        {"key_hash": b"123"},
        {"signature": b""},
        {"signature": "sig"},
    ):
        with pytest.raises(MalformedError):
            NoteSignature(**{"name": ORIGIN, "key_hash": LOG.key_hash, "signature": b"\x00", **kwargs})  # type: ignore[arg-type]
    others = tuple(NoteSignature(name=f"w{i}", key_hash=b"\x00" * 4, signature=b"\x00") for i in range(MAX_SIGNATURES))
    for text, sigs, error in [
        ("a\n", (), MalformedError),
        ("a\n", [sig], MalformedError),
        ("a\n", ("sig",), MalformedError),
        ("a\n", (sig, sig), MalformedError),
        ("a\n", (sig, *others), TooLargeError),
        ("a", (sig,), MalformedError),
        ("", (sig,), MalformedError),
        ("a\r\n", (sig,), MalformedError),
        (b"a\n", (sig,), MalformedError),
        ("a\n" * MAX_NOTE_BYTES, (sig,), TooLargeError),
    ]:
        with pytest.raises(error):
            SignedNote(text=text, signatures=sigs)  # type: ignore[arg-type]
    note = SignedNote(text="\n", signatures=(sig,))
    assert SignedNote.from_text(note.to_text()) == note
    assert note.signature_by(ORIGIN, b"\x00" * 4) is None


def test_signing_refuses_mismatched_names_and_bad_text() -> None:
    with pytest.raises(CheckpointError):
        sign_checkpoint(CHECKPOINT, "heliograph/other", LOG_KEY)
    for text, name in [("no newline", "a"), ("bad\rtext\n", "a"), ("ok\n", "bad name")]:
        with pytest.raises(MalformedError):
            sign_note(text, name, LOG_KEY)
    cp_note = sign_checkpoint(CHECKPOINT, ORIGIN, LOG_KEY)
    for timestamp in (-1, 1 << 63, True):
        with pytest.raises(MalformedError):
            cosign(cp_note, WITNESS, WITNESS_KEY, timestamp)
    with pytest.raises(MalformedError):
        cosign(cp_note, "bad name", WITNESS_KEY, T)
    with pytest.raises(MalformedError):
        cosign(SignedNote.from_text(GO_NOTE), WITNESS, WITNESS_KEY, T)


def test_bad_cosignatures_by_the_known_witness() -> None:
    note = SignedNote.from_text(GOLDEN_COSIGNED)
    log_line, good = note.signatures

    def with_cosig(signature: bytes) -> SignedNote:
        return SignedNote(text=note.text, signatures=(log_line, NoteSignature(name=WITNESS, key_hash=WIT.key_hash, signature=signature)))

    for signature in (
        good.signature[:-1],
        good.signature[8:],
        bytes([good.signature[0] ^ 0x80]) + good.signature[1:],
        (T + 1).to_bytes(8, "big") + good.signature[8:],
    ):
        with pytest.raises(BadSignatureError):
            verify_cosignature(with_cosig(signature), WIT)
    with pytest.raises(MalformedError):
        verify_cosignature(SignedNote.from_text(GO_NOTE), WIT)


def test_vkeys() -> None:
    public = bytes(range(32))
    vkey = format_cosigner_vkey("witness.example/w1", public)
    name, hash_hex, key = vkey.split("+", 2)
    assert hash_hex == hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()[:4].hex() == note_key_hash(name, 0x04, public).hex()
    assert base64.b64decode(key) == b"\x04" + public
    assert CosignatureVerifier.from_vkey(vkey) == CosignatureVerifier(name="witness.example/w1", public=public)
    assert NoteVerifier.from_vkey(format_vkey(ORIGIN, public)).key_hash == vkey_hash(ORIGIN, public)
    ed25519_vkey = format_vkey("witness.example/w1", public)
    with pytest.raises(MalformedError):
        CosignatureVerifier.from_vkey(ed25519_vkey)
    with pytest.raises(MalformedError):
        NoteVerifier.from_vkey(vkey)
    for bad in [
        "",
        "a+b",
        f"{name}+{hash_hex.upper()}+{key}",
        f"{name}+00000000+{key}",
        f"other+{hash_hex}+{key}",
        f"{name}+{hash_hex}+{key[:-1]}",
        f"{name}+{hash_hex}+!{key[1:]}",
        f"bad name+{hash_hex}+{key}",
        5,
    ]:
        with pytest.raises(MalformedError):
            CosignatureVerifier.from_vkey(bad)  # type: ignore[arg-type]
    for kwargs in ({"name": "a b", "public": public}, {"name": "ok", "public": public[:31]}, {"name": "a\ud800", "public": public}):
        with pytest.raises(MalformedError):
            NoteVerifier(**kwargs)  # type: ignore[arg-type]
        with pytest.raises(MalformedError):
            CosignatureVerifier(**kwargs)  # type: ignore[arg-type]
