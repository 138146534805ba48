"""Master key loading, validation, derivation, demo key and CLI."""

from __future__ import annotations

import base64
import os
import pickle
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cdp import keys
from cdp.keys import (
    DOMAINS,
    ENV_KEY,
    ENV_KEY_FILE,
    ENV_KEY_VERSION,
    KeyConfigError,
    MasterKey,
    create_demo_key,
    load_master_key,
    pseudonym_key,
    vault_encryption_key,
    vault_nonce_key,
)

GOOD = "k3Q" + secrets.token_urlsafe(48)


def _env(**values: str) -> dict[str, str]:
    return dict(values)


def _assert_no_part_of(secret: str, message: str, window: int = 6) -> None:
    assert secret not in message
    for i in range(max(0, len(secret) - window + 1)):
        assert secret[i : i + window] not in message, "the message quotes part of the secret"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (ENV_KEY, ENV_KEY_FILE, ENV_KEY_VERSION):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _key_file(tmp_path: Path, content: str, mode: int = 0o600) -> Path:
    path = tmp_path / "master.key"
    path.write_text(content + "\n", encoding="utf-8")
    os.chmod(path, mode)
    return path


# --------------------------------------------------------------------------- missing / bad


def test_missing_key_says_what_to_set() -> None:
    with pytest.raises(KeyConfigError) as info:
        load_master_key({})
    message = str(info.value)
    assert "CDP_MASTER_KEY is not set" in message
    assert "token_urlsafe" in message
    assert "CDP_MASTER_KEY_FILE" in message


def test_blank_key_counts_as_missing() -> None:
    with pytest.raises(KeyConfigError, match="CDP_MASTER_KEY is not set"):
        load_master_key({ENV_KEY: "   "})


def test_short_key_is_refused_without_quoting_it() -> None:
    short = secrets.token_urlsafe(16)[:20]
    with pytest.raises(KeyConfigError) as info:
        load_master_key({ENV_KEY: short})
    message = str(info.value)
    assert "at least 32 bytes" in message
    _assert_no_part_of(short, message)
    # Even a key that is an English word is not echoed by the fixed text.
    with pytest.raises(KeyConfigError) as word:
        load_master_key({ENV_KEY: "short"})
    assert "short" not in str(word.value)


@pytest.mark.parametrize(
    "placeholder",
    [
        "changeme" * 4,
        "x" * 64,
        "X" * 40,
        "a" * 32,
        "your-key-here-your-key-here-your-key-here",
        "YOUR_KEY_HERE_YOUR_KEY_HERE_YOUR_KEY",
        "secret" * 6,
        "password" * 4,
        "example-example-example-example-1",
        "0123456789" * 4,
        "abcdefghijklmnopqrstuvwxyz0123456789",
        "abcabcabcabcabcabcabcabcabcabcabc",
        "my-super-secret-password-1234567",
        "changeme-changeme-secret-key-here",
        "test-test-test-test-test-test-test",
        "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    ],
)
def test_placeholder_keys_are_refused(placeholder: str) -> None:
    with pytest.raises(KeyConfigError) as info:
        load_master_key({ENV_KEY: placeholder})
    message = str(info.value)
    assert "placeholder" in message
    assert "token_urlsafe" in message
    assert placeholder not in message


@pytest.mark.parametrize(
    "make",
    [
        lambda: secrets.token_urlsafe(48),
        lambda: secrets.token_urlsafe(24),  # exactly 32 characters
        lambda: secrets.token_hex(32),
        lambda: secrets.token_hex(16),  # 32 hex characters
        lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
    ],
)
def test_random_keys_are_accepted(make: object) -> None:
    assert callable(make)
    for _ in range(300):
        value = make()
        assert isinstance(value, str)
        master = load_master_key({ENV_KEY: value})
        assert master.secret == value.encode()


def test_version_default_and_validation() -> None:
    assert load_master_key({ENV_KEY: GOOD}).version == "1"
    assert load_master_key({ENV_KEY: GOOD, ENV_KEY_VERSION: " 12 "}).version == "12"
    assert load_master_key({ENV_KEY: GOOD, ENV_KEY_VERSION: "9999"}).version_label == "v9999"
    for bad in ["0", "01", "12345", "v1", "one", "-1", "1.0"]:
        with pytest.raises(KeyConfigError, match="CDP_KEY_VERSION must be"):
            load_master_key({ENV_KEY: GOOD, ENV_KEY_VERSION: bad})


def test_both_variables_set_is_ambiguous(tmp_path: Path) -> None:
    path = _key_file(tmp_path, GOOD)
    with pytest.raises(KeyConfigError, match="set only one"):
        load_master_key({ENV_KEY: GOOD, ENV_KEY_FILE: str(path)})


# --------------------------------------------------------------------------- key file


def test_key_file_owner_only_is_read(tmp_path: Path) -> None:
    path = _key_file(tmp_path, GOOD)
    master = load_master_key({ENV_KEY_FILE: str(path)})
    assert master.secret == GOOD.encode()  # trailing newline ignored
    assert str(path) in master.source
    # The same secret from the environment derives the same keys.
    inline = load_master_key({ENV_KEY: GOOD})
    assert pseudonym_key(master, "identity") == pseudonym_key(inline, "identity")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o620])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path, GOOD, mode)
    with pytest.raises(KeyConfigError) as info:
        load_master_key({ENV_KEY_FILE: str(path)})
    message = str(info.value)
    assert "chmod 600" in message
    assert f"{mode:04o}" in message
    _assert_no_part_of(GOOD, message)


