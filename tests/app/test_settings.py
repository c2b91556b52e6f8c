"""Settings from the environment: defaults, validation, and the one-line error at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import SettingsError
from app.settings import SETTINGS_HELP, Settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.threshold_cents, s.window_size_ms, s.window_slide_ms) == (1_000_000, 600_000, 120_000)
    assert (s.partitions, s.max_out_of_orderness_ms, s.processing_guarantee) == (
        8,
        0,
        "at_least_once",
    )
    assert s.broker_url == "kafka://localhost:9092"
    assert Settings.from_env({"KAFKA_BOOTSTRAP": "a:1,b:2"}).broker_url == "kafka://a:1;kafka://b:2"
    assert Settings.from_env({"THRESHOLD": "9999.99"}).threshold_cents == 999_999
    assert Settings.from_env({"STORE": "rocksdict://"}).store == "rocksdb://"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WINDOW_SIZE": "500"}, "WINDOW_SIZE=500 must be a multiple of WINDOW_SLIDE=120"),
        ({"WINDOW_SLIDE": "0"}, "WINDOW_SLIDE=0 must be"),
        ({"WINDOW_SIZE": "ten"}, "WINDOW_SIZE='ten' is not a number of seconds"),
        ({"THRESHOLD": "10.001"}, "THRESHOLD=10.001 must be a non-negative amount"),
        ({"THRESHOLD": "NaN"}, "THRESHOLD=NaN must be"),
        ({"TOPIC_PARTITIONS": "0"}, "TOPIC_PARTITIONS=0 must be >= 1"),
        ({"WEB_PORT": "70000"}, "WEB_PORT=70000 must be between 1 and 65535"),
        ({"PROCESSING_GUARANTEE": "maybe"}, "PROCESSING_GUARANTEE='maybe' must be one of"),
        ({"STORE": "redis://"}, "STORE='redis://' must be rocksdb:// or memory://"),
        ({"APP_ID": " "}, "APP_ID must not be empty"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL_SSL needs KAFKA_SASL_USERNAME"),
        ({"KAFKA_SASL_MECHANISM": "MD5"}, "KAFKA_SASL_MECHANISM='MD5' must be one of"),
        ({"WEB_TOKEN": "short-9c1"}, "WEB_TOKEN: the token has 9 characters, fewer than 16"),
        ({"WEB_TOKEN_FILE": "/nonexistent/token"}, "WEB_TOKEN_FILE='/nonexistent/token' cannot"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


def test_every_setting_is_documented() -> None:
    rows = {
        line.split("|")[1].strip(): line
        for line in (REPO / "docs" / "settings.md").read_text().splitlines()
        if line.startswith("| `")
    }
    for name, (default, _) in SETTINGS_HELP.items():
        assert f"`{name}`" in rows, name
        shown = f"| `{default}` |" if default else "| (unset) |"
        assert shown in rows[f"`{name}`"], (name, default)


def test_the_settings_carry_the_kafka_security_but_never_show_the_password() -> None:
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "fraud",
        "KAFKA_SASL_PASSWORD": "pw-in-env-4d2c",
    }
    settings = Settings.from_env(env)
    assert settings.security.describe() == "SASL_SSL (SCRAM-SHA-512 as 'fraud')"
    assert settings.security.client_options()["sasl_plain_password"] == "pw-in-env-4d2c"
    assert "pw-in-env-4d2c" not in repr(settings)
    assert Settings.from_env({}).security.protocol == "PLAINTEXT"


def faust_worker(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``faust -A app worker ARGS`` from the repository with ``env`` on top of ours."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "faust"), "-A", "app", "worker", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_worker_stops_with_one_line_on_a_bad_security_setting() -> None:
    result = faust_worker(env={"KAFKA_SASL_USERNAME": "fraud", "KAFKA_SASL_PASSWORD": "pw-3b9e"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "fraud-detector: bad setting: a SASL user or password is set, but "
        "KAFKA_SECURITY_PROTOCOL=PLAINTEXT sends no login: set KAFKA_SECURITY_PROTOCOL=SASL_SSL"
    )
    assert "pw-3b9e" not in result.stdout + result.stderr


def test_the_worker_help_shows_no_secret() -> None:
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "fraud",
        "KAFKA_SASL_PASSWORD": "pw-5e0a",
    }
    result = faust_worker("--help", env=env)
    assert result.returncode == 0, result.stderr
    assert "pw-5e0a" not in result.stdout + result.stderr


def test_the_worker_stops_with_one_line_on_a_bad_setting() -> None:
    result = faust_worker(env={"WINDOW_SIZE": "500"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "fraud-detector: bad setting: WINDOW_SIZE=500 must be a multiple of WINDOW_SLIDE=120"
    )


TOKEN = "tok-3f9a0c1d2e4b5a6978"


def test_the_web_token_from_the_environment_never_shows() -> None:
    assert Settings.from_env({}).web_token is None
    assert Settings.from_env({"WEB_TOKEN": " "}).web_token is None  # empty counts as unset
    assert Settings.from_env({}).web_headers == {}
    settings = Settings.from_env({"WEB_TOKEN": TOKEN})
    assert settings.web_token is not None and settings.web_token.reveal() == TOKEN
    assert settings.web_headers == {"Authorization": f"Bearer {TOKEN}"}
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)


def test_the_web_token_from_a_file_loses_its_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "web-token"
    path.write_text(TOKEN + "\n")
    settings = Settings.from_env({"WEB_TOKEN_FILE": str(path)})
    assert settings.web_token is not None and settings.web_token.reveal() == TOKEN


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("", {}, "WEB_TOKEN_FILE='{path}' is empty"),
        ("\n", {}, "WEB_TOKEN_FILE='{path}' is empty"),
        (b"\xff\xfe", {}, "WEB_TOKEN_FILE='{path}' is not UTF-8 text"),
        (TOKEN, {"WEB_TOKEN": TOKEN}, "set WEB_TOKEN or WEB_TOKEN_FILE, not both"),
        (TOKEN + " two words", {}, "WEB_TOKEN_FILE='{path}': the token may hold only letters"),
        ("tok-ab\n\n", {}, "WEB_TOKEN_FILE='{path}': the token may hold only letters"),
    ],
    ids=["empty", "newline-only", "not-utf8", "both", "space", "two-lines"],
)
def test_a_bad_web_token_file_names_the_variable_but_not_the_token(
    tmp_path: Path, content: str | bytes, extra: dict[str, str], message: str
) -> None:
    path = tmp_path / "web-token"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"WEB_TOKEN_FILE": str(path), **extra})
    assert str(caught.value).startswith(message.format(path=path))
    assert TOKEN not in str(caught.value)


def test_a_web_token_with_characters_a_header_cannot_carry_is_refused() -> None:
    with pytest.raises(SettingsError, match="may hold only letters") as caught:
        Settings.from_env({"WEB_TOKEN": "tok-\u00e9t\u00e9-0123456789"})
    assert "\u00e9t\u00e9" not in str(caught.value)
    base64 = "dG9rZW4tZm9yLXRlc3RzLW9ubHk="  # RFC 6750's b64token allows = padding
    assert Settings.from_env({"WEB_TOKEN": base64}).web_headers["Authorization"].endswith(base64)


def test_the_worker_stops_with_one_line_on_a_missing_web_token_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    result = faust_worker(env={"WEB_TOKEN_FILE": str(missing)})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"fraud-detector: bad setting: WEB_TOKEN_FILE={str(missing)!r} cannot be read "
        "(No such file or directory)"
    )


def test_exactly_once_is_a_guarantee_of_its_own() -> None:
    assert not Settings.from_env({}).exactly_once
    assert Settings.from_env({"PROCESSING_GUARANTEE": "exactly_once"}).exactly_once
