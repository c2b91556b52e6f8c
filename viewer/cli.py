"""Command line of the viewer: flags and environment become one frozen :class:`ViewerSettings`.

Flags that have an environment variable name it in ``--help`` (``[env: VAR]``); the flag wins
over the variable, the variable over the default. Invalid values stop with argparse's one-line
usage error (exit code 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_BOOTSTRAP = "localhost:9092"
DEFAULT_TOPIC = "fraud"


class OutputMode(StrEnum):
    """How alerts are shown."""

    PLAIN = "plain"
    JSON = "json"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class ViewerSettings:
    """Validated viewer settings; build with :func:`parse_settings`."""

    bootstrap: str = DEFAULT_BOOTSTRAP
    topic: str = DEFAULT_TOPIC
    from_beginning: bool = False
    output: OutputMode = OutputMode.PLAIN
    evidence: bool = False
    max_alerts: int | None = None
    timeout: float | None = None


def _bootstrap(value: str) -> str:
    servers = [server.strip() for server in value.split(",")]
    for server in servers:
        host, colon, port = server.rpartition(":")
        if not server or (colon and not host):
            raise argparse.ArgumentTypeError(f"expected host:port[,host:port], got {value!r}")
        if colon and not (port.isdigit() and 0 < int(port) < 65536):
            raise argparse.ArgumentTypeError(f"bad port {port!r} in {value!r}")
    return ",".join(servers)


def _topic(value: str) -> str:
    # Kafka's own rule for topic names; checking here turns a typo into a clear usage error.
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not value or len(value) > 249 or not set(value) <= allowed:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a Kafka topic name ([A-Za-z0-9._-], 1 to 249 characters)"
        )
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    # "nan" and "inf" parse as floats; neither is a usable deadline.
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The argument parser; defaults of flags with an env var are read from ``env``."""
    parser = argparse.ArgumentParser(
        prog="fraud-viewer",
        description=(
            "Follow the fraud alert topic and show each alert once: CROSSED as soon as a "
            "window's running total exceeds the threshold, CLOSED with the final total."
        ),
        epilog=(
            "Output is a live table on a terminal and one plain line per alert change "
            "otherwise. Exit codes: 0 done, 1 --timeout ran out before --max-alerts, "
            "2 usage error or Kafka/topic unavailable, 130 interrupted."
        ),
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT[,...]",
        type=_bootstrap,
        default=env.get("KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP,
        help=f"Kafka bootstrap servers [env: KAFKA_BOOTSTRAP, default: {DEFAULT_BOOTSTRAP}]",
    )
    parser.add_argument(
        "--topic",
        type=_topic,
        default=env.get("FRAUD_TOPIC") or DEFAULT_TOPIC,
        help=f"topic of alert records [env: FRAUD_TOPIC, default: {DEFAULT_TOPIC}]",
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="show the alerts already in the topic too (default: only new ones)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        action="store_true",
        help="one merged alert as a JSON object per line, on every change (for pipes)",
    )
    output.add_argument(
        "--plain",
        action="store_true",
        help="plain lines even on a terminal (the default when stdout is not one)",
    )
    parser.add_argument(
        "--evidence",
        action="store_true",
        help="list the transactions under each alert",
    )
    parser.add_argument(
        "--max-alerts",
        metavar="N",
        type=_positive_int,
        help="stop once N distinct alerts have been shown",
    )
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=_positive_seconds,
        help="stop after S seconds (exit code 1 if --max-alerts was not reached by then)",
    )
    return parser


def parse_settings(
    argv: Sequence[str] | None, env: Mapping[str, str], stdout_is_terminal: bool
) -> ViewerSettings:
    """Settings from ``argv`` and ``env``; exits with a usage error on invalid input.

    An invalid value in the environment is reported like a bad flag, naming the flag.
    """
    args = build_parser(env).parse_args(argv)
    if args.json:
        output = OutputMode.JSON
    elif args.plain or not stdout_is_terminal:
        output = OutputMode.PLAIN
    else:
        output = OutputMode.LIVE
    return ViewerSettings(
        bootstrap=args.bootstrap,
        topic=args.topic,
        from_beginning=args.from_beginning,
        output=output,
        evidence=args.evidence,
        max_alerts=args.max_alerts,
        timeout=args.timeout,
    )
