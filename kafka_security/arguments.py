"""The Kafka security flags of the generator and the viewer, with the worker's variables.

Each flag names its environment variable in ``--help`` and wins over it. The secrets have no
flag on purpose (a command line is visible to every user of the machine): the password and the
key password come from their variable or a file (``--sasl-password-file``,
``--ssl-key-password-file``), the OAUTHBEARER token from a file only.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from kafka_security.config import MECHANISMS, PROTOCOLS, KafkaSecurity
from kafka_security.secret import SecurityError

# flag destination -> the variable it stands for
FLAGS = {
    "security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "sasl_username": "KAFKA_SASL_USERNAME",
    "sasl_password_file": "KAFKA_SASL_PASSWORD_FILE",
    "sasl_oauth_token_file": "KAFKA_SASL_OAUTH_TOKEN_FILE",
    "ssl_cafile": "KAFKA_SSL_CAFILE",
    "ssl_certfile": "KAFKA_SSL_CERTFILE",
    "ssl_keyfile": "KAFKA_SSL_KEYFILE",
    "ssl_key_password_file": "KAFKA_SSL_KEY_PASSWORD_FILE",
}


def add_security_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--security-protocol``, ``--sasl-mechanism``, ``--sasl-username``,
    ``--sasl-password-file``, ``--sasl-oauth-token-file``, ``--ssl-cafile``, ``--ssl-certfile``,
    ``--ssl-keyfile`` and ``--ssl-key-password-file``; read them with
    :func:`security_from_args`."""
    parser.add_argument(
        "--security-protocol",
        metavar="|".join(PROTOCOLS),
        help="how to connect to Kafka; TLS always verifies the broker's certificate and host "
        "name [env: KAFKA_SECURITY_PROTOCOL, default: PLAINTEXT]",
    )
    parser.add_argument(
        "--sasl-mechanism",
        metavar="|".join(MECHANISMS),
        help=f"SASL_SSL login mechanism [env: KAFKA_SASL_MECHANISM, default: {MECHANISMS[0]}]",
    )
    parser.add_argument(
        "--sasl-username",
        metavar="NAME",
        help="SASL_SSL user (SCRAM, PLAIN); its password comes from KAFKA_SASL_PASSWORD or "
        "--sasl-password-file [env: KAFKA_SASL_USERNAME]",
    )
    parser.add_argument(
        "--sasl-password-file",
        metavar="FILE",
        help="file holding the SASL_SSL password [env: KAFKA_SASL_PASSWORD_FILE]",
    )
    parser.add_argument(
        "--sasl-oauth-token-file",
        metavar="FILE",
        help="file holding the OAUTHBEARER token, read again when it changes "
        "[env: KAFKA_SASL_OAUTH_TOKEN_FILE]",
    )
    parser.add_argument(
        "--ssl-cafile",
        metavar="FILE",
        help="PEM file of the CA certificates to trust [env: KAFKA_SSL_CAFILE, default: the "
        "system's CAs]",
    )
    parser.add_argument(
        "--ssl-certfile",
        metavar="FILE",
        help="PEM file of this client's certificate, for mutual TLS [env: KAFKA_SSL_CERTFILE]",
    )
    parser.add_argument(
        "--ssl-keyfile",
        metavar="FILE",
        help="PEM file of the certificate's private key [env: KAFKA_SSL_KEYFILE]",
    )
    parser.add_argument(
        "--ssl-key-password-file",
        metavar="FILE",
        help="file holding the password of an encrypted key; or KAFKA_SSL_KEY_PASSWORD "
        "[env: KAFKA_SSL_KEY_PASSWORD_FILE]",
    )


def security_from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, env: Mapping[str, str]
) -> KafkaSecurity:
    """The settings of ``env``, with the flags given on the command line instead of their
    variables; invalid ones are ``parser``'s usage error (exit code 2), in one line."""
    given = {FLAGS[dest]: value for dest, value in vars(args).items() if dest in FLAGS and value}
    try:
        return KafkaSecurity.from_env({**env, **given})
    except SecurityError as exc:
        parser.error(str(exc))
