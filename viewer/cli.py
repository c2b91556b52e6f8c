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

from kafka_security import PLAINTEXT, KafkaSecurity
from kafka_security.arguments import add_security_arguments, security_from_args

DEFAULT_BOOTSTRAP = "localhost:9092"
DEFAULT_TOPIC = "fraud"
DEFAULT_DLQ_TOPIC = "transactions-dlq"


class OutputMode(StrEnum):
    """How alerts are shown."""

    PLAIN = "plain"
    JSON = "json"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class ViewerSettings:
    """Validated viewer settings; build with :func:`parse_settings`."""

    bootstrap: str = DEFAULT_BOOTSTRAP
    security: KafkaSecurity = PLAINTEXT
    topic: str = DEFAULT_TOPIC
    dlq_topic: str = DEFAULT_DLQ_TOPIC
    from_beginning: bool = False
    output: OutputMode = OutputMode.PLAIN
    evidence: bool = False
    windows: bool = False
    case: str | None = None
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


def topic_name(value: str) -> str:
    """A Kafka topic name, or argparse's usage error."""
    # Kafka's own rule for topic names; checking here turns a typo into a clear usage error.
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not value or len(value) > 249 or not set(value) <= allowed:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a Kafka topic name ([A-Za-z0-9._-], 1 to 249 characters)"
        )
    return value


def _case_id(value: str) -> str:
    if not value or len(value) > 300:
        raise argparse.ArgumentTypeError(f"expected a case or alert id, got {value!r}")
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


def add_kafka_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """``--bootstrap``, ``--topic`` (the alert topic) and the security flags, shared with
    ``fraud-verify``; read the security ones with ``security_from_args``."""
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT[,...]",
        type=_bootstrap,
        default=env.get("KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP,
        help=f"Kafka bootstrap servers [env: KAFKA_BOOTSTRAP, default: {DEFAULT_BOOTSTRAP}]",
    )
    parser.add_argument(
        "--topic",
        type=topic_name,
        default=env.get("FRAUD_TOPIC") or DEFAULT_TOPIC,
        help=f"topic of alert records [env: FRAUD_TOPIC, default: {DEFAULT_TOPIC}]",
    )
    add_security_arguments(
        parser.add_argument_group("Kafka security (TLS, client certificate, SASL login)")
    )


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The argument parser; defaults of flags with an env var are read from ``env``."""
    parser = argparse.ArgumentParser(
        prog="fraud-viewer",
        description=(
            "Follow the fraud alert topic and show each case once: a pair's overlapping "
            "flagged windows of one burst, CROSSED as soon as a window's running total exceeds "
            "the threshold, CONFIRMED when all its windows have closed. The total of a case is "
            "its largest window total (windows overlap: a sum would count transfers twice)."
        ),
        epilog=(
            "Output is a live view on a terminal (keys: e evidence, q quit; the footer counts "
            "alerts per minute and dead letters) and one plain line per change otherwise. "
            "Exit codes: 0 done, 1 --timeout ran out before --max-alerts, "
            "2 usage error or Kafka/topic unavailable, 130 interrupted."
        ),
    )
    add_kafka_arguments(parser, env)
    parser.add_argument(
        "--dlq-topic",
        type=topic_name,
        default=env.get("DLQ_TOPIC") or DEFAULT_DLQ_TOPIC,
        help=(
            "dead-letter topic, counted in the live view's footer "
            f"[env: DLQ_TOPIC, default: {DEFAULT_DLQ_TOPIC}]"
        ),
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help=(
            "show the alerts already in the topic too, each case once as it stands, then "
            "follow (default: only new ones)"
        ),
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        action="store_true",
        help="one case (or window) as a JSON object per line, on every change (for pipes)",
    )
    output.add_argument(
        "--plain",
        action="store_true",
        help="plain lines even on a terminal (the default when stdout is not one)",
    )
    parser.add_argument(
        "--evidence",
        action="store_true",
        help="list the transactions under each case (live view: the e key toggles them)",
    )
    parser.add_argument(
        "--windows",
        action="store_true",
        help="one entry per flagged window, as the topic has them, instead of per case",
    )
    parser.add_argument(
        "--case",
        metavar="ID",
        type=_case_id,
        help="show only this case (its id or the alert id of one of its windows), in detail",
    )
    parser.add_argument(
        "--max-alerts",
        metavar="N",
        type=_positive_int,
        help="stop once N distinct alerts (flagged windows) have been read",
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
    parser = build_parser(env)
    args = parser.parse_args(argv)
    security = security_from_args(parser, args, env)
    if args.json:
        output = OutputMode.JSON
    elif args.plain or not stdout_is_terminal:
        output = OutputMode.PLAIN
    else:
        output = OutputMode.LIVE
    return ViewerSettings(
        bootstrap=args.bootstrap,
        security=security,
        topic=args.topic,
        dlq_topic=args.dlq_topic,
        from_beginning=args.from_beginning,
        output=output,
        evidence=args.evidence,
        windows=args.windows,
        case=args.case,
        max_alerts=args.max_alerts,
        timeout=args.timeout,
    )
