"""How the worker, the generator and the viewer connect to Kafka: TLS and SASL (SCRAM) logins.

Shared by all three and free of Faust, so the generator and the viewer use it without loading
the worker: ``config`` turns the ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` /
``KAFKA_SSL_CAFILE`` settings into aiokafka's client options, ``failures`` says in one line why
a connection was refused, ``arguments`` gives the generator and viewer the same flags.
"""

from kafka_security.config import (
    MECHANISMS,
    PLAINTEXT,
    PROTOCOLS,
    SECURITY_HELP,
    KafkaSecurity,
    Secret,
    SecurityError,
)

__all__ = [
    "MECHANISMS",
    "PLAINTEXT",
    "PROTOCOLS",
    "SECURITY_HELP",
    "KafkaSecurity",
    "Secret",
    "SecurityError",
]
