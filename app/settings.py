"""Worker settings: one frozen object built from the environment at start-up, validated once.

Every variable, its default and its meaning is in ``SETTINGS_HELP`` (and docs/settings.md);
a bad value is a one-line :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeAlias

from app.errors import SettingsError
from kafka_security import SECURITY_HELP, KafkaSecurity, Secret, SecurityError
from kafka_security.secret import read_secret

_Getter: TypeAlias = Callable[[str], str]

GUARANTEES = ("at_least_once", "exactly_once")

# name -> (default, help); the order is the order of the docs.
SETTINGS_HELP: dict[str, tuple[str, str]] = {
    "KAFKA_BOOTSTRAP": ("localhost:9092", "Kafka bootstrap servers, host:port[,host:port]"),
    **SECURITY_HELP,  # KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_CAFILE
    "APP_ID": ("fraud-detector", "Faust app id: consumer group and internal topic prefix"),
    "TRANSACTIONS_TOPIC": ("transactions", "input topic of transaction lines"),
    "FRAUD_TOPIC": ("fraud", "output topic of alerts (JSON, keyed by alert_id)"),
    "DLQ_TOPIC": ("transactions-dlq", "dead-letter topic for records that cannot be used"),
    "CONTROL_TOPIC": (
        "fraud-control",
        "compacted topic of runtime settings (the threshold), followed by every worker",
    ),
    "TOPIC_PARTITIONS": ("8", "partitions of the input and of every internal topic"),
    "THRESHOLD": ("10000", "alert when a window's total is strictly greater (dollars)"),
    "WINDOW_SIZE": ("600", "sliding window size in seconds"),
    "WINDOW_SLIDE": ("120", "window slide in seconds; WINDOW_SIZE must be a multiple"),
    "MAX_OUT_OF_ORDERNESS": ("0", "watermark lag behind the max event time, in seconds"),
    "IDLE_TIMEOUT": (
        "30",
        "seconds without input after which a partition is idle: it leaves the minimum of "
        "re-keyed state and its own watermark follows the wall clock (0 disables)",
    ),
    "METADATA_MAX_AGE": (
        "300",
        "seconds between refreshes of the topics' metadata: partitions added to the input "
        "topic are read from the next one on",
    ),
    "MAX_EVIDENCE": ("100", "transactions listed in an alert before it says truncated"),
    "MAX_RECORD_BYTES": ("65536", "larger input records go to the DLQ as oversized"),
    "KAFKA_SESSION_TIMEOUT": (
        "30",
        "seconds without heartbeat before a worker's partitions move to the others",
    ),
    "STOP_TIMEOUT": (
        "50",
        "seconds a stop (SIGTERM) may take before the worker exits anyway, its undelivered "
        "records left to the next start to redo (keep it under the pod's grace period)",
    ),
    "STORE": (
        "rocksdb://",
        "Faust table store URL: rocksdb:// (RocksDB through rocksdict; "
        "rocksdict:// means the same) or memory:// (tests only: state is lost on restart)",
    ),
    "DATA_DIR": ("data", "directory of the worker's RocksDB state"),
    "ROCKSDB_WRITE_BUFFER_MB": (
        "2",
        "RocksDB memtable size of each table partition the worker holds (two at most; Faust's "
        "default, 64 MB x 3 per partition, grows a worker by gigabytes)",
    ),
    "ROCKSDB_BLOCK_CACHE_MB": (
        "4",
        "RocksDB block cache of each table partition the worker holds (Faust's default: 2 GiB)",
    ),
    "STANDBY_REPLICAS": ("0", "standby copies of each table partition on other workers"),
    "PROCESSING_GUARANTEE": (
        "at_least_once",
        "at_least_once, or exactly_once: each batch one Kafka transaction with its input "
        "offsets, read_committed (docs/semantics.md)",
    ),
    "WEB_HOST": ("localhost", "host name other workers use to reach this worker's web port"),
    "WEB_PORT": ("6066", "port of the worker's web server (/health, /ready, /pair)"),
    "WEB_BIND": ("127.0.0.1", "address the web server listens on"),
    "WEB_TOKEN": (
        "",
        "bearer token that /pair and /top require (or WEB_TOKEN_FILE); unset: they are open; "
        "the commands pair and top send it",
    ),
    "WEB_TOKEN_FILE": (
        "",
        "a file holding WEB_TOKEN (a mounted Secret); a final newline is ignored",
    ),
}

# RFC 6750's b64token: what an Authorization header carries after "Bearer " unchanged.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
MIN_WEB_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Settings:
    """Validated worker settings; build with :meth:`from_env`."""

    bootstrap: str
    security: KafkaSecurity
    app_id: str
    transactions_topic: str
    fraud_topic: str
    dlq_topic: str
    control_topic: str
    partitions: int
    threshold_cents: int
    window_size_ms: int
    window_slide_ms: int
    max_out_of_orderness_ms: int
    idle_timeout_s: float
    metadata_max_age_s: float
    max_evidence: int
    max_record_bytes: int
    session_timeout_s: float
    stop_timeout_s: float
    store: str
    data_dir: Path
    rocksdb_write_buffer_mb: int
    rocksdb_block_cache_mb: int
    standby_replicas: int
    processing_guarantee: str

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    web_host: str
    web_port: int
    web_bind: str
    # the bearer token of /pair and /top (None: open); a Secret never shows in a repr
    web_token: Secret | None

    @property
    def heartbeat_interval_s(self) -> float:
        """Between two heartbeats of the consumer: a third of the session timeout, at most 3 s."""
        return min(3.0, self.session_timeout_s / 3)

    @property
    def web_headers(self) -> dict[str, str]:
        """Headers of a request to a worker's /pair or /top: the bearer token, if one is set."""
        if self.web_token is None:
            return {}
        return {"Authorization": f"Bearer {self.web_token.reveal()}"}

    @property
    def broker_url(self) -> str:
        return ";".join(f"kafka://{host.strip()}" for host in self.bootstrap.split(","))

    @property
    def rocksdb_options(self) -> dict[str, int]:
        """Options of each RocksDB database (Faust opens one per table partition)."""
        mb = 2**20
        return {
            "write_buffer_size": self.rocksdb_write_buffer_mb * mb,
            "max_write_buffer_number": 2,
            "block_cache_size": self.rocksdb_block_cache_mb * mb,
        }

    @property
    def pairs_topic(self) -> str:
        """Internal topic: unkeyed input re-keyed by pair, plus source watermarks."""
        return f"{self.app_id}-transactions-by-pair"

    @property
    def ticks_topic(self) -> str:
        """Internal topic: wall-clock ticks so idle partitions are handled inside the stream."""
        return f"{self.app_id}-ticks"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str:
            return env.get(name, SETTINGS_HELP[name][0]).strip()

        size = _seconds_ms(get, "WINDOW_SIZE", minimum=1)
        slide = _seconds_ms(get, "WINDOW_SLIDE", minimum=1)
        if size % slide:
            raise SettingsError(
                f"WINDOW_SIZE={get('WINDOW_SIZE')} must be a multiple of "
                f"WINDOW_SLIDE={get('WINDOW_SLIDE')}"
            )
        guarantee = get("PROCESSING_GUARANTEE")
        if guarantee not in GUARANTEES:
            raise SettingsError(
                f"PROCESSING_GUARANTEE={guarantee!r} must be one of {', '.join(GUARANTEES)}"
            )
        for name in (
            "KAFKA_BOOTSTRAP",
            "APP_ID",
            "TRANSACTIONS_TOPIC",
            "FRAUD_TOPIC",
            "DLQ_TOPIC",
            "CONTROL_TOPIC",
        ):
            if not get(name):
                raise SettingsError(f"{name} must not be empty")
        try:
            security = KafkaSecurity.from_env(env)
        except SecurityError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            bootstrap=get("KAFKA_BOOTSTRAP"),
            security=security,
            app_id=get("APP_ID"),
            transactions_topic=get("TRANSACTIONS_TOPIC"),
            fraud_topic=get("FRAUD_TOPIC"),
            dlq_topic=get("DLQ_TOPIC"),
            control_topic=get("CONTROL_TOPIC"),
            partitions=_integer(get, "TOPIC_PARTITIONS", minimum=1),
            threshold_cents=_dollars_cents(get, "THRESHOLD"),
            window_size_ms=size,
            window_slide_ms=slide,
            max_out_of_orderness_ms=_seconds_ms(get, "MAX_OUT_OF_ORDERNESS", minimum=0),
            idle_timeout_s=_seconds_ms(get, "IDLE_TIMEOUT", minimum=0) / 1000,
            metadata_max_age_s=_seconds_ms(get, "METADATA_MAX_AGE", minimum=1000) / 1000,
            max_evidence=_integer(get, "MAX_EVIDENCE", minimum=0),
            max_record_bytes=_integer(get, "MAX_RECORD_BYTES", minimum=64),
            session_timeout_s=_seconds_ms(get, "KAFKA_SESSION_TIMEOUT", minimum=6000) / 1000,
            stop_timeout_s=_seconds_ms(get, "STOP_TIMEOUT", minimum=1000) / 1000,
            store=_store(get("STORE")),
            data_dir=Path(get("DATA_DIR")),
            rocksdb_write_buffer_mb=_integer(get, "ROCKSDB_WRITE_BUFFER_MB", minimum=1),
            rocksdb_block_cache_mb=_integer(get, "ROCKSDB_BLOCK_CACHE_MB", minimum=1),
            standby_replicas=_integer(get, "STANDBY_REPLICAS", minimum=0),
            processing_guarantee=guarantee,
            web_host=get("WEB_HOST"),
            web_port=_integer(get, "WEB_PORT", minimum=1, maximum=65535),
            web_bind=get("WEB_BIND"),
            web_token=_web_token(get("WEB_TOKEN"), get("WEB_TOKEN_FILE")),
        )


