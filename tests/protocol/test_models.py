"""Field readers, header and limits validation, low-level sealing failures."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocol import fields
from protocol.errors import DecryptError, MalformedError, UnsupportedVersionError
from protocol.header import Header
from protocol.limits import Limits
from protocol.sealing import open_box, seal_box
from tests.support.federation import SeededRng

HEADER = Header(
    message_id=b"\x01" * 16,
    origin="int-org",
    origin_key=b"\x02" * 8,
    recipients=("ke-police",),
    priority="ROUTINE",
    label="TLP:CLEAR",
    kind="alert",
    refs=(),
    created=1,
    expires=2,
    body_digest=b"\x03" * 32,
)


def test_field_readers() -> None:
    with pytest.raises(MalformedError, match="expected a map"):
        fields.check_keys("x", [], frozenset())
    with pytest.raises(MalformedError, match="version must be an integer"):
        fields.check_version("x", "1", 1)
    with pytest.raises(UnsupportedVersionError):
        fields.check_version("x", 2, 1)
    with pytest.raises(MalformedError, match="expected an array"):
        fields.array("x", {}, 3)
    with pytest.raises(MalformedError, match="more than 3"):
        fields.array("x", [1, 2, 3, 4], 3)
    with pytest.raises(MalformedError):
        fields.typed("x", True, int)
    with pytest.raises(MalformedError):
        fields.member_id("x", "a" * 64)
    assert fields.member_id("x", "a.b-c") == "a.b-c"


@pytest.mark.parametrize(
    "change",
    [
        {"recipients": ()},
        {"recipients": ("b", "a")},
        {"recipients": tuple(f"n{i}" for i in range(3)), "max_recipients": 2},
        {"refs": (b"\x05" * 16,) * 2},
        {"refs": (b"\x05" * 16, b"\x06" * 16), "max_refs": 1},
        {"origin_key": b"short"},
        {"body_digest": b"short"},
    ],
)
def test_header_validation(change: dict[str, object]) -> None:
    with pytest.raises(MalformedError):
        replace(HEADER, **change)  # type: ignore[arg-type]


def test_header_round_trip_and_context_ignores_body_digest() -> None:
    assert Header.from_bytes(HEADER.to_bytes()) == HEADER
    other = replace(HEADER, body_digest=b"\x04" * 32)
    assert other.context_digest == HEADER.context_digest
    assert replace(HEADER, priority="FLASH").context_digest != HEADER.context_digest


def test_limits_must_be_positive() -> None:
    with pytest.raises(MalformedError):
        Limits(max_recipients=0)
    assert Limits(max_recipients=3).max_recipients == 3


def test_sealed_box_refuses_wrong_key_and_tampering() -> None:
    import nacl.public

    sk = nacl.public.PrivateKey(b"\x09" * 32)
    box = seal_box(bytes(sk.public_key), b"stanza", SeededRng("box"))
    assert nacl.public.SealedBox(sk).decrypt(box) == b"stanza"  # libsodium-compatible
    assert open_box(bytes(sk.public_key), bytes(sk), box) == b"stanza"
    other = nacl.public.PrivateKey(b"\x0a" * 32)
    with pytest.raises(DecryptError):
        open_box(bytes(other.public_key), bytes(other), box)
    with pytest.raises(DecryptError):
        open_box(bytes(sk.public_key), bytes(sk), box[:-1] + bytes([box[-1] ^ 1]))
