"""Errors of the viewer: one root, flat subclasses, messages written for the person running it."""


class ViewerError(Exception):
    """Root of every error the viewer raises on purpose."""


class BrokerUnavailable(ViewerError):
    """Kafka cannot be reached at the configured bootstrap servers."""


class TopicNotFound(ViewerError):
    """The alert topic does not exist (yet) on the cluster."""


class BadRecord(ViewerError):
    """An alert record that cannot be shown: not JSON, an unknown schema or a missing field."""