def _integer(get: _Getter, name: str, *, minimum: int, maximum: int | None = None) -> int:
    raw = get(name)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise SettingsError(f"{name}={raw} must be {bound}")
    return value


def _seconds_ms(get: _Getter, name: str, *, minimum: int) -> int:
    raw = get(name)
    try:
        seconds = Decimal(raw)
    except InvalidOperation:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    millis = seconds * 1000
    if not millis.is_finite() or millis != millis.to_integral_value() or millis < minimum:
        raise SettingsError(f"{name}={raw} must be a whole number of milliseconds >= {minimum}")
    return int(millis)


def _store(url: str) -> str:
    # Faust's RocksDB store runs on rocksdict when python-rocksdb is absent (our pins).
    url = "rocksdb://" + url.removeprefix("rocksdict://") if url.startswith("rocksdict://") else url
    if not url.startswith(("rocksdb://", "memory://")):
        raise SettingsError(f"STORE={url!r} must be rocksdb:// or memory://")
    return url


def _dollars_cents(get: _Getter, name: str) -> int:
    raw = get(name)
    try:
        dollars = Decimal(raw)
    except InvalidOperation:
        raise SettingsError(f"{name}={raw!r} is not an amount in dollars") from None
    cents = dollars * 100
    if not cents.is_finite() or cents != cents.to_integral_value() or cents < 0:
        raise SettingsError(f"{name}={raw} must be a non-negative amount with at most 2 decimals")
    return int(cents)


def _web_token(value: str, path: str) -> Secret | None:
    """The token from WEB_TOKEN or WEB_TOKEN_FILE; no message ever quotes it."""
    if value and path:
        raise SettingsError("set WEB_TOKEN or WEB_TOKEN_FILE, not both")
    name = "WEB_TOKEN"
    if path:
        name = f"WEB_TOKEN_FILE={path!r}"
        try:  # read as the Kafka secrets are: its messages never quote the content
            value = read_secret("WEB_TOKEN_FILE", path).reveal()
        except SecurityError as exc:
            raise SettingsError(str(exc)) from None
    if not value:
        return None
    if not _BEARER_TOKEN.fullmatch(value):
        raise SettingsError(
            f"{name}: the token may hold only letters, digits and -._~+/ (then = padding), "
            "as a bearer token in an Authorization header"
        )
    if len(value) < MIN_WEB_TOKEN_LENGTH:
        raise SettingsError(
            f"{name}: the token has {len(value)} characters, fewer than "
            f"{MIN_WEB_TOKEN_LENGTH}; make one with `openssl rand -hex 32`"
        )
    return Secret(value)
