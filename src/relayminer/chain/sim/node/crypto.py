"""Addresses, public keys and SIGN_MODE_DIRECT signatures as the Cosmos SDK checks them.

- address bytes = RIPEMD-160(SHA-256(33-byte compressed secp256k1 key)); the account address is
  their bech32 (BIP-173) encoding with the HRP ``pokt`` (cosmos-sdk ``crypto/keys/secp256k1``);
- a signature is 64 bytes ``r || s`` over SHA-256 of the sign bytes, low-S only; DER, a recovery
  byte or a high S are refused, as the SDK verifier does.

>>> pub = bytes.fromhex("0349989f92956f078d1a002ffeb93e058d802e5b283724e58aa596c729e7ae8536")
>>> address_from_pubkey(pub)
'pokt148hkw6aws92klgtel6rwcza9v328fu933fms62'
>>> decode_address("pokt1notanaddress")
Traceback (most recent call last):
...
ValueError: decoding bech32 failed: invalid checksum or characters
"""

from __future__ import annotations

import hashlib
from typing import Final

import bech32
from coincurve import PublicKey
from coincurve.ecdsa import cdata_to_der, deserialize_compact

__all__ = [
    "ADDRESS_HRP",
    "address_from_pubkey",
    "decode_address",
    "encode_address",
    "is_address",
    "verify_signature",
]

ADDRESS_HRP: Final = "pokt"
_SECP256K1_HALF_N: Final = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def encode_address(raw: bytes, hrp: str = ADDRESS_HRP) -> str:
    data = bech32.convertbits(raw, 8, 5, True)
    if data is None:  # pragma: no cover - 8 -> 5 bit conversion with padding cannot fail
        raise ValueError("cannot convert address bytes")
    return str(bech32.bech32_encode(hrp, data))


def decode_address(address: str, hrp: str = ADDRESS_HRP) -> bytes:
    """The address bytes of a bech32 address with ``hrp``; ValueError with the SDK's words."""
    if not address:
        raise ValueError("empty address string is not allowed")
    found_hrp, data = bech32.bech32_decode(address)
    if found_hrp is None or data is None:
        raise ValueError("decoding bech32 failed: invalid checksum or characters")
    if found_hrp != hrp:
        raise ValueError(f"invalid Bech32 prefix; expected {hrp}, got {found_hrp}")
    raw = bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) not in (20, 32):
        raise ValueError("decoding bech32 failed: invalid address length")
    return bytes(raw)


def is_address(address: str, hrp: str = ADDRESS_HRP) -> bool:
    try:
        decode_address(address, hrp)
    except ValueError:
        return False
    return True


def address_from_pubkey(pubkey: bytes, hrp: str = ADDRESS_HRP) -> str:
    """bech32(RIPEMD-160(SHA-256(compressed public key)))."""
    digest = hashlib.new("ripemd160", hashlib.sha256(pubkey).digest()).digest()
    return encode_address(digest, hrp)


def verify_signature(pubkey: bytes, sign_bytes: bytes, signature: bytes) -> bool:
    """True when ``signature`` (64-byte low-S ``r || s``) signs SHA-256(``sign_bytes``)."""
    if len(signature) != 64 or len(pubkey) != 33:
        return False
    if int.from_bytes(signature[32:], "big") > _SECP256K1_HALF_N:
        return False
    try:
        key = PublicKey(pubkey)
        der = cdata_to_der(deserialize_compact(signature))
        return bool(key.verify(der, sign_bytes, hasher=lambda m: hashlib.sha256(m).digest()))
    except (ValueError, TypeError):
        return False
