"""A real single-node Apache Kafka broker (KRaft) on 127.0.0.1, for the demo and the tests.

The broker's jars are resolved once with Maven (scripts/kafka-jars/pom.xml) into
.cache/kafka/<version>/libs; each broker keeps its config, data, logs and pid file in one data dir.
Stdlib only, except `create_topics`, which uses aiokafka from the project's venv.
Run `python scripts/localkafka.py --help` for the CLI (`scripts/kafka` wraps it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
POM = REPO / "scripts" / "kafka-jars" / "pom.xml"
CACHE_ROOT = REPO / ".cache" / "kafka"
DEFAULT_DATA_DIR = REPO / ".run" / "kafka"
HOST = "127.0.0.1"

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


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nobody listens on right now."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))  # all bound at once, so the ports differ
        return [int(sock.getsockname()[1]) for sock in sockets]
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
    """One single-node KRaft broker (broker + controller in one JVM) living in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int = 9093,
        libs: Path | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.controller_port = controller_port
        self._libs = libs
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

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
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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
        text = "".join(f"{key}={value}\n" for key, value in settings.items())
        self.properties_path.write_text("# Written by scripts/localkafka.py\n" + text)

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
        self._run_tool("format", "--standalone", "-t", cluster_id, "-c", str(self.properties_path))

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

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                return False
            if kafka_answers(HOST, self.port):
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
        state = "answering" if kafka_answers(HOST, self.port) else "NOT answering"
        return f"running, pid {pid}, {state} on {self.bootstrap} ({self.data_dir})"


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
) -> list[str]:
    try:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    except ImportError as error:
        raise LocalKafkaError("creating topics needs aiokafka: run `make venv` first") from error

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
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
) -> list[str]:
    """Create the topics {name: partitions} that do not exist yet (replication factor 1).

    Existing topics are fine if their partition count matches. Returns the names created.
    Needs aiokafka (the project's venv); works from sync code and from inside an event loop.
    """
    return _run_sync(_create_topics(bootstrap, topics, configs or {}, timeout))


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
  jars           only resolve the broker's jars into .cache/kafka (with mvn)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/kafka",
        description="Run a local single-node Kafka broker (KRaft) on 127.0.0.1.",
        epilog=COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", choices=["start", "stop", "status", "logs", "create-topics", "jars"]
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default: <repo>/.run/kafka"
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
    args = parser.parse_args(argv)
    kafka = LocalKafka(args.data_dir, args.port, args.controller_port)
    try:
        if args.command == "jars":
            print(ensure_jars())
        elif args.command == "start":
            started = time.monotonic()
            was_running = kafka.pid() is not None
            kafka.start()
            verb = "already running" if was_running else "started"
            print(f"kafka {verb} on {kafka.bootstrap} in {time.monotonic() - started:.1f}s")
            print(f"logs: {kafka.server_log}")
        elif args.command == "stop":
            kafka.stop()
            print("kafka stopped")
        elif args.command == "status":
            print(kafka.status())
            if kafka.pid() is None:
                return 3
            return 0 if kafka_answers(HOST, kafka.port) else 1
        elif args.command == "logs":
            if args.follow:
                os.execvp("tail", ["tail", "-n", str(args.lines), "-F", str(kafka.server_log)])
            print(_tail(kafka.server_log, args.lines))
        elif args.command == "create-topics":
            topics = project_topics()
            created = create_topics(kafka.bootstrap, topics)
            for name, partitions in topics.items():
                state = "created" if name in created else "exists"
                print(f"topic {name}: {partitions} partitions ({state})")
    except LocalKafkaError as error:
        print(f"kafka: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
