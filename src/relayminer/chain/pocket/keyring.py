"""Keys from a Cosmos SDK keyring directory, ``test`` backend (what ``pocketd keys add
--keyring-backend test`` writes).

Layout (cosmos-sdk ``crypto/keyring``, 99designs/keyring file backend): ``<home>/keyring-test/``
holds ``<name>.info`` files, each a JWE compact serialization (RFC 7516) encrypted with the fixed
password ``test``: ``alg`` PBES2-HS256+A128KW, ``enc`` A256GCM. The plaintext is the JSON keyring
item whose ``Data`` (base64) is a protobuf ``cosmos.crypto.keyring.v1.Record``; a ``local``
record holds the ``/cosmos.crypto.secp256k1.PrivKey``.

:func:`encrypt_item` is the inverse, used to build fixture keyrings. Keys written by SDK < 0.46
(amino legacy info) are not readable here.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from relayminer.chain.pocket.keyfiles import KeySourceError
from relayminer.chain.pocket.keys import InvalidKeyError, PocketKey
from relayminer.proto import cosmos_crypto_secp256k1_pb2 as secp256k1_pb2
from relayminer.proto import cosmos_keyring_pb2 as keyring_pb2

__all__ = ["TEST_PASSWORD", "decrypt_item", "encrypt_item", "load_keyring_test", "record_for"]

TEST_PASSWORD = "test"
_ALG = "PBES2-HS256+A128KW"
_ENC = "A256GCM"
_PRIV_URL = "/cosmos.crypto.secp256k1.PrivKey"
_PUB_URL = "/cosmos.crypto.secp256k1.PubKey"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _kek(password: str, salt_input: bytes, iterations: int) -> bytes:
    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA256(),
        length=16,
        salt=_ALG.encode() + b"\x00" + salt_input,
        iterations=iterations,
    )
    return kdf.derive(password.encode())


def decrypt_item(token: str, password: str = TEST_PASSWORD) -> bytes:
    """Plaintext of a PBES2-HS256+A128KW / A256GCM JWE compact token."""
    parts = token.strip().split(".")
    if len(parts) != 5:
        raise ValueError("not a JWE compact serialization")
    header = json.loads(_b64url_decode(parts[0]))
    if header.get("alg") != _ALG or header.get("enc") != _ENC:
        raise ValueError("unsupported JWE algorithm")
    iterations = int(header["p2c"])
    if not 1000 <= iterations <= 10_000_000:
        raise ValueError("unreasonable PBES2 iteration count")
    kek = _kek(password, _b64url_decode(str(header["p2s"])), iterations)
    cek = aes_key_unwrap(kek, _b64url_decode(parts[1]))
    iv, ciphertext, tag = (_b64url_decode(p) for p in parts[2:])
    return AESGCM(cek).decrypt(iv, ciphertext + tag, parts[0].encode("ascii"))


def encrypt_item(
    plaintext: bytes, password: str = TEST_PASSWORD, iterations: int = 8192, created: str = ""
) -> str:
    """JWE compact token as the keyring's file backend writes it (fixtures, tooling)."""
    salt = os.urandom(12)
    header: dict[str, Any] = {"alg": _ALG, "enc": _ENC, "p2c": iterations, "p2s": _b64url(salt)}
    if created:
        header["created"] = created
    protected = _b64url(json.dumps(header, separators=(",", ":")).encode())
    cek = os.urandom(32)
    wrapped = aes_key_wrap(_kek(password, salt, iterations), cek)
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    parts = (protected, _b64url(wrapped), _b64url(iv), _b64url(sealed[:-16]), _b64url(sealed[-16:]))
    return ".".join(parts)


def record_for(name: str, key: PocketKey) -> bytes:
    """The keyring item JSON (plaintext of ``<name>.info``) for a local secp256k1 key."""
    record = keyring_pb2.Record(
        name=name,
        pub_key=any_pb2.Any(
            type_url=_PUB_URL, value=secp256k1_pb2.PubKey(key=key.public_key).SerializeToString()
        ),
        local=keyring_pb2.Record.Local(
            priv_key=any_pb2.Any(
                type_url=_PRIV_URL,
                value=secp256k1_pb2.PrivKey(key=key.private_key_bytes()).SerializeToString(),
            )
        ),
    )
    item = {
        "Key": f"{name}.info",
        "Data": base64.b64encode(record.SerializeToString()).decode(),
        "Label": "",
        "Description": "",
        "KeychainNotTrustApplication": False,
        "KeychainNotSynchronizable": False,
    }
    return json.dumps(item).encode()


def _key_from_item(plaintext: bytes) -> PocketKey | None:
    """The local secp256k1 key of a keyring item; None for ledger/multi/offline records."""
    item = json.loads(plaintext)
    record = keyring_pb2.Record.FromString(base64.b64decode(item["Data"]))
    if record.WhichOneof("item") != "local":
        return None
    priv = record.local.priv_key
    if priv.type_url != _PRIV_URL:
        return None  # only secp256k1 keys sign Pocket txs
    return PocketKey(secp256k1_pb2.PrivKey.FromString(priv.value).key)


def load_keyring_test(home: Path, names: Sequence[str] = ()) -> list[PocketKey]:
    """The secp256k1 keys of ``<home>/keyring-test`` (``names`` empty: every key).

    ``home`` is the keyring home, as ``--home``/``keyring.dir``: ``keyring-test`` is appended.
    Errors name the entry, never its content.
    """
    folder = home / "keyring-test"
    if not folder.is_dir():
        raise KeySourceError(f"keyring: {folder} is not a directory")
    wanted = {f"{n}.info" for n in names}
    files = sorted(p for p in folder.glob("*.info") if not wanted or p.name in wanted)
    missing = wanted - {p.name for p in files}
    if missing:
        raise KeySourceError(f"keyring: no key named {', '.join(sorted(missing))} in {folder}")
    keys: list[PocketKey] = []
    for path in files:
        try:
            key = _key_from_item(decrypt_item(path.read_text(encoding="ascii")))
        except (InvalidTag, InvalidUnwrap):
            raise KeySourceError(f"keyring: {path.name}: wrong password or corrupt") from None
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            DecodeError,
            InvalidKeyError,
        ) as err:
            raise KeySourceError(
                f"keyring: {path.name}: unreadable entry ({type(err).__name__})"
            ) from None
        if key is not None:
            keys.append(key)
    return keys
