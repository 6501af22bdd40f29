"""Operator keys: a secp256k1 private key and the ``pokt`` address derived from it.

A :class:`PocketKey` signs SIGN_MODE_DIRECT sign bytes the way the Cosmos SDK verifies them:
ECDSA over SHA-256 of the bytes, RFC 6979 nonces, the 64-byte ``r || s`` form with a low ``s``
(libsecp256k1 via ``coincurve`` always produces that). The address is the bech32 (BIP-173) of
RIPEMD-160(SHA-256(compressed public key)), as cosmos-sdk ``crypto/keys/secp256k1`` does.

Private material never appears in ``repr``/``str`` or in an error message: a key prints as its
address only.
"""

from __future__ import annotations

import hashlib
from typing import Final

import bech32
import coincurve
from bip32 import BIP32
from bip32.ripemd160 import ripemd160 as _pure_ripemd160
from mnemonic import Mnemonic

from relayminer.errors import RelayMinerError

__all__ = ["DEFAULT_PREFIX", "InvalidKeyError", "PocketKey", "address_bytes", "pubkey_address"]

DEFAULT_PREFIX: Final = "pokt"
#: BIP-44 coin type of Cosmos chains; poktroll does not set its own
_COIN_TYPE: Final = 118


class InvalidKeyError(RelayMinerError, ValueError):
    """A key could not be built (bad hex, bad mnemonic ...). The message never holds key
    material."""


def _ripemd160(data: bytes) -> bytes:
    try:
        return hashlib.new("ripemd160", data).digest()
    except ValueError:  # OpenSSL 3 builds without the legacy provider
        return bytes(_pure_ripemd160(data))


def address_bytes(public_key: bytes) -> bytes:
    """The 20 address bytes of a compressed public key."""
    return _ripemd160(hashlib.sha256(public_key).digest())


def pubkey_address(public_key: bytes, prefix: str = DEFAULT_PREFIX) -> str:
    """The bech32 account address of a compressed secp256k1 public key."""
    five_bit = bech32.convertbits(address_bytes(public_key), 8, 5)
    assert five_bit is not None  # 8 -> 5 bit regrouping with padding cannot fail
    return str(bech32.bech32_encode(prefix, five_bit))


class PocketKey:
    """A secp256k1 operator key.

    >>> key = PocketKey.from_hex("01" * 32)
    >>> key.address().startswith("pokt1")
    True
    >>> "0101" in repr(key)
    False
    """

    __slots__ = ("_address", "_private", "_public")

    def __init__(self, private_key: bytes) -> None:
        if not isinstance(private_key, bytes) or len(private_key) != 32:
            raise InvalidKeyError("a private key is exactly 32 bytes")
        try:
            self._private = coincurve.PrivateKey(private_key)
        except ValueError as err:
            raise InvalidKeyError("the private key is not a valid secp256k1 scalar") from err
        self._public = self._private.public_key.format(compressed=True)
        self._address = pubkey_address(self._public)

    @classmethod
    def from_hex(cls, private_key_hex: str) -> PocketKey:
        """From 64 hex digits (case-insensitive, optional ``0x``)."""
        text = private_key_hex.strip()
        if text[:2] in ("0x", "0X"):
            text = text[2:]
        if len(text) != 64:
            raise InvalidKeyError("a private key is 64 hex digits")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise InvalidKeyError("a private key is 64 hex digits") from None
        return cls(raw)

    @classmethod
    def from_mnemonic(
        cls, mnemonic: str, account: int = 0, index: int = 0, passphrase: str = ""
    ) -> PocketKey:
        """BIP-39 seed, then BIP-32 path ``m/44'/118'/account'/0/index`` (cosmos-sdk ``hd``)."""
        words = " ".join(mnemonic.split())
        if not Mnemonic("english").check(words):
            raise InvalidKeyError("the mnemonic is not a valid BIP-39 english phrase")
        for name, value in (("account", account), ("index", index)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
                raise InvalidKeyError(f"{name} must be an int in [0, 2^31)")
        seed = Mnemonic.to_seed(words, passphrase)
        path = f"m/44'/{_COIN_TYPE}'/{account}'/0/{index}"
        return cls(bytes(BIP32.from_seed(seed).get_privkey_from_path(path)))

    @property
    def public_key(self) -> bytes:
        """33-byte compressed SEC1 public key."""
        return self._public

    def address(self, prefix: str = DEFAULT_PREFIX) -> str:
        """bech32 account address (``pokt1...`` by default)."""
        if prefix == DEFAULT_PREFIX:
            return self._address
        return pubkey_address(self._public, prefix)

    def sign(self, sign_doc: bytes) -> bytes:
        """64-byte ``r || s`` ECDSA signature over SHA-256(``sign_doc``), RFC 6979, low-S."""
        digest = hashlib.sha256(sign_doc).digest()
        recoverable = self._private.sign_recoverable(digest, hasher=None)
        return bytes(recoverable[:64])  # drop the recovery id; libsecp256k1 emits low-S

    def private_key_bytes(self) -> bytes:
        """The 32 private bytes (for encrypting a keyring entry); never log them."""
        return bytes(self._private.secret)

    def __repr__(self) -> str:
        return f"PocketKey(address={self._address!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PocketKey) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("PocketKey is not picklable (it holds private key material)")
