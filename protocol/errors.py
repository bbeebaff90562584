"""The one error hierarchy shared by every layer of Heliograph.

Each error carries a stable machine code (``E_...``) that never changes once
published, an HTTP status hint for the server layers, and a short human
sentence. The CLI prints the sentence and the ``hint``; the HTTP layers send
``{"error": {"code": ..., "message": ...}}``. Messages never contain plaintext
alert content or key material.
"""

from __future__ import annotations

from typing import Any, ClassVar


class HeliographError(Exception):
    """Base of every error Heliograph raises on purpose.

    Attributes:
        code: Stable machine-readable code, e.g. ``E_BAD_SIGNATURE``.
        http_status: The HTTP status a server should answer with.
        hint: A remediation sentence for a human, may be empty.
    """

    code: ClassVar[str] = "E_INTERNAL"
    http_status: ClassVar[int] = 500
    default_hint: ClassVar[str] = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON error body used by every HTTP API."""
        return {"code": self.code, "message": self.message}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message})"


class MalformedError(HeliographError):
    """Bytes or fields that do not follow the wire format or model rules."""

    code = "E_MALFORMED"
    http_status = 400


class UnsupportedVersionError(MalformedError):
    """A structure declares a version this implementation does not speak."""

    code = "E_UNSUPPORTED_VERSION"
    default_hint = "Upgrade this node or gateway, or ask the sender to downgrade."


class TooLargeError(MalformedError):
    """Input larger than a configured limit (a refusal of the input, so a MalformedError)."""

    code = "E_TOO_LARGE"
    http_status = 413


class BadSignatureError(HeliographError):
    """A signature that does not verify under the key it names."""

    code = "E_BAD_SIGNATURE"
    http_status = 401


class DigestMismatchError(HeliographError):
    """Signed metadata names a digest that the accompanying bytes do not have."""

    code = "E_DIGEST_MISMATCH"
    http_status = 400


class UnknownMemberError(HeliographError):
    """A member id that the current roster does not list."""

    code = "E_UNKNOWN_MEMBER"
    http_status = 403
    default_hint = "Check that the roster is current and the member id is spelled right."


class UnknownKeyError(HeliographError):
    """A key id that the roster does not list for that member."""

    code = "E_UNKNOWN_KEY"
    http_status = 403
    default_hint = "The sender may be using a key that is not yet in this roster."


class RevokedKeyError(HeliographError):
    """A key the roster marks as revoked at or before the time asked about."""

    code = "E_REVOKED"
    http_status = 403


class KeyExpiredError(HeliographError):
    """A key used outside its validity window."""

    code = "E_KEY_EXPIRED"
    http_status = 403
    default_hint = "Rotate the member's keys and publish a new roster."


class ExpiredError(HeliographError):
    """A message or document whose expiry time has passed."""

    code = "E_EXPIRED"
    http_status = 410


class NotYetValidError(HeliographError):
    """A message created further in the future than the allowed clock skew."""

    code = "E_NOT_YET_VALID"
    http_status = 400
    default_hint = "Check the sender's clock (NTP)."


class NotRecipientError(HeliographError):
    """The opener is not among the message's recipients."""

    code = "E_NOT_RECIPIENT"
    http_status = 403


