"""How a process connects to Kafka: plaintext, TLS, or SASL (SCRAM) over TLS, from environment.

:meth:`KafkaSecurity.from_env` reads the ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` /
``KAFKA_SSL_CAFILE`` variables once, validates them (a bad value is one :class:`SecurityError`
line naming the variable, never the password) and builds the TLS context; every Kafka client of
the worker, the generator and the viewer then takes :meth:`KafkaSecurity.client_options`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")

# name -> (default, help), in the shape and order of the worker's SETTINGS_HELP.
SECURITY_HELP: dict[str, tuple[str, str]] = {
    "KAFKA_SECURITY_PROTOCOL": (
        "PLAINTEXT",
        "PLAINTEXT, SSL (TLS) or SASL_SSL (a SASL login over TLS); TLS always verifies the "
        "broker's certificate and host name",
    ),
    "KAFKA_SASL_MECHANISM": ("SCRAM-SHA-512", "SASL_SSL: SCRAM-SHA-512 or SCRAM-SHA-256"),
    "KAFKA_SASL_USERNAME": ("", "SASL_SSL: the user to log in as"),
    "KAFKA_SASL_PASSWORD": ("", "SASL_SSL: its password (or KAFKA_SASL_PASSWORD_FILE)"),
    "KAFKA_SASL_PASSWORD_FILE": (
        "",
        "SASL_SSL: a file holding the password (a mounted Secret); a final newline is ignored",
    ),
    "KAFKA_SSL_CAFILE": (
        "",
        "SSL, SASL_SSL: PEM file of the CA certificates to trust; unset: the system's CAs",
    ),
}


class SecurityError(Exception):
    """A Kafka security setting is missing, contradicts another or cannot be used."""


@dataclass(frozen=True)
class Secret:
    """A value that never shows in a repr, a log line or an f-string: only :meth:`reveal` has it."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


@dataclass(frozen=True)
class KafkaSecurity:
    """Validated security settings of one Kafka client; build with :meth:`from_env`."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: Secret | None = None
    cafile: Path | None = None
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
        password = _password(env.get("KAFKA_SASL_PASSWORD", ""), get("KAFKA_SASL_PASSWORD_FILE"))
        cafile = get("KAFKA_SSL_CAFILE")
        if protocol != "SASL_SSL":
            if username or password is not None:
                raise SecurityError(
                    f"a SASL user or password is set, but KAFKA_SECURITY_PROTOCOL={protocol} "
                    "sends no login: set KAFKA_SECURITY_PROTOCOL=SASL_SSL"
                )
        else:
            if not username:
                raise SecurityError("KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME")
            if password is None:
                raise SecurityError(
                    "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_PASSWORD or "
                    "KAFKA_SASL_PASSWORD_FILE"
                )
        if protocol == "PLAINTEXT":
            if cafile:
                raise SecurityError(
                    "KAFKA_SSL_CAFILE is set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS: "
                    "set KAFKA_SECURITY_PROTOCOL=SASL_SSL or SSL"
                )
            return cls(mechanism=mechanism)
        return cls(
            protocol=protocol,
            mechanism=mechanism,
            username=username or None,
            password=password,
            cafile=Path(cafile) if cafile else None,
            ssl_context=_tls_context(cafile or None),
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin, connection)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.protocol == "SASL_SSL" and self.password is not None:
            options["sasl_mechanism"] = self.mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password.reveal()
        return options

    def describe(self) -> str:
        """One line for logs and banners, e.g. ``SASL_SSL (SCRAM-SHA-512 as 'fraud')``."""
        if self.protocol == "SASL_SSL":
            return f"SASL_SSL ({self.mechanism} as {self.username!r})"
        return self.protocol


PLAINTEXT = KafkaSecurity()
"""No TLS, no login: the local broker of the demo and of most tests."""


def _password(value: str, path: str) -> Secret | None:
    if value and path:
        raise SecurityError("set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both")
    if not path:
        return Secret(value) if value else None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SecurityError(
            f"KAFKA_SASL_PASSWORD_FILE={path!r} cannot be read ({exc.strerror or exc})"
        ) from None
    except UnicodeDecodeError:
        raise SecurityError(f"KAFKA_SASL_PASSWORD_FILE={path!r} is not UTF-8 text") from None
    # `echo secret > file` and most editors end the file with a newline; a password never does.
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise SecurityError(f"KAFKA_SASL_PASSWORD_FILE={path!r} is empty")
    return Secret(text)


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
