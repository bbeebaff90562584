"""Errors: stable unique codes, HTTP statuses, JSON bodies."""

from __future__ import annotations

from protocol import errors


def test_codes_are_unique_and_stable() -> None:
    codes = [cls.code for cls in errors.ALL_ERRORS]
    assert len(codes) == len(set(codes))
    assert all(code.startswith("E_") and code.isupper() for code in codes)
    # Published codes never change: this list only grows.
    assert {"E_MALFORMED", "E_BAD_SIGNATURE", "E_EXPIRED", "E_UNKNOWN_KEY", "E_REVOKED", "E_DECRYPT", "E_POLICY_DENIED", "E_TOO_LARGE"} <= set(codes)


def test_every_error_has_a_client_or_server_status() -> None:
    for cls in errors.ALL_ERRORS:
        assert 400 <= cls.http_status < 600


def test_body_and_repr() -> None:
    err = errors.PolicyDeniedError("TLP:RED may not leave the region", hint="ask the gateway operator")
    assert err.to_dict() == {"code": "E_POLICY_DENIED", "message": "TLP:RED may not leave the region"}
    assert err.hint == "ask the gateway operator"
    assert "E_POLICY_DENIED" in repr(err)
    assert errors.DecryptError().message == "message could not be decrypted"
    assert errors.UnsupportedVersionError("x").hint
    assert isinstance(errors.TooLargeError("x"), errors.MalformedError)
