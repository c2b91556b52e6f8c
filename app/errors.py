"""Errors of the detector: one root, flat subclasses, messages written for an operator."""


class FraudError(Exception):
    """Root of every error the detector raises on purpose."""


class SettingsError(FraudError):
    """A setting from the environment is missing or invalid; the message names the variable."""


class KafkaUnavailable(FraudError):
    """Kafka cannot be reached, or refused this worker (its login, its TLS: ``refused``); the
    message says which and what to check."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class BadRecord(FraudError):
    """An input record that cannot be used; ``reason`` is the dead-letter reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Fenced(FraudError):
    """This worker stalled for longer than the session timeout and lost the record's partition:
    another worker owns it now, so the record must not change state here."""


class TransactionFailed(FraudError):
    """Exactly-once: a batch's Kafka transaction could not commit (another worker fenced this
    one, or a send in it failed); nothing of it is visible, and the worker restarts."""
