"""How a process connects to Kafka: plaintext, TLS (with or without a client certificate), or a
SASL login over TLS (SCRAM, PLAIN or an OAUTHBEARER token), from the environment.

:meth:`KafkaSecurity.from_env` reads the ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` /
``KAFKA_SSL_*`` variables once, validates them (a bad value is one :class:`SecurityError` line
naming the variable, never a password, key password or token) and builds the TLS context; every
Kafka client of the worker, the generator and the viewer then takes
:meth:`KafkaSecurity.client_options`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_security.oauth import TokenFile
from kafka_security.secret import Secret, SecurityError, read_secret

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER")
OAUTHBEARER = "OAUTHBEARER"

# name -> (default, help), in the shape and order of the worker's SETTINGS_HELP.
SECURITY_HELP: dict[str, tuple[str, str]] = {
    "KAFKA_SECURITY_PROTOCOL": (
        "PLAINTEXT",
        "PLAINTEXT, SSL (TLS) or SASL_SSL (a SASL login over TLS); TLS always verifies the "
        "broker's certificate and host name",
    ),
    "KAFKA_SASL_MECHANISM": (
        "SCRAM-SHA-512",
        "SASL_SSL: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (a user and password), or OAUTHBEARER "
        "(a token)",
    ),
    "KAFKA_SASL_USERNAME": ("", "SASL_SSL with SCRAM or PLAIN: the user to log in as"),
    "KAFKA_SASL_PASSWORD": ("", "SASL_SSL with SCRAM or PLAIN: its password (or the file below)"),
    "KAFKA_SASL_PASSWORD_FILE": (
        "",
        "SASL_SSL with SCRAM or PLAIN: a file holding the password (a mounted Secret); a final "
        "newline is ignored",
    ),
    "KAFKA_SASL_OAUTH_TOKEN_FILE": (
        "",
        "SASL_SSL with OAUTHBEARER: a file holding the access token (a mounted Secret), read "
        "again for each new connection when it changed",
    ),
    "KAFKA_SSL_CAFILE": (
        "",
        "SSL, SASL_SSL: PEM file of the CA certificates to trust; unset: the system's CAs",
    ),
    "KAFKA_SSL_CERTFILE": (
        "",
        "SSL, SASL_SSL: PEM file of this client's certificate (and its chain), for a broker "
        "that asks for one (mutual TLS); needs KAFKA_SSL_KEYFILE",
    ),
    "KAFKA_SSL_KEYFILE": ("", "with KAFKA_SSL_CERTFILE: PEM file of the certificate's key"),
    "KAFKA_SSL_KEY_PASSWORD": (
        "",
        "the password of an encrypted KAFKA_SSL_KEYFILE (or the file below)",
    ),
    "KAFKA_SSL_KEY_PASSWORD_FILE": (
        "",
        "a file holding the password of an encrypted KAFKA_SSL_KEYFILE (a mounted Secret); a "
        "final newline is ignored",
    ),
}


@dataclass(frozen=True)
class KafkaSecurity:
    """Validated security settings of one Kafka client; build with :meth:`from_env`."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: Secret | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    token: TokenFile | None = field(default=None, compare=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        """The settings in ``env`` (empty values count as unset); :class:`SecurityError` if bad."""

        def get(name: str) -> str:
            return env.get(name, SECURITY_HELP[name][0]).strip() or SECURITY_HELP[name][0]

        protocol = get("KAFKA_SECURITY_PROTOCOL").upper()
        if protocol == "SASL_PLAINTEXT":
            raise SecurityError(
                "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT is not supported: it sends every record "
                "unencrypted; use SASL_SSL"
            )
        if protocol not in PROTOCOLS:
            raise SecurityError(
                f"KAFKA_SECURITY_PROTOCOL={get('KAFKA_SECURITY_PROTOCOL')!r} must be one of "
                f"{', '.join(PROTOCOLS)}"
            )
        mechanism = get("KAFKA_SASL_MECHANISM").upper()
        if mechanism not in MECHANISMS:
            raise SecurityError(
                f"KAFKA_SASL_MECHANISM={get('KAFKA_SASL_MECHANISM')!r} must be one of "
                f"{', '.join(MECHANISMS)}"
            )
        username = get("KAFKA_SASL_USERNAME")
        password = _password(
            "KAFKA_SASL_PASSWORD",
            env.get("KAFKA_SASL_PASSWORD", ""),
            get("KAFKA_SASL_PASSWORD_FILE"),
        )
        token_path = get("KAFKA_SASL_OAUTH_TOKEN_FILE")
        cafile = get("KAFKA_SSL_CAFILE")
        certfile, keyfile = get("KAFKA_SSL_CERTFILE"), get("KAFKA_SSL_KEYFILE")
        key_password = _password(
            "KAFKA_SSL_KEY_PASSWORD",
            env.get("KAFKA_SSL_KEY_PASSWORD", ""),
            get("KAFKA_SSL_KEY_PASSWORD_FILE"),
        )
        if protocol != "SASL_SSL":
            if username or password is not None or token_path:
                what = "token" if token_path else "user or password"
                raise SecurityError(
                    f"a SASL {what} is set, but KAFKA_SECURITY_PROTOCOL={protocol} sends no "
                    "login: set KAFKA_SECURITY_PROTOCOL=SASL_SSL"
                )
        elif mechanism == OAUTHBEARER:
            if username or password is not None:
                raise SecurityError(
                    "KAFKA_SASL_MECHANISM=OAUTHBEARER logs in with a token, not a user and "
                    "password: unset KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD(_FILE)"
                )
            if not token_path:
                raise SecurityError(
                    "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SASL_OAUTH_TOKEN_FILE"
                )
        else:
            if token_path:
                raise SecurityError(
                    f"KAFKA_SASL_OAUTH_TOKEN_FILE is set, but KAFKA_SASL_MECHANISM={mechanism} "
                    "logs in with a password: set KAFKA_SASL_MECHANISM=OAUTHBEARER"
                )
            if not username:
                raise SecurityError("KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME")
            if password is None:
                raise SecurityError(
                    "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_PASSWORD or "
                    "KAFKA_SASL_PASSWORD_FILE"
                )
        if bool(certfile) != bool(keyfile):
            given, missing = (
                ("KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE")
                if certfile
                else ("KAFKA_SSL_KEYFILE", "KAFKA_SSL_CERTFILE")
            )
            raise SecurityError(
                f"{given} is set without {missing}: a client certificate needs both"
            )
        if key_password is not None and not keyfile:
            raise SecurityError("a key password is set without KAFKA_SSL_KEYFILE")
        if protocol == "PLAINTEXT":
            if cafile or certfile:
                name = "KAFKA_SSL_CAFILE" if cafile else "KAFKA_SSL_CERTFILE"
                raise SecurityError(
                    f"{name} is set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS: "
                    "set KAFKA_SECURITY_PROTOCOL=SASL_SSL or SSL"
                )
            return cls(mechanism=mechanism)
        context = _tls_context(cafile or None)
        if certfile:
            _load_client_certificate(context, certfile, keyfile, key_password)
        token = None
        if protocol == "SASL_SSL" and mechanism == OAUTHBEARER:
            token = TokenFile(Path(token_path))
            token.read()  # a missing or empty file is a start-up error, not a refused login
        return cls(
            protocol=protocol,
            mechanism=mechanism,
            username=username or None,
            password=password,
            cafile=Path(cafile) if cafile else None,
            certfile=Path(certfile) if certfile else None,
            token=token,
            ssl_context=context,
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin, connection)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.protocol == "SASL_SSL" and self.token is not None:
            options["sasl_mechanism"] = self.mechanism
            options["sasl_oauth_token_provider"] = self.token
        elif self.protocol == "SASL_SSL" and self.password is not None:
            options["sasl_mechanism"] = self.mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password.reveal()
        return options

    def describe(self) -> str:
        """One line for logs and banners, e.g. ``SASL_SSL (SCRAM-SHA-512 as 'fraud')``."""
        certificate = f"client certificate {str(self.certfile)!r}" if self.certfile else ""
        if self.protocol == "SASL_SSL":
            if self.token is not None:
                login = f"OAUTHBEARER, token from {str(self.token.path)!r}"
            else:
                login = f"{self.mechanism} as {self.username!r}"
            return f"SASL_SSL ({', '.join(filter(None, [login, certificate]))})"
        if certificate:
            return f"{self.protocol} ({certificate})"
        return self.protocol


PLAINTEXT = KafkaSecurity()
"""No TLS, no login: the local broker of the demo and of most tests."""


def _password(name: str, value: str, path: str) -> Secret | None:
    """The secret of variable ``name``, given by value or in the file of ``name``_FILE."""
    if value and path:
        raise SecurityError(f"set {name} or {name}_FILE, not both")
    if not path:
        return Secret(value) if value else None
    return read_secret(f"{name}_FILE", path)


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    # The defaults of a client context: the certificate chain and the host name are checked.
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise SecurityError(
            f"KAFKA_SSL_CAFILE={cafile!r} cannot be read ({exc.strerror or exc})"
        ) from None
    except ssl.SSLError as exc:
        raise SecurityError(
            f"KAFKA_SSL_CAFILE={cafile!r} holds no usable PEM certificate ({exc.reason or exc})"
        ) from None
    return context


def _load_client_certificate(
    context: ssl.SSLContext, certfile: str, keyfile: str, password: Secret | None
) -> None:
    for name, path in (("KAFKA_SSL_CERTFILE", certfile), ("KAFKA_SSL_KEYFILE", keyfile)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise SecurityError(f"{name}={path!r} cannot be read ({exc.strerror or exc})") from None

    def key_password() -> str:
        # Always a callback: without one, OpenSSL would ask on the terminal for an encrypted key.
        return password.reveal() if password is not None else ""

    try:
        context.load_cert_chain(certfile, keyfile, password=key_password)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if _encrypted(keyfile):
            if password is None:
                raise SecurityError(
                    f"KAFKA_SSL_KEYFILE={keyfile!r} is encrypted: set KAFKA_SSL_KEY_PASSWORD_FILE "
                    "(or KAFKA_SSL_KEY_PASSWORD)"
                ) from None
            if reason != "KEY_VALUES_MISMATCH":  # OpenSSL says "PEM lib" or "bad decrypt"
                raise SecurityError(
                    f"KAFKA_SSL_KEYFILE={keyfile!r} cannot be decrypted with the key password "
                    "given: check KAFKA_SSL_KEY_PASSWORD(_FILE)"
                ) from None
        raise SecurityError(
            f"KAFKA_SSL_CERTFILE={certfile!r} and KAFKA_SSL_KEYFILE={keyfile!r} are not a PEM "
            f"certificate and its private key ({reason})"
        ) from None


def _encrypted(keyfile: str) -> bool:
    try:
        text = Path(keyfile).read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return "ENCRYPTED" in text
