"""Operator keys: hex, mnemonic, keys file (errors by line, reload), keyring test backend."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from pydantic import ValidationError

from relayminer.chain.pocket import (
    KeySet,
    KeySourceError,
    MissingSupplierKeyError,
    PocketChainSettings,
    PocketKey,
    check_supplier_keys,
    load_keys,
)
from relayminer.chain.pocket.keyfiles import KeysFile, load_keys_file, mnemonic_keys
from relayminer.chain.pocket.keyring import (
    decrypt_item,
    encrypt_item,
    load_keyring_test,
    record_for,
)
from relayminer.chain.pocket.keys import InvalidKeyError, pubkey_address

HEX = "5ed284207b7d91bbc56452c0d846f1d95705c919a6ac3bf4dde208ada161e774"
ADDRESS = "pokt148hkw6aws92klgtel6rwcza9v328fu933fms62"
MNEMONIC = "own vault thank leader absent west drama skill merit ball smoke visa"
MNEMONIC_ADDRESS = "pokt1mcm574lmafcsy6a9syksp6ezypnut4c63gur5x"


def test_hex_forms_and_secrets_never_printed() -> None:
    key = PocketKey.from_hex(HEX)
    assert PocketKey.from_hex("0x" + HEX.upper()) == key
    assert key.address() == ADDRESS
    assert key.address("poktvaloper").startswith("poktvaloper1")
    assert HEX not in repr(key) and HEX not in str(key) and ADDRESS in repr(key)
    assert len(key.sign(b"doc")) == 64
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert len({key, PocketKey.from_hex(HEX)}) == 1


@pytest.mark.parametrize("bad", ["", "zz" * 32, HEX[:-2], "00" * 32, "ff" * 32])
def test_bad_hex_keys_are_refused_without_echo(bad: str) -> None:
    with pytest.raises(InvalidKeyError) as info:
        PocketKey.from_hex(bad)
    assert bad not in str(info.value) or bad == ""


def test_mnemonic_path_and_validation() -> None:
    assert PocketKey.from_mnemonic(MNEMONIC).address() == MNEMONIC_ADDRESS
    keys = mnemonic_keys(MNEMONIC, count=3)
    assert keys[0].address() == MNEMONIC_ADDRESS
    assert len({k.address() for k in keys}) == 3
    assert PocketKey.from_mnemonic(MNEMONIC, account=1) != keys[0]
    with pytest.raises(KeySourceError) as info:
        mnemonic_keys("own vault thank leader absent west drama skill merit ball smoke smoke")
    assert "smoke" not in str(info.value)
    with pytest.raises(InvalidKeyError):
        PocketKey.from_mnemonic(MNEMONIC, index=-1)
    with pytest.raises(KeySourceError):
        mnemonic_keys(MNEMONIC, count=0)


def test_address_of_a_known_public_key() -> None:
    """cosmjs vector: the public key and its pokt address."""
    pub = bytes.fromhex("0349989f92956f078d1a002ffeb93e058d802e5b283724e58aa596c729e7ae8536")
    assert pubkey_address(pub) == ADDRESS


def test_keys_file_errors_name_the_line_not_the_content(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    secret = "ab" * 31 + "zz"
    path.write_text(f'keys:\n  - "{HEX}"\n  - "{secret}"\n')
    with pytest.raises(KeySourceError) as info:
        load_keys_file(path)
    assert "line 3" in str(info.value) and secret not in str(info.value)
    path.write_text(f'keys:\n  - "{HEX}\n  - [oops\n')
    with pytest.raises(KeySourceError) as syntax:
        load_keys_file(path)
    assert "line" in str(syntax.value) and HEX not in str(syntax.value)
    for text in ("keys: []\n", "other: 1\n", "- a\n"):
        path.write_text(text)
        with pytest.raises(KeySourceError):
            load_keys_file(path)
    path.write_text("keys:\n  - {a: 1}\n")
    with pytest.raises(KeySourceError, match="line 2"):
        load_keys_file(path)
    with pytest.raises(KeySourceError, match="cannot read"):
        load_keys_file(tmp_path / "absent.yaml")


def test_keys_file_reloads_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys: ['{HEX}']\n")
    source = KeysFile(path)
    assert [k.address() for k in source.current()] == [ADDRESS]
    other = "0x" + "03" * 32
    path.write_text(f"keys: ['{HEX}', '{other}']\n")
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the clock resolution
    assert len(source.current()) == 2
    path.write_text("keys: ['bad']\n")
    os.utime(path, ns=(2, 2))
    with pytest.raises(KeySourceError, match="line 1"):
        source.current()
    path.unlink()
    with pytest.raises(KeySourceError):
        source.current()


def test_keyring_test_backend_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "keyring-test"
    folder.mkdir()
    alice = PocketKey.from_hex(HEX)
    bob = PocketKey.from_mnemonic(MNEMONIC)
    for name, key in (("alice", alice), ("bob", bob)):
        token = encrypt_item(record_for(name, key), iterations=1000)
        (folder / f"{name}.info").write_text(token)
        (folder / f"{key.public_key.hex()[:40]}.address").write_text("ignored")
    assert {k.address() for k in load_keyring_test(tmp_path)} == {ADDRESS, MNEMONIC_ADDRESS}
    assert [k.address() for k in load_keyring_test(tmp_path, ["bob"])] == [MNEMONIC_ADDRESS]
    with pytest.raises(KeySourceError, match="carol"):
        load_keyring_test(tmp_path, ["carol"])
    assert decrypt_item((folder / "alice.info").read_text()) == record_for("alice", alice)
    (folder / "mallory.info").write_text(encrypt_item(b"{}", password="not-test", iterations=1000))
    with pytest.raises(KeySourceError, match=r"mallory\.info: wrong password"):
        load_keyring_test(tmp_path)
    (folder / "mallory.info").write_text("not a jwe")
    with pytest.raises(KeySourceError, match="unreadable entry"):
        load_keyring_test(tmp_path)
    with pytest.raises(KeySourceError, match="not a directory"):
        load_keyring_test(tmp_path / "nowhere")


def test_missing_supplier_keys_are_named() -> None:
    keys = KeySet([PocketKey.from_hex(HEX)])
    check_supplier_keys([ADDRESS], keys)
    with pytest.raises(MissingSupplierKeyError) as info:
        check_supplier_keys([ADDRESS, "pokt1b", "pokt1a"], keys)
    assert info.value.suppliers == ["pokt1a", "pokt1b"]
    assert "pokt1a, pokt1b" in str(info.value)
    assert len(keys) == 1 and list(keys) == [ADDRESS] and ADDRESS in repr(keys)


def test_settings_and_load_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(f"keys: ['{HEX}']\n")
    (tmp_path / "keyring-test").mkdir()
    monkeypatch.setenv("TEST_MNEMONIC", MNEMONIC)
    settings = PocketChainSettings.model_validate(
        {
            "chain_id": "pocket-beta",
            "keys": {
                "keys_file": str(keys_file),
                "mnemonic": {"env": "TEST_MNEMONIC", "count": 2},
                "keyring": {"dir": str(tmp_path)},
            },
        }
    )
    current = load_keys(settings)()
    assert ADDRESS in current and MNEMONIC_ADDRESS in current and len(current) == 3
    with pytest.raises(ValidationError, match="exactly one"):
        PocketChainSettings.model_validate({"keys": {"mnemonic": {}}})
    with pytest.raises(ValidationError, match="at least one"):
        PocketChainSettings.model_validate({"keys": {}})
    with pytest.raises(ValidationError, match="gas_adjustment"):
        PocketChainSettings.model_validate({"keys": {"keys_file": "k"}, "gas_adjustment": 0})
    monkeypatch.delenv("TEST_MNEMONIC")
    with pytest.raises(KeySourceError, match="TEST_MNEMONIC is not set"):
        load_keys(settings)
    secret_file = tmp_path / "mnemonic.txt"
    secret_file.write_text(MNEMONIC + "\n")
    only_mnemonic = PocketChainSettings.model_validate(
        {"keys": {"mnemonic": {"file": str(secret_file)}}}
    )
    assert list(load_keys(only_mnemonic)()) == [MNEMONIC_ADDRESS]
    missing = PocketChainSettings.model_validate(
        {"keys": {"mnemonic": {"file": str(tmp_path / "nope")}}}
    )
    with pytest.raises(KeySourceError, match="cannot read"):
        load_keys(missing)