def test_key_file_missing_empty_or_short(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="does not exist"):
        load_master_key({ENV_KEY_FILE: str(tmp_path / "nope.key")})
    empty = _key_file(tmp_path, "")
    with pytest.raises(KeyConfigError, match="is empty"):
        load_master_key({ENV_KEY_FILE: str(empty)})
    short = secrets.token_hex(8)
    path = _key_file(tmp_path, short)
    with pytest.raises(KeyConfigError) as info:
        load_master_key({ENV_KEY_FILE: str(path)})
    assert "at least 32 bytes" in str(info.value)
    _assert_no_part_of(short, str(info.value))
    with pytest.raises(KeyConfigError, match="not a regular file"):
        load_master_key({ENV_KEY_FILE: str(tmp_path)})


def test_os_environ_is_the_default(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyConfigError):
        load_master_key()
    clean_env.setenv(ENV_KEY, GOOD)
    clean_env.setenv(ENV_KEY_VERSION, "3")
    master = load_master_key()
    assert master.version == "3"


# --------------------------------------------------------------------------- derivation


def test_domain_keys_differ_and_are_deterministic() -> None:
    master = load_master_key({ENV_KEY: GOOD})
    derived = [pseudonym_key(master, d) for d in DOMAINS]
    derived += [vault_encryption_key(master), vault_nonce_key(master)]
    assert all(len(k) == 32 for k in derived)
    assert len(set(derived)) == len(derived)
    assert GOOD.encode() not in derived
    again = load_master_key({ENV_KEY: GOOD})
    assert [pseudonym_key(again, d) for d in DOMAINS] == derived[:3]


def test_keys_depend_on_version_and_master() -> None:
    v1 = load_master_key({ENV_KEY: GOOD})
    v2 = load_master_key({ENV_KEY: GOOD, ENV_KEY_VERSION: "2"})
    other = load_master_key({ENV_KEY: secrets.token_urlsafe(48)})
    for domain in DOMAINS:
        assert pseudonym_key(v1, domain) != pseudonym_key(v2, domain)
        assert pseudonym_key(v1, domain) != pseudonym_key(other, domain)
    assert vault_encryption_key(v2, "1") == vault_encryption_key(v1)
    assert pseudonym_key(v1, "identity") == keys.derive(v1, b"cdp:pseudonym:identity:v1")
    with pytest.raises(ValueError, match="unknown pseudonymisation domain"):
        pseudonym_key(v1, "marketing")


def test_master_key_never_printed_or_pickled() -> None:
    master = load_master_key({ENV_KEY: GOOD})
    assert GOOD not in repr(master)
    assert GOOD not in str(master)
    with pytest.raises(TypeError):
        pickle.dumps(master)
    assert isinstance(master, MasterKey)


# --------------------------------------------------------------------------- demo key


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_demo_key_created_owner_only_and_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / ".secrets" / "master.key"
    assert create_demo_key(path) == path
    content = path.read_text()
    out = capsys.readouterr()
    assert "demo only" in out.err
    assert content.strip() not in out.err + out.out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    load_master_key({ENV_KEY_FILE: str(path)})  # valid
    create_demo_key(path)
    assert path.read_text() == content
    assert "keeping the existing" in capsys.readouterr().err


def test_cli_demo_key_prints_path_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s" / "master.key"
    assert keys.main(["demo-key", "--path", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(path)
    assert path.read_text().strip() not in out.out + out.err


def test_cli_check(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert keys.main(["check"]) == 1
    assert "CDP_MASTER_KEY is not set" in capsys.readouterr().err
    clean_env.setenv(ENV_KEY, GOOD)
    clean_env.setenv(ENV_KEY_VERSION, "2")
    assert keys.main(["check"]) == 0
    out = capsys.readouterr()
    assert "OK" in out.out
    assert "v2" in out.out
    assert GOOD not in out.out + out.err


def test_module_entry_point(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
    env[ENV_KEY] = "changeme" * 4
    result = subprocess.run(
        [sys.executable, "-m", "cdp.keys", "check"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert "placeholder" in result.stderr
    assert "changeme" not in result.stderr
