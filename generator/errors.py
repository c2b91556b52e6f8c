"""Errors of the transaction generator: one root, flat subclasses.

Everything the CLI catches at the boundary and turns into one line for a person derives from
`GeneratorError`.
"""

from __future__ import annotations


class GeneratorError(Exception):
    """Root of every error the generator raises on purpose."""


class ConfigError(GeneratorError):
    """A generator setting is invalid or two settings contradict each other."""


class BrokerError(GeneratorError):
    """Kafka could not be reached or refused the records; the message says what to check."""