class DecryptError(HeliographError):
    """Opaque decryption failure. Deliberately says nothing about why."""

    code = "E_DECRYPT"
    http_status = 400

    def __init__(self, message: str = "message could not be decrypted", *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


class PolicyDeniedError(HeliographError):
    """Routing or access policy refuses the request."""

    code = "E_POLICY_DENIED"
    http_status = 403


class BadRequestError(HeliographError):
    """An HTTP request with missing or invalid parameters."""

    code = "E_BAD_REQUEST"
    http_status = 400


class NotFoundError(HeliographError):
    """The requested resource does not exist."""

    code = "E_NOT_FOUND"
    http_status = 404


class RosterError(HeliographError):
    """A roster that does not verify: threshold, version chain or expiry."""

    code = "E_ROSTER"
    http_status = 400
    default_hint = "Obtain a roster signed by a threshold of the current authorities."


class ProofError(HeliographError):
    """A Merkle inclusion or consistency proof that does not verify, whatever the reason.

    Raised for wrong sizes, wrong lengths and wrong hashes alike, so callers
    handle one error and a verifier never leaks which step failed.
    """

    code = "E_BAD_PROOF"
    http_status = 422
    default_hint = "Fetch a fresh proof for the exact sizes and roots you hold."


class CheckpointError(HeliographError):
    """A signed checkpoint that is well formed but not acceptable.

    No signature by the expected key, a checkpoint for another log, or a
    missing cosignature. A present but invalid signature by the expected key is
    a :class:`BadSignatureError` instead.
    """

    code = "E_BAD_CHECKPOINT"
    http_status = 422
    default_hint = "Check that the log's vkey (or the cosigner's) is the one configured for this origin."


class BadAuthError(HeliographError):
    """A peer request whose ``Authorization`` header is missing or malformed."""

    code = "E_BAD_AUTH"
    http_status = 401
    default_hint = "Sign every federation request with a Heliograph Authorization header (docs/PROTOCOL.md)."


class WrongDestinationError(HeliographError):
    """A peer request signed for another member than the one that received it."""

    code = "E_WRONG_DESTINATION"
    http_status = 421
    default_hint = "Check the endpoint the roster lists for the destination member."


class ClockSkewError(HeliographError):
    """A peer request whose timestamp is outside the allowed clock skew."""

    code = "E_CLOCK_SKEW"
    http_status = 401
    default_hint = "Check the sender's clock (NTP)."


class ReplayError(HeliographError):
    """A peer request whose nonce was already seen within the replay window."""

    code = "E_REPLAY"
    http_status = 401
    default_hint = "Sign every request afresh with a new random nonce."


class RateLimitedError(HeliographError):
    """A sender that exceeded its rate limit, or a hop too loaded to take more.

    Attributes:
        retry_after_ms: When a retry may succeed, in milliseconds, if known.
    """

    code = "E_RATE_LIMITED"
    http_status = 429
    default_hint = "Slow down and retry after the delay the server names."

    def __init__(self, message: str, *, retry_after_ms: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_ms = retry_after_ms


class TtlTooLongError(HeliographError):
    """An envelope whose expiry lies further ahead than the policy's maximum TTL."""

    code = "E_TTL_TOO_LONG"
    http_status = 403
    default_hint = "Send the alert with an earlier expiry."


class ConfigError(HeliographError):
    """A configuration file or value that is invalid; the message names the key path."""

    code = "E_CONFIG"
    http_status = 500


class UnauthenticatedError(HeliographError):
    """An officer request without valid credentials (unknown user, wrong password, bad or expired token)."""

    code = "E_UNAUTHENTICATED"
    http_status = 401
    default_hint = "Log in again or use a valid API token."


class ForbiddenError(HeliographError):
    """An authenticated officer whose role does not allow the action."""

    code = "E_FORBIDDEN"
    http_status = 403
    default_hint = "Ask a supervisor, or use an account with the right role."


class ValidationError(HeliographError):
    """A request whose fields are invalid; ``fields`` maps each field path to a sentence.

    Attributes:
        fields: ``{"tiers[0].recipients[1]": "unknown member 'xx'", ...}``.
    """

    code = "E_VALIDATION"
    http_status = 422
    default_hint = "Correct the fields named in the error and send again."

    def __init__(self, fields: dict[str, str], *, message: str | None = None, hint: str | None = None) -> None:
        super().__init__(message or f"{len(fields)} invalid field(s): " + ", ".join(sorted(fields)), hint=hint)
        self.fields = dict(fields)

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["fields"] = self.fields
        return body


class UnreachableError(HeliographError):
    """A peer or service that could not be reached (connection refused, timeout, bad answer)."""

    code = "E_UNREACHABLE"
    http_status = 502


class ConflictError(HeliographError):
    """A request that conflicts with the current state (e.g. acknowledging a purged or cancelled alert twice)."""

    code = "E_CONFLICT"
    http_status = 409


class BrokenChainError(ProofError):
    """Receipts that verify one by one but do not form the hop-by-hop chain of docs/PROTOCOL.md section 22."""

    code = "E_BROKEN_CHAIN"
    default_hint = "Export the bundle again from the origin; if a receipt is still missing, ask the hop named for its log."


ALL_ERRORS: tuple[type[HeliographError], ...] = (
    HeliographError,
    MalformedError,
    UnsupportedVersionError,
    TooLargeError,
    BadSignatureError,
    DigestMismatchError,
    UnknownMemberError,
    UnknownKeyError,
    RevokedKeyError,
    KeyExpiredError,
    ExpiredError,
    NotYetValidError,
    NotRecipientError,
    DecryptError,
    PolicyDeniedError,
    RosterError,
    BadRequestError,
    NotFoundError,
    ProofError,
    CheckpointError,
    BadAuthError,
    WrongDestinationError,
    ClockSkewError,
    ReplayError,
    RateLimitedError,
    TtlTooLongError,
    ConfigError,
    UnauthenticatedError,
    ForbiddenError,
    ValidationError,
    UnreachableError,
    ConflictError,
    BrokenChainError,
)
"""Every error class, for tests that check codes stay unique and stable."""
