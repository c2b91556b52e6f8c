"""OAUTHBEARER for aiokafka: the token from a file that is read again when it changes, and the
step aiokafka misses when a broker refuses a token.

aiokafka's ``OAuthAuthenticator`` sends the token and stops there. A broker that refuses the
token does not answer with an error code but with an error challenge (RFC 7628 3.2.2,
``{"status":"invalid_token"}``) and waits for the client's ``%x01``; aiokafka takes the challenge
for success, and the connection then answers every request with nothing (no brokers, no
topics) instead of failing. :class:`ReportingOAuthAuthenticator` answers the challenge as Kafka's
own client does, so the broker fails the login with ``SaslAuthenticationFailed`` and the program
stops with one line. It is installed on aiokafka's connection class when this module is
imported (``tests/kafka_security/test_oauth.py`` pins the aiokafka code it replaces).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import AIOKafkaConnection, OAuthAuthenticator

from kafka_security.secret import Secret, SecurityError, read_secret


class TokenFile(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER's token for aiokafka, from a file that something else keeps fresh (a mounted
    Secret, a sidecar): read again each time a new connection logs in, so a changed file is
    the next login's token. The file is small and connections are few, so no stat tricks: a
    Secret's atomic symlink swap and an in-place rewrite within the same clock tick are both
    seen. A file that cannot be read for a moment keeps the last token: the broker is its judge.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._token: Secret | None = None

    def read(self) -> Secret:
        """The file's token; :class:`SecurityError` if it has none and none was read before."""
        try:
            self._token = read_secret("KAFKA_SASL_OAUTH_TOKEN_FILE", str(self.path), strip=True)
        except SecurityError:
            if self._token is None:
                raise
        return self._token

    async def token(self) -> str:
        return self.read().reveal()

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"


class ReportingOAuthAuthenticator(OAuthAuthenticator):  # type: ignore[misc]
    """aiokafka's, plus the answer to the broker's error challenge (see the module's doc)."""

    def __init__(self, *, sasl_oauth_token_provider: AbstractTokenProvider) -> None:
        super().__init__(sasl_oauth_token_provider=sasl_oauth_token_provider)
        self._refused = False

    async def step(self, payload: bytes | None) -> tuple[bytes, bool] | None:
        if self._token_sent and payload and not self._refused:
            # The broker's error challenge: %x01 makes it fail the login with an error code.
            self._refused = True
            return b"\x01", True
        result: tuple[bytes, bool] | None = await super().step(payload)
        return result


def _authenticator_oauth(self: Any) -> ReportingOAuthAuthenticator:
    return ReportingOAuthAuthenticator(sasl_oauth_token_provider=self._sasl_oauth_token_provider)


AIOKafkaConnection.authenticator_oauth = _authenticator_oauth
