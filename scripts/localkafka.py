"""A real single-node Apache Kafka broker (KRaft) on 127.0.0.1, for the demo and the tests.

The broker's jars are resolved once with Maven (scripts/kafka-jars/pom.xml) into
.cache/kafka/<version>/libs; each broker keeps its config, data, logs and pid file in one data dir.
With a `login` (`scripts/kafka --secure[=LOGIN] ...`) its client listener uses TLS with a
certificate made here by the `openssl` CLI and asks each client for one kind of login (`LOGINS`):
SCRAM-SHA-512 or PLAIN passwords, a client certificate (mutual TLS), or an OAUTHBEARER token
(Kafka's unsecured JWS: for tests only), for the users in `SASL_USERS`.
Stdlib only, except `create_topics` and the secure broker's readiness check, which use aiokafka
and the project's kafka_security from the project's venv.
Run `python scripts/localkafka.py --help` for the CLI (`scripts/kafka` wraps it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
POM = REPO / "scripts" / "kafka-jars" / "pom.xml"
CACHE_ROOT = REPO / ".cache" / "kafka"
DEFAULT_DATA_DIR = REPO / ".run" / "kafka"
DEFAULT_SECURE_DATA_DIR = REPO / ".run" / "kafka-secure"
HOST = "127.0.0.1"
# The secure broker's users: the broker itself (and this script's admin client), and the user
# the worker, generator and viewer log in as.
ADMIN_USER = "admin"
CLIENT_USER = "fraud"
SASL_USERS = (ADMIN_USER, CLIENT_USER)
SASL_MECHANISM = "SCRAM-SHA-512"
CERTIFICATE_NAMES = (HOST, "localhost")
# The kinds of login a secure broker asks for: its listener (protocol, SASL mechanism) and the
# words `start` and `status` use for it.
LOGINS: dict[str, tuple[str, str | None, str]] = {
    "scram": ("SASL_SSL", SASL_MECHANISM, f"SASL_SSL, {SASL_MECHANISM}"),
    "plain": ("SASL_SSL", "PLAIN", "SASL_SSL, PLAIN"),
    "mtls": ("SSL", None, "SSL, client certificates required"),
    "oauth": ("SASL_SSL", "OAUTHBEARER", "SASL_SSL, OAUTHBEARER with unsecured JWS tokens"),
}
TOKEN_LIFETIME_S = 24 * 3600

T = TypeVar("T")


class LocalKafkaError(Exception):
    """The local broker could not be set up, started or used; the message says why."""


def kafka_version() -> str:
    """The Kafka version pinned in the pom, the single place it is written."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise LocalKafkaError(f"no <kafka.version> property in {POM}")
    return match.group(1).strip()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def ensure_jars(cache_root: Path = CACHE_ROOT) -> Path:
    """Resolve the broker's jars with mvn into <cache_root>/<version>/libs once; return that dir.

    Maven copies into a temporary sibling dir that is renamed into place only when complete,
    so an interrupted run never leaves a half-filled libs dir behind.
    """
    libs = cache_root / kafka_version() / "libs"
    if libs.is_dir():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("mvn not found on PATH: install Maven (Debian package 'maven')")
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="libs.tmp.", dir=libs.parent))
    command = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
        "-DincludeScope=runtime",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise LocalKafkaError(
                f"mvn could not resolve the Kafka jars (exit {result.returncode}):\n{output}"
            )
        try:
            tmp.rename(libs)
        except OSError:
            if not libs.is_dir():  # not a concurrent run that got there first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return libs


def _metadata_request(correlation_id: int) -> bytes:
    # Metadata v4 (the oldest version Kafka 4 still serves): request header v1, an empty topic
    # list and allow_auto_topic_creation=false. The answer lists the live (unfenced) brokers.
    client_id = b"localkafka"
    body = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body += struct.pack(">ib", 0, 0)
    return struct.pack(">i", len(body)) + body


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data += chunk
    return data


