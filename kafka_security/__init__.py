"""How the worker, the generator and the viewer connect to Kafka: TLS, client certificates and
SASL logins (SCRAM, PLAIN, OAUTHBEARER).

Shared by all three and free of Faust, so the generator and the viewer use it without loading
the worker: ``config`` turns the ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` /
``KAFKA_SSL_*`` settings into aiokafka's client options, ``oauth`` reads an OAUTHBEARER token
from a file, ``failures`` says in one line why a connection was refused, ``arguments`` gives
the generator and viewer the same flags.
"""

from kafka_security.config import (
    MECHANISMS,
    OAUTHBEARER,
    PLAINTEXT,
    PROTOCOLS,
    SECURITY_HELP,
    KafkaSecurity,
)
from kafka_security.oauth import TokenFile
from kafka_security.secret import Secret, SecurityError

__all__ = [
    "MECHANISMS",
    "OAUTHBEARER",
    "PLAINTEXT",
    "PROTOCOLS",
    "SECURITY_HELP",
    "KafkaSecurity",
    "Secret",
    "SecurityError",
    "TokenFile",
]
