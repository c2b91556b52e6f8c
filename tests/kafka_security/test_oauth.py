"""OAUTHBEARER: the token file is read again at each login, so a new token (a mounted Secret
updated) is seen; and the aiokafka step the project adds so that a refused token is refused."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
from aiokafka.conn import AIOKafkaConnection, OAuthAuthenticator

from kafka_security import SecurityError, TokenFile
from kafka_security.oauth import ReportingOAuthAuthenticator


def mount(directory: Path, token: str, version: int) -> None:
    """What the kubelet does to a Secret volume: the new data in a new directory, then one
    atomic swap of the `..data` symlink that the key's own symlink goes through."""
    data = directory / f"..{version}"
    data.mkdir()
    (data / "token").write_text(token + "\n")
    (directory / "..data.tmp").symlink_to(data.name)
    os.replace(directory / "..data.tmp", directory / "..data")
    if not (directory / "token").is_symlink():
        (directory / "token").symlink_to("..data/token")


async def test_a_new_token_in_a_mounted_secret_is_read_by_the_next_login(tmp_path: Path) -> None:
    mount(tmp_path, "first.token.", 1)
    provider = TokenFile(tmp_path / "token")
    assert await provider.token() == "first.token."
    mount(tmp_path, "second.token.", 2)
    assert await provider.token() == "second.token."
    assert "token." not in repr(provider)


async def test_a_token_rewritten_in_place_is_read_by_the_next_login(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("token.one.\n")
    provider = TokenFile(path)
    assert await provider.token() == "token.one."
    path.write_text("token.two.\n")  # same size, same inode, maybe the same clock tick
    assert await provider.token() == "token.two."


async def test_a_token_file_gone_for_a_moment_keeps_the_last_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("the.token.\n")
    provider = TokenFile(path)
    assert await provider.token() == "the.token."
    path.unlink()
    assert await provider.token() == "the.token."  # the broker judges it
    with pytest.raises(SecurityError, match="cannot be read"):
        TokenFile(path).read()  # but there is no token at all at start-up


def test_aiokafka_still_takes_a_refused_tokens_challenge_for_success() -> None:
    # The aiokafka code ReportingOAuthAuthenticator completes: once the token is sent, any
    # payload of the broker ends the exchange. When this fails, aiokafka may handle the error
    # challenge itself: check, and drop the subclass.
    step = "".join(inspect.getsource(OAuthAuthenticator.step).split())
    assert "ifself._token_sent:returnNone" in step
    assert "self.authenticator_oauth()" in inspect.getsource(AIOKafkaConnection._do_sasl_handshake)


async def test_the_error_challenge_is_answered_so_the_broker_fails_the_login(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    path.write_text("the.token.\n")
    authenticator = AIOKafkaConnection.authenticator_oauth(
        type("Conn", (), {"_sasl_oauth_token_provider": TokenFile(path)})()
    )
    assert isinstance(authenticator, ReportingOAuthAuthenticator)
    first = await authenticator.step(None)
    assert first is not None and b"auth=Bearer the.token." in first[0]
    assert await authenticator.step(b'{"status":"invalid_token"}') == (b"\x01", True)
    assert await authenticator.step(b"") is None
    accepted = ReportingOAuthAuthenticator(sasl_oauth_token_provider=TokenFile(path))
    await accepted.step(None)
    assert await accepted.step(b"") is None  # an accepted token: the exchange is over