def kafka_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a Kafka broker at host:port answers a metadata request listing a live broker."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_metadata_request(correlation_id=7))
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            if not 0 < size < 1 << 20:  # not a Kafka answer to this request
                return False
            response = _recv_exactly(sock, size)
    except (OSError, struct.error):
        return False
    if len(response) < 12:
        return False
    correlation_id, _throttle_ms, broker_count = struct.unpack(">iii", response[:12])
    return bool(correlation_id == 7 and broker_count > 0)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM's server socket
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, consecutive: bool = False) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nobody listens on right now; with
    `consecutive`, they follow one another (the demo's worker N serves on the first + N)."""
    while True:
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
        ports: list[int] = []
        try:
            for sock in sockets:  # all bound at once, so the ports differ
                sock.bind((HOST, ports[-1] + 1 if consecutive and ports else 0))
                ports.append(int(sock.getsockname()[1]))
            return ports
        except (OSError, OverflowError):  # OverflowError: the row ran past port 65535
            if not consecutive:
                raise
            # a port after the first is taken: try another first port
        finally:
            for sock in sockets:
                sock.close()


def _pid_alive(pid: int) -> bool:
    try:
        # Reap it if it is our own exited child, so a zombie does not count as alive.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


OPENSSL_CONFIG = """\
[req]
distinguished_name = subject
[subject]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[broker]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = {names}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LocalKafkaError("openssl not found on PATH: install it (Debian package 'openssl')")
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalKafkaError(
            f"openssl {args[0]} failed: {(result.stdout + result.stderr).strip()}"
        )


def make_certificates(
    directory: Path, names: Sequence[str] = CERTIFICATE_NAMES, clients: Sequence[str] = SASL_USERS
) -> Path:
    """A CA (`ca.pem`), a broker certificate it signed for `names` (IP addresses and DNS
    names) and a client certificate for each of `clients`, written once into `directory` with
    the openssl CLI; returns the CA's path.

    `broker.pem` holds the broker's private key and its certificate chain, the one-file PEM key
    store Kafka reads (`ssl.keystore.type=PEM`); `clients/<name>.crt` and `clients/<name>.key`
    are a client's certificate (subject `CN=<name>`) and its PKCS#8 key. The keys are readable
    by their owner only. The CA's key is deleted once everything is signed: nothing else can be
    signed by that CA.
    """
    ca = directory / "ca.pem"
    if (directory / "broker.pem").exists():
        return ca
    directory.mkdir(parents=True, exist_ok=True)
    alt_names = []
    for name in names:
        try:
            alt_names.append(f"IP:{ipaddress.ip_address(name)}")
        except ValueError:
            alt_names.append(f"DNS:{name}")
    (directory / "openssl.cnf").write_text(OPENSSL_CONFIG.format(names=", ".join(alt_names)))
    (directory / "clients").mkdir(exist_ok=True)
    old_umask = os.umask(0o077)  # the keys: owner only
    made = ["ca.key", "openssl.cnf", "broker.key", "broker.crt"]
    try:
        _openssl(
            *("req", "-x509", "-config", "openssl.cnf", "-extensions", "ca", "-newkey", "rsa:2048"),
            *("-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650"),
            *("-subj", "/CN=fraud-detector local Kafka CA"),
            cwd=directory,
        )
        signed = [("broker", names[0], "broker"), *((f"clients/{c}", c, "client") for c in clients)]
        for stem, subject, extensions in signed:
            made.append(f"{stem}.csr")
            _openssl(
                *("req", "-new", "-config", "openssl.cnf", "-newkey", "rsa:2048", "-nodes"),
                *("-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", f"/CN={subject}"),
                cwd=directory,
            )
            _openssl(
                *("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
                *("-set_serial", f"0x{secrets.token_hex(16)}", "-days", "825"),
                *("-out", f"{stem}.crt", "-extfile", "openssl.cnf", "-extensions", extensions),
                cwd=directory,
            )
        chain = [(directory / name).read_text() for name in ("broker.key", "broker.crt", "ca.pem")]
        (directory / "broker.tmp").write_text("".join(chain))
        (directory / "broker.tmp").rename(directory / "broker.pem")  # complete or absent
    finally:
        os.umask(old_umask)
        for name in made:
            (directory / name).unlink(missing_ok=True)
    ca.chmod(0o644)  # the CA certificate is public: clients read it
    return ca


def encrypt_key(key: Path, password_file: Path, out: Path) -> Path:
    """`key` encrypted (PKCS#8, AES-256) with the password in `password_file`, written to `out`."""
    old_umask = os.umask(0o077)
    try:
        _openssl(
            *("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(key), "-out", str(out)),
            *("-passout", f"file:{password_file}"),
            cwd=out.parent,
        )
    finally:
        os.umask(old_umask)
    return out


def _base64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsecured_token(subject: str, lifetime_s: float = TOKEN_LIFETIME_S) -> str:
    """An unsecured JWS (`alg: none`) for `subject`, valid for `lifetime_s` seconds from now
    (negative: already expired): what Kafka's built-in OAUTHBEARER validator accepts."""
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + int(lifetime_s), "scope": "kafka"}
    return f"{_base64url({'alg': 'none'})}.{_base64url(claims)}."


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only, replacing it whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.rename(path)


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs every failed connection; while polling for readiness, those are expected."""
    logger = logging.getLogger("aiokafka")
    handler = logging.NullHandler()
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


async def _answers_with_login(bootstrap: str, options: Mapping[str, Any], timeout: float) -> bool:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **options
    )
    try:
        with _quiet_aiokafka():
            await client.bootstrap()
        return bool(client.cluster.brokers())
    except Exception:  # aiokafka's own errors, OSError, TLS errors: not answering (yet)
        return False
    finally:
        await client.close()


def _import_kafka_security() -> None:
    """Make the project's kafka_security importable when this file runs as a script."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


LOG4J2_TEMPLATE = """\
status = warn
appender.server.type = RollingFile
appender.server.name = server
appender.server.fileName = {logs}/server.log
appender.server.filePattern = {logs}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 20MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.server.ref = server
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


class LocalKafka:
    """One single-node KRaft broker (broker + controller in one JVM) living in `data_dir`.

    With a `login` (one of `LOGINS`; `secure=True` is "scram") the client listener uses TLS and
    asks for that login (the controller's stays PLAINTEXT on 127.0.0.1): its certificates and
    CA are in `tls_dir`, the users' passwords, tokens and key passwords in files under
    `users_dir`, made on first start; `client_env()` gives a client's settings.

    `proxied` adds a PLAINTEXT listener per (port, advertised port): a client that bootstraps
    through a proxy on the advertised port is told the broker is there, so all its traffic
    crosses the proxy (tests/integration/netfaults.py).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int = 9093,
        libs: Path | None = None,
        *,
        secure: bool = False,
        login: str | None = None,
        proxied: Sequence[tuple[int, int]] = (),
    ) -> None:
        if login is not None and login not in LOGINS:
            raise LocalKafkaError(f"unknown login {login!r}: one of {', '.join(LOGINS)}")
        self.data_dir = data_dir.resolve()
        self.port = port
        self.controller_port = controller_port
        self.login = login or ("scram" if secure else None)
        self.proxied = list(proxied)
        self._libs = libs
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def secure(self) -> bool:
        return self.login is not None

    @property
    def listener(self) -> str:
        """The client listener's security protocol: PLAINTEXT, SSL or SASL_SSL."""
        return LOGINS[self.login][0] if self.login else "PLAINTEXT"

    @property
    def mechanism(self) -> str | None:
        """The SASL mechanism the client listener asks for (None: no SASL)."""
        return LOGINS[self.login][1] if self.login else None

    def describe(self) -> str:
        """The client listener in a few words, e.g. `SASL_SSL, PLAIN`."""
        return LOGINS[self.login][2] if self.login else "PLAINTEXT"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def users_dir(self) -> Path:
        return self.data_dir / "users"

    def password_file(self, user: str) -> Path:
        return self.users_dir / f"{user}.password"

    def token_file(self, user: str) -> Path:
        """The file holding `user`'s OAUTHBEARER token (made fresh at each start)."""
        return self.users_dir / f"{user}.token"

    def certificate_file(self, user: str) -> Path:
        return self.tls_dir / "clients" / f"{user}.crt"

    def key_file(self, user: str) -> Path:
        """`user`'s private key; the client user's is encrypted with `key_password_file`."""
        if user == CLIENT_USER:
            return self.tls_dir / "clients" / f"{user}.encrypted.key"
        return self.tls_dir / "clients" / f"{user}.key"

    def key_password_file(self, user: str) -> Path:
        return self.users_dir / f"{user}.key-password"

    def client_env(self, user: str = CLIENT_USER) -> dict[str, str]:
        """The environment of a worker, generator or viewer logging in as `user` (names as in
        docs/settings.md; passwords, keys and tokens by file, never by value)."""
        env = {"KAFKA_BOOTSTRAP": self.bootstrap}
        if not self.login:
            return env
        env |= {
            "KAFKA_SECURITY_PROTOCOL": self.listener,
            "KAFKA_SSL_CAFILE": str(self.ca_file),
        }
        if self.login == "mtls":
            env |= {
                "KAFKA_SSL_CERTFILE": str(self.certificate_file(user)),
                "KAFKA_SSL_KEYFILE": str(self.key_file(user)),
            }
            if user == CLIENT_USER:
                env["KAFKA_SSL_KEY_PASSWORD_FILE"] = str(self.key_password_file(user))
        elif self.login == "oauth":
            env |= {
                "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "KAFKA_SASL_OAUTH_TOKEN_FILE": str(self.token_file(user)),
            }
        else:
            env |= {
                "KAFKA_SASL_MECHANISM": str(self.mechanism),
                "KAFKA_SASL_USERNAME": user,
                "KAFKA_SASL_PASSWORD_FILE": str(self.password_file(user)),
            }
        return env

    def client_options(self, user: str = ADMIN_USER) -> dict[str, Any]:
        """aiokafka keyword arguments for a client of this broker (empty for a plaintext one)."""
        if not self.secure:
            return {}
        _import_kafka_security()
        from kafka_security import KafkaSecurity, SecurityError

        try:
            return KafkaSecurity.from_env(self.client_env(user)).client_options()
        except SecurityError as error:
            raise LocalKafkaError(f"{error}: start the broker of {self.data_dir} first") from None

    def secrets(self) -> list[str]:
        """Every password, key password and token of this broker's users, as written in their
        files (what must never show in any output)."""
        paths = [
            *(self.password_file(user) for user in SASL_USERS),
            *(self.key_password_file(user) for user in SASL_USERS),
            *(self.token_file(user) for user in SASL_USERS),
        ]
        return [path.read_text().strip() for path in paths if path.exists()]

    def _passwords(self) -> dict[str, str]:
        """Each user's password, made once (random) and kept in a file only it can read."""
        self.users_dir.mkdir(parents=True, exist_ok=True)
        passwords = {}
        for user in SASL_USERS:
            path = self.password_file(user)
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(16) + "\n")
            passwords[user] = path.read_text().strip()
        return passwords

    def _client_keys(self) -> None:
        """The client user's key, encrypted with a random password kept in a file (so a
        client's key password is exercised too); the admin's key stays unencrypted."""
        password_file = self.key_password_file(CLIENT_USER)
        if not password_file.exists():
            _write_private(password_file, secrets.token_hex(16) + "\n")
        if not self.key_file(CLIENT_USER).exists():
            plain = self.tls_dir / "clients" / f"{CLIENT_USER}.key"
            encrypt_key(plain, password_file, self.key_file(CLIENT_USER))

    def refresh_tokens(self) -> None:
        """A fresh unsecured JWS for each user, valid for TOKEN_LIFETIME_S."""
        for user in SASL_USERS:
            _write_private(self.token_file(user), unsecured_token(user) + "\n")

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.log_dir / "kafka.out"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def _storage_dir(self) -> Path:
        return self.data_dir / "data"

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java or not Path(java).exists():
            raise LocalKafkaError("java not found: install a JDK 17+ or set JAVA_HOME")
        return java

    def _classpath(self) -> str:
        libs = self._libs or ensure_jars()
        return str(libs / "*")

    def write_config(self) -> None:
        """Write server.properties and the log4j2 config for this broker."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_TEMPLATE.format(logs=self.log_dir))
        listener = self.listener
        proxied = [(f"PROXIED{i}", port, shown) for i, (port, shown) in enumerate(self.proxied)]
        listeners = [f"{listener}://{HOST}:{self.port}"] + [
            f"{name}://{HOST}:{port}" for name, port, _ in proxied
        ]
        advertised = [f"{listener}://{HOST}:{self.port}"] + [
            f"{name}://{HOST}:{shown}" for name, _, shown in proxied
        ]
        protocols = [f"{listener}:{listener}", "CONTROLLER:PLAINTEXT"] + [
            f"{name}:PLAINTEXT" for name, _, _ in proxied
        ]
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": ",".join([*listeners, f"CONTROLLER://{HOST}:{self.controller_port}"]),
            "advertised.listeners": ",".join(advertised),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": listener,
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self._storage_dir),
            "num.partitions": "8",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        if self.secure:
            settings |= self._secure_settings()
        text = "".join(f"{key}={value}\n" for key, value in settings.items())
        # The secure broker's file holds its own login: readable by its owner only.
        fd = os.open(self.properties_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Written by scripts/localkafka.py\n" + text)

    def _secure_settings(self) -> dict[str, str]:
        make_certificates(self.tls_dir)
        settings = {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.tls_dir / "broker.pem"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "ssl.client.auth": "required" if self.login == "mtls" else "none",
        }
        if self.login == "mtls":
            # The broker's own certificate is also its client certificate between listeners.
            self._client_keys()
            return settings
        mechanism = str(self.mechanism)
        prefix = f"listener.name.sasl_ssl.{mechanism.lower()}"
        settings |= {
            "sasl.enabled.mechanisms": mechanism,
            "sasl.mechanism.inter.broker.protocol": mechanism,
        }
        if self.login == "oauth":
            # The broker logs in to itself with an unsecured JWS of its own making, and checks
            # the clients' tokens with Kafka's default, unsecured validator: for tests only.
            self.refresh_tokens()
            settings[f"{prefix}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                f'unsecuredLoginStringClaim_sub="{ADMIN_USER}";'
            )
            return settings
        passwords = self._passwords()
        # The broker logs in to itself (transaction markers go through the broker listener) as
        # the admin user. This file is the only place the passwords are written: Kafka does not
        # log them (tests/integration/test_security.py reads the logs for them).
        if self.login == "plain":
            users = " ".join(f'user_{user}="{password}"' for user, password in passwords.items())
            login = (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{ADMIN_USER}" password="{passwords[ADMIN_USER]}" {users};'
            )
        else:
            login = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN_USER}" password="{passwords[ADMIN_USER]}";'
            )
        settings[f"{prefix}.sasl.jaas.config"] = login
        return settings

    def _run_tool(self, *args: str) -> str:
        command = [self._java(), "-cp", self._classpath(), "kafka.tools.StorageTool", *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(
                f"kafka StorageTool {args[0]} failed: {(result.stdout + result.stderr).strip()}"
            )
        return result.stdout.strip()

    def format_storage(self) -> None:
        """Format the KRaft storage once; a formatted data dir keeps its cluster id."""
        if (self._storage_dir / "meta.properties").exists():
            return
        cluster_id = self._run_tool("random-uuid").splitlines()[-1]
        scram = []
        # KRaft takes SCRAM users at format time, before any login is possible. StorageTool
        # reads them from its command line only: they are on it for the second it runs.
        if self.login == "scram":
            for user, password in self._passwords().items():
                scram += ["--add-scram", f"{SASL_MECHANISM}=[name={user},password={password}]"]
        self._run_tool(
            "format", "--standalone", "-t", cluster_id, "-c", str(self.properties_path), *scram
        )

    def pid(self) -> int | None:
        """The pid of this data dir's broker if it is running, else None."""
        if self._process is not None and self._process.poll() is None:
            return self._process.pid  # started by us (its cmdline may not be java's yet)
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        try:  # a recycled pid that is not our broker does not count
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid
        return pid if str(self.properties_path).encode() in cmdline else None

    def start(self, timeout: float = 120.0) -> None:
        """Start the broker in the background and return once it answers Kafka requests."""
        if self.secure:
            try:
                import aiokafka  # noqa: F401
            except ImportError:
                raise LocalKafkaError(
                    "a secure broker's readiness check logs in with aiokafka: run `make venv`"
                ) from None
        if self.pid() is not None:
            if self._wait_ready(timeout):
                return
            raise LocalKafkaError(
                f"a broker from {self.data_dir} runs but does not answer on {self.bootstrap}"
            )
        for port in (self.port, self.controller_port):
            if not _port_free(port):
                raise LocalKafkaError(
                    f"port {port} on {HOST} is taken by another process: "
                    "choose free ports (KAFKA_PORT, KAFKA_CONTROLLER_PORT)"
                )
        classpath = self._classpath()
        self.write_config()
        self.format_storage()
        command = [
            self._java(),
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.properties_path),
        ]
        with self.stdout_log.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # own process group: a Ctrl-C in the shell spares it
            )
        self.pid_path.write_text(f"{self._process.pid}\n")
        if not self._wait_ready(timeout):
            self.stop()
            raise LocalKafkaError(
                f"Kafka did not answer on {self.bootstrap} within {timeout:g}s.\n"
                f"--- {self.server_log}\n{_tail(self.server_log)}\n"
                f"--- {self.stdout_log}\n{_tail(self.stdout_log, 15)}"
            )

    def answers(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request (the secure one: after the admin's
        login over TLS) listing a live broker."""
        if not self.secure:
            return kafka_answers(HOST, self.port, timeout)
        options = self.client_options(ADMIN_USER)
        return _run_sync(_answers_with_login(self.bootstrap, options, timeout))

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                return False
            if self.answers():
                return True
            time.sleep(0.25)
        return False

    def _alive(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None  # reaps our own child through Popen
        return _pid_alive(pid)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker: SIGTERM (a clean shutdown), then SIGKILL after `timeout` seconds."""
        pid = self.pid()
        if pid is not None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while self._alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not self._alive(pid):
                    break
        self._process = None
        self.pid_path.unlink(missing_ok=True)

    def status(self) -> str:
        """One line: running and answering, running but not answering, or stopped."""
        pid = self.pid()
        if pid is None:
            return f"stopped ({self.data_dir})"
        state = "answering" if self.answers() else "NOT answering"
        listener = f" ({self.describe()})" if self.secure else ""
        return f"running, pid {pid}, {state} on {self.bootstrap}{listener} ({self.data_dir})"


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


TOPIC_ALREADY_EXISTS = 36


async def _create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    configs: Mapping[str, str],
    timeout: float,
    client_options: Mapping[str, Any],
) -> list[str]:
    try:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    except ImportError as error:
        raise LocalKafkaError("creating topics needs aiokafka: run `make venv` first") from error

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **client_options
    )
    try:
        await admin.start()
    except Exception as error:  # aiokafka raises its own KafkaError subclasses
        await admin.close()
        raise LocalKafkaError(f"cannot reach Kafka at {bootstrap}: {error}") from error
    try:
        new = [
            NewTopic(name, count, 1, topic_configs=dict(configs)) for name, count in topics.items()
        ]
        response = await admin.create_topics(new, timeout_ms=int(timeout * 1000))
        created = []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            if code == 0:
                created.append(name)
            elif code != TOPIC_ALREADY_EXISTS:
                raise LocalKafkaError(f"cannot create topic {name!r}: error {code} {entry[2:]}")
        # Return only once every partition has a leader, so callers can produce right away.
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics(list(topics))
            counts = {
                t["topic"]: len(t["partitions"])
                for t in described
                if t["error_code"] == 0 and all(p["leader"] >= 0 for p in t["partitions"])
            }
            if all(name in counts for name in topics):
                break
            if time.monotonic() > deadline:
                raise LocalKafkaError(f"topics without leaders after {timeout}s: {described}")
            await asyncio.sleep(0.1)
        for name, count in topics.items():
            if counts[name] != count:
                raise LocalKafkaError(
                    f"topic {name!r} exists with {counts[name]} partitions, not {count}: "
                    "delete it (or the broker's data dir) to recreate it"
                )
        return created
    finally:
        await admin.close()


