"""Low-level sealing recipes used by the envelope: AEAD, sealed boxes, commitments.

Everything random is drawn from an injected ``rng`` so that test vectors are
exact. The sealed box is libsodium's ``crypto_box_seal`` construction built from
its parts (ephemeral X25519 key from ``rng``, nonce = BLAKE2b-192(epk || pk)),
so any libsodium ``crypto_box_seal_open`` opens it.

Failures to open are reported as one opaque :class:`DecryptError`.
"""

from __future__ import annotations

import hashlib

import nacl.bindings as sodium
import nacl.exceptions

from protocol.errors import DecryptError, MalformedError
from protocol.keys import Rng

AEAD_KEY_SIZE = 32
AEAD_NONCE_SIZE = 24
SEALED_BOX_OVERHEAD = 32 + 16


def check_x25519_public(where: str, public: bytes) -> None:
    """Refuse an X25519 public key that is a low-order point (shared secret all zero).

    Raises:
        MalformedError: The key would make every sealed box to it worthless.
    """
    try:
        sodium.crypto_scalarmult(b"\x01" + b"\x00" * 30 + b"\x40", public)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.CryptoError, ValueError, TypeError):
        raise MalformedError(f"{where} is not a usable X25519 public key") from None


def section_digest(key: bytes, plaintext: bytes) -> bytes:
    """Keyed digest of a section: ``SHA-256(domain || 0x00 || key || plaintext)``.

    Keyed with the section key so that recipients of lower tiers, who see the
    manifest but not the key, cannot confirm guesses about withheld sections.
    """
    return hashlib.sha256(b"heliograph/section-digest/v1\x00" + key + plaintext).digest()


def key_commitment(key: bytes) -> bytes:
    """Return the commitment to a symmetric key, ``SHA-256(domain || 0x00 || key)``."""
    return hashlib.sha256(b"heliograph/key-commit/v1\x00" + key).digest()


def aead_seal(key: bytes, nonce: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """XChaCha20-Poly1305-IETF encryption (ciphertext || 16-byte tag)."""
    return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, associated, nonce, key)


def aead_open(key: bytes, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes:
    """XChaCha20-Poly1305-IETF decryption.

    Raises:
        DecryptError: Authentication failed.
    """
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, associated, nonce, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise DecryptError() from None


def seal_box(recipient_public: bytes, plaintext: bytes, rng: Rng) -> bytes:
    """Anonymous sealed box to ``recipient_public`` (libsodium-compatible).

    Returns:
        ``ephemeral_public (32) || crypto_box ciphertext (len + 16)``.
    """
    ephemeral_secret = rng(32)
    ephemeral_public = sodium.crypto_scalarmult_base(ephemeral_secret)
    nonce = hashlib.blake2b(ephemeral_public + recipient_public, digest_size=24).digest()
    return ephemeral_public + sodium.crypto_box(plaintext, nonce, recipient_public, ephemeral_secret)


def open_box(recipient_public: bytes, recipient_secret: bytes, sealed: bytes) -> bytes:
    """Open a sealed box.

    Raises:
        DecryptError: The box is not for this key or was altered.
    """
    try:
        return sodium.crypto_box_seal_open(sealed, recipient_public, recipient_secret)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise DecryptError() from None
