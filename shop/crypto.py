"""Field encryption with rotatable keys, and the keyed look-up hash of personal data.

`FIELD_ENCRYPTION_KEY` is a comma-separated list of `kid:key` entries, where `kid` is a short
key id (letters, digits, `_`, `-`) and `key` is 32 random bytes in base64url (padding
optional), e.g. `2026a:<43 characters>`. The first entry encrypts new values; every entry
decrypts the values stored under its kid. Rotate it by prepending a new entry, running
`flask --app shop suppliers reencrypt`, and only then dropping the old entries.

`FIELD_HASH_KEY` (32 random bytes in base64url, no kid) is the separate key of the look-up hash
(HMAC-SHA256) that finds a person by ID number; it has nothing to do with the encryption keys,
so adding or dropping an encryption key never changes a hash. The database stores the hash key's
fingerprint (`key_fingerprints`), and the app refuses to serve requests when the configured key
does not match it, since every look-up would then miss and duplicates would go undetected.
Rotate the hash key with the service stopped: set `FIELD_HASH_KEY` to the new value, run
`flask --app shop suppliers reencrypt` (it decrypts every ID number, re-hashes it with the
configured hash key and records that key's fingerprint, in one transaction), then start again.

A ciphertext is stored as `kid:base64url(nonce ‖ AES-256-GCM ciphertext and tag)`; the field's
name is bound to it as associated data, so a value cannot be moved to another column.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

from shop.config import ConfigError

KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
NONCE_BYTES = 12
FINGERPRINT_LABEL = b"shop.suppliers hash-key fingerprint v1"


class DecryptionError(RuntimeError):
    """A stored ciphertext cannot be decrypted with the configured keys."""


@dataclass(frozen=True)
class Keyring:
    """The parsed encryption keys: the current kid and every key by kid."""

    current: str
    keys: dict[str, bytes]


def _b64decode(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(data: bytes) -> str:
    """Encode base64url without padding."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@functools.lru_cache(maxsize=8)
def parse_keys(spec: str) -> Keyring:
    """Parse a `FIELD_ENCRYPTION_KEY` value; `ConfigError` (never quoting key material) if malformed."""
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(part.strip() for part in spec.split(",")):
        kid, _, encoded = entry.partition(":")
        if not KEY_ID.match(kid):
            raise ConfigError(f"FIELD_ENCRYPTION_KEY entry {position + 1} needs a key id: kid:base64url(32 bytes).")
        if kid in keys:
            raise ConfigError(f"FIELD_ENCRYPTION_KEY names key id {kid!r} twice.")
        try:
            key = _b64decode(encoded)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ConfigError(f"FIELD_ENCRYPTION_KEY key {kid!r} is not 32 bytes in base64url.")
        keys[kid] = key
    return Keyring(current=next(iter(keys)), keys=keys)


@functools.lru_cache(maxsize=8)
def parse_hash_key(spec: str) -> bytes:
    """Parse a `FIELD_HASH_KEY` value; `ConfigError` (never quoting key material) if malformed."""
    try:
        key = _b64decode(spec.strip())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError("FIELD_HASH_KEY is not 32 bytes in base64url.")
    return key


def keyring() -> Keyring:
    """The keys of the current app."""
    return parse_keys(current_app.config["FIELD_ENCRYPTION_KEY"])


def encrypt(plaintext: str, *, field: str) -> str:
    """Encrypt `plaintext` for column `field` with the current key."""
    ring = keyring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.keys[ring.current]).encrypt(nonce, plaintext.encode(), field.encode())
    return f"{ring.current}:{_b64encode(nonce + sealed)}"


def key_id(token: str) -> str:
    """The id of the key a stored ciphertext was encrypted with."""
    return token.partition(":")[0]


def decrypt(token: str, *, field: str) -> str:
    """Decrypt a value of column `field`, choosing the key by the kid stored with it."""
    kid, _, encoded = token.partition(":")
    key = keyring().keys.get(kid)
    if key is None:
        raise DecryptionError(f"No configured key has the id {kid!r} (field {field}).")
    raw = _b64decode(encoded)
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], field.encode()).decode()
    except InvalidTag as exc:
        raise DecryptionError(f"A value of field {field} does not authenticate under key {kid!r}.") from exc


def hash_key() -> bytes:
    """The look-up hash key of the current app (`FIELD_HASH_KEY`)."""
    return parse_hash_key(current_app.config["FIELD_HASH_KEY"])


def lookup_hash(value: str) -> str:
    """The keyed hash (HMAC-SHA256, hex) of a normalised value, for duplicate detection and look-up."""
    return hmac.new(hash_key(), value.encode(), hashlib.sha256).hexdigest()


def hash_key_fingerprint() -> str:
    """A fingerprint of the look-up hash key that reveals nothing about the key (HMAC of a fixed label)."""
    return hmac.new(hash_key(), FINGERPRINT_LABEL, hashlib.sha256).hexdigest()