def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    configs: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    client_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics {name: partitions} that do not exist yet (replication factor 1).

    Existing topics are fine if their partition count matches. Returns the names created.
    `client_options` are the admin client's security options (`LocalKafka.client_options()`).
    Needs aiokafka (the project's venv); works from sync code and from inside an event loop.
    """
    coroutine = _create_topics(bootstrap, topics, configs or {}, timeout, client_options or {})
    return _run_sync(coroutine)


def project_topics(env: Mapping[str, str] = os.environ) -> dict[str, int]:
    """The project's topics from the environment, as in DESIGN.md, with their defaults."""
    try:
        partitions = int(env.get("TOPIC_PARTITIONS", "8"))
    except ValueError:
        raise LocalKafkaError("TOPIC_PARTITIONS must be a whole number") from None
    names = (
        env.get("TRANSACTIONS_TOPIC", "transactions"),
        env.get("FRAUD_TOPIC", "fraud"),
        env.get("DLQ_TOPIC", "transactions-dlq"),
    )
    return dict.fromkeys(names, partitions)


COMMANDS_HELP = """\
commands:
  start          start the broker in the background (no-op if it runs); waits until it answers
  stop           stop it (SIGTERM, then SIGKILL after 30 s)
  status         print its state; exit 0 running and answering, 1 not answering, 3 stopped
  logs           print the end of its server log (-n LINES, -f to follow)
  create-topics  create the project's topics if missing: TRANSACTIONS_TOPIC (transactions),
                 FRAUD_TOPIC (fraud), DLQ_TOPIC (transactions-dlq), each with
                 TOPIC_PARTITIONS (8) partitions
  client-env     print a client's settings as shell exports (with --secure: the login of the
                 user 'fraud', its password, key or token by file): eval "$(scripts/kafka
                 --secure client-env)" before starting a worker, the generator or the viewer
  jars           only resolve the broker's jars into .cache/kafka (with mvn)

--secure[=LOGIN]: a broker whose client port speaks TLS and asks for a login; certificates made
with openssl, passwords, keys and tokens made at random, all in the data dir (default
<repo>/.run/kafka-secure, or <repo>/.run/kafka-secure-LOGIN for a LOGIN other than scram).
  scram  SASL_SSL with SCRAM-SHA-512 (the default)
  plain  SASL_SSL with PLAIN
  mtls   SSL with a client certificate required (signed by the broker's CA)
  oauth  SASL_SSL with OAUTHBEARER; Kafka's unsecured JWS tokens, for tests only
Pass it to every command for that broker.
"""


def default_data_dir(login: str | None) -> Path:
    """Where `scripts/kafka` keeps a broker of that login: one data dir per kind."""
    if login is None:
        return DEFAULT_DATA_DIR
    if login == "scram":
        return DEFAULT_SECURE_DATA_DIR
    return DEFAULT_SECURE_DATA_DIR.with_name(f"kafka-secure-{login}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/kafka",
        description="Run a local single-node Kafka broker (KRaft) on 127.0.0.1.",
        epilog=COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        choices=["start", "stop", "status", "logs", "create-topics", "client-env", "jars"],
    )
    parser.add_argument(
        "--secure",
        choices=list(LOGINS),
        metavar="LOGIN",
        help="--secure or --secure=LOGIN: a broker with a TLS listener that asks for a login "
        "(see below)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="default: <repo>/.run/kafka, with --secure <repo>/.run/kafka-secure[-LOGIN]",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("KAFKA_PORT", "9092"),
        help="client port [env: KAFKA_PORT, default 9092]",
    )
    parser.add_argument(
        "--controller-port",
        type=int,
        default=os.environ.get("KAFKA_CONTROLLER_PORT", "9093"),
        help="KRaft controller port [env: KAFKA_CONTROLLER_PORT, default 9093]",
    )
    parser.add_argument("-n", "--lines", type=int, default=50, help="logs: lines to show")
    parser.add_argument("-f", "--follow", action="store_true", help="logs: keep following")
    # A bare --secure is --secure=scram (an optional value would swallow the command after it).
    given = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(["--secure=scram" if arg == "--secure" else arg for arg in given])
    data_dir = args.data_dir or default_data_dir(args.secure)
    kafka = LocalKafka(data_dir, args.port, args.controller_port, login=args.secure)
    try:
        if args.command == "jars":
            print(ensure_jars())
        elif args.command == "start":
            started = time.monotonic()
            was_running = kafka.pid() is not None
            kafka.start()
            verb = "already running" if was_running else "started"
            listener = f" ({kafka.describe()})" if kafka.secure else ""
            took = time.monotonic() - started
            print(f"kafka {verb} on {kafka.bootstrap}{listener} in {took:.1f}s")
            print(f"logs: {kafka.server_log}")
            if kafka.secure:
                same = [f"--port {args.port}"] if args.port != 9092 else []
                same += [f"--data-dir {shlex.quote(str(args.data_dir))}"] if args.data_dir else []
                secure = "--secure" if kafka.login == "scram" else f"--secure={kafka.login}"
                command = " ".join(["scripts/kafka", secure, *same, "client-env"])
                print(f'client settings: eval "$({command})"')
        elif args.command == "stop":
            kafka.stop()
            print("kafka stopped")
        elif args.command == "status":
            print(kafka.status())
            if kafka.pid() is None:
                return 3
            return 0 if kafka.answers() else 1
        elif args.command == "logs":
            if args.follow:
                os.execvp("tail", ["tail", "-n", str(args.lines), "-F", str(kafka.server_log)])
            print(_tail(kafka.server_log, args.lines))
        elif args.command == "create-topics":
            topics = project_topics()
            created = create_topics(kafka.bootstrap, topics, client_options=kafka.client_options())
            for name, partitions in topics.items():
                state = "created" if name in created else "exists"
                print(f"topic {name}: {partitions} partitions ({state})")
        elif args.command == "client-env":
            if kafka.login == "oauth":
                kafka.refresh_tokens()  # each client-env hands out tokens valid for a day
            for name, value in kafka.client_env().items():
                print(f"export {name}={shlex.quote(value)}")
    except LocalKafkaError as error:
        print(f"kafka: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
