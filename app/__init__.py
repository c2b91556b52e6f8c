"""Streaming money-laundering detection on Kafka with Faust: ``faust -A app worker``."""

from app.app import app, settings

__all__ = ["app", "settings"]
