"""Kafka security on a real broker whose client listener is SASL_SSL (SCRAM-SHA-512 over TLS).

The broker is the project's own (scripts/localkafka.py, ``secure=True``): a CA and a broker
certificate for 127.0.0.1 and localhost made with openssl, the users ``admin`` (the broker and
the test's own clients) and ``fraud`` (the worker, generator and viewer). The right login
carries records from the generator through a worker to the viewer and fraud-verify; a wrong
password, a plaintext client, an unknown CA and a host name the certificate does not name are
each refused at once with one line and exit code 2; no password shows anywhere.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from localkafka import SASL_USERS, LocalKafka, free_ports, make_certificates

from tests.conftest import TopicFactory, running
from tests.integration.kafka_io import read_until
from tests.integration.pipeline import Pipeline, assert_alerts, expect
from tests.integration.workers import FAUST, Finished, WorkerProcess, run_process

PYTHON = sys.executable
WRONG_PASSWORD = "not-the-password-7c1d"
REFUSED_IN = 30.0  # seconds: a refusal is one round trip, never a wait for a timeout
PROGRAMS = {  # what each program prefixes its one-line error with
    "worker": "fraud-detector",
    "generator": "generator",
    "viewer": "fraud-viewer",
    "fraud-verify": "fraud-verify",
}


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    port, controller_port = free_ports(2)
    root = tmp_path_factory.mktemp("secure-kafka")
    with running(LocalKafka(root, port, controller_port, secure=True)) as broker:
        yield broker


@pytest.fixture
def secure_pipeline(secure_kafka: LocalKafka, tmp_path: Path) -> Iterator[Pipeline]:
    topics = TopicFactory(secure_kafka.bootstrap, secure_kafka.client_options())
    pipe = Pipeline(secure_kafka, topics, tmp_path)
    try:
        yield pipe
    finally:
        pipe.stop()


def passwords(kafka: LocalKafka) -> list[str]:
    return [kafka.password_file(user).read_text().strip() for user in SASL_USERS]


def assert_no_secret(text: str, kafka: LocalKafka) -> None:
    for secret in [*passwords(kafka), WRONG_PASSWORD]:
        assert secret not in text


async def test_the_right_login_carries_records_from_generator_to_worker_to_viewer(
    secure_pipeline: Pipeline, secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    pipe = secure_pipeline
    truth = tmp_path / "truth.jsonl"
    shown: list[str] = []  # everything the programs printed, searched for secrets at the end

    # The generator logs in as 'fraud' from the environment (the password by file) ...
    generator = await run_process(
        [
            *(PYTHON, "-m", "generator", "--count", "3000", "--rate", "0", "--accounts", "40"),
            *("--seed", "21", "--layout", "rfc3339", "--mean-gap-ms", "400", "--scenarios", "9"),
            *("--no-progress", "--ground-truth", str(truth)),
        ],
        pipe.env,
    )
    shown += [generator.out, generator.err]
    assert generator.code == 0, generator.err
    assert "generator: sent 3,000 records to Kafka topic" in generator.err
    transactions = pipe.topics["transactions"]
    written = await read_until(
        pipe.bootstrap,
        transactions,
        lambda records: len(records) >= 3000,
        timeout=60,
        what="the generator's 3000 records",
        client_options=pipe.client_options,
    )
    written += await pipe.close_windows(written)
    expected = expect(written)
    assert len(expected.closed) >= 6

    # ... and so does the worker: every alert arrives, exactly the ones the reference computes.
    worker = pipe.worker()
    fraud, _ = await pipe.wait_for(expected)
    assert_alerts(fraud, expected)
    assert f"Kafka at {pipe.bootstrap}, SASL_SSL (SCRAM-SHA-512 as 'fraud')" in worker.log_text()

    # The operator's set-threshold writes to the control topic, which the worker follows.
    command = await run_process([str(FAUST), "-A", "app", "set-threshold", "10000"], pipe.env)
    shown += [command.out, command.err]
    assert command.code == 0, command.err
    worker.wait_for_log("threshold is now 10000.00", timeout=60)
    shown.append(worker.log_text())

    # The viewer logs in with flags instead of variables and shows every flagged window.
    login = secure_kafka.client_env()
    flags = [
        *("--bootstrap", pipe.bootstrap, "--topic", pipe.topics["fraud"]),
        *("--security-protocol", "SASL_SSL", "--sasl-username", login["KAFKA_SASL_USERNAME"]),
        *("--sasl-password-file", login["KAFKA_SASL_PASSWORD_FILE"]),
        *("--ssl-cafile", login["KAFKA_SSL_CAFILE"]),
    ]
    viewer = await run_process(
        [
            PYTHON,
            "-m",
            "viewer",
            *flags,
            "--from-beginning",
            "--windows",
            "--json",
            "--timeout",
            "10",
        ],
        {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},  # the flags win over the variables
    )
    shown += [viewer.out, viewer.err]
    assert (viewer.code, viewer.err) == (0, "")
    windows = [orjson.loads(line) for line in viewer.out.splitlines()]
    assert {w["alert_id"] for w in windows} == set(expected.closed), viewer.out[-2000:]
    assert {w["status"] for w in windows} == {"closed"}

    # fraud-verify reads the alerts and the transactions' timestamps through the same login.
    verify = await run_process(
        [
            PYTHON,
            "-m",
            "viewer.verify",
            str(truth),
            "--no-progress",
            "--transactions-topic",
            transactions,
        ],
        pipe.env,
    )
    shown += [verify.out, verify.err]
    assert verify.code == 0, verify.out + verify.err
    assert verify.out.splitlines()[-1].startswith("PASS: 6 of 6 structuring scenarios detected")

    for text in shown:
        assert_no_secret(text, secure_kafka)


async def refusal(program: str, env: dict[str, str], tmp_path: Path) -> tuple[str, Finished]:
    """Run ``program`` with ``env`` until it gives up: its last line of error output, and how
    it finished (for the worker, ``err`` is its whole log)."""
    if program == "worker":
        began = time.monotonic()
        worker = WorkerProcess(0, env, tmp_path, free_ports(1)[0]).start()
        code = worker.exit_code(timeout=120)
        finished = Finished(code, "", worker.log_text(), time.monotonic() - began)
    else:
        truth = tmp_path / "truth.jsonl"
        truth.write_text("")
        command = {
            "generator": ["-m", "generator", "--count", "10", "--no-progress"],
            "viewer": ["-m", "viewer", "--timeout", "60"],
            "fraud-verify": ["-m", "viewer.verify", str(truth), "--no-progress"],
        }[program]
        finished = await run_process([PYTHON, *command], env)
    lines = [line for line in finished.err.splitlines() if line.strip()]
    return (lines[-1] if lines else ""), finished


def assert_refused_in_one_line(
    program: str, line: str, finished: Finished, message: str, kafka: LocalKafka
) -> None:
    assert finished.code == 2, finished.out + finished.err
    assert line == f"{PROGRAMS[program]}: {message}", finished.err[-3000:]
    assert finished.seconds < REFUSED_IN, f"{program} took {finished.seconds:.1f}s to give up"
    assert "Traceback" not in finished.out + finished.err
    assert_no_secret(finished.out + finished.err, kafka)
    if program != "worker":  # the worker's log also holds its banner and aiokafka's lines
        assert finished.err.count("\n") == 1, finished.err


@pytest.mark.parametrize("program", PROGRAMS)
async def test_a_wrong_password_is_refused_with_one_line(
    program: str, secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    env = {
        **secure_kafka.client_env(),
        "KAFKA_SASL_PASSWORD_FILE": "",
        "KAFKA_SASL_PASSWORD": WRONG_PASSWORD,
    }
    line, finished = await refusal(program, env, tmp_path)
    message = (
        f"Kafka at {secure_kafka.bootstrap} refused the login of user 'fraud' "
        "(SASL authentication failed)"
    )
    assert_refused_in_one_line(program, line, finished, message, secure_kafka)


@pytest.mark.parametrize("program", PROGRAMS)
async def test_a_plaintext_client_is_refused_at_once(
    program: str, secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    env = {"KAFKA_BOOTSTRAP": secure_kafka.bootstrap}  # no security settings: PLAINTEXT
    line, finished = await refusal(program, env, tmp_path)
    message = (
        f"Kafka at {secure_kafka.bootstrap} closed the connection of this plaintext client: "
        "if its listener uses TLS, set KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SSL)"
    )
    assert_refused_in_one_line(program, line, finished, message, secure_kafka)


@pytest.mark.parametrize("program", ["generator", "viewer"])
async def test_a_tls_client_on_a_plaintext_port_is_refused_at_once(
    program: str, kafka: LocalKafka, secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    env = {**secure_kafka.client_env(), "KAFKA_BOOTSTRAP": kafka.bootstrap}
    line, finished = await refusal(program, env, tmp_path)
    message = (
        f"TLS handshake with Kafka at {kafka.bootstrap} failed (connection reset): is that port "
        "a TLS listener? (KAFKA_SECURITY_PROTOCOL=SASL_SSL)"
    )
    assert_refused_in_one_line(program, line, finished, message, secure_kafka)


async def test_aiokafka_itself_gives_up_on_the_tls_port_at_once(secure_kafka: LocalKafka) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=secure_kafka.bootstrap)
    began = time.monotonic()
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        await producer.start()
    await producer.stop()
    assert time.monotonic() - began < 5.0


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA of the same kind that did not sign the broker's certificate."""
    return make_certificates(tmp_path_factory.mktemp("other-ca"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"KAFKA_SSL_CAFILE": "OTHER_CA"},
            "Kafka at {bootstrap} presented a TLS certificate this client does not trust "
            "(self-signed certificate in certificate chain): set KAFKA_SSL_CAFILE to the CA "
            "that signed it",
            id="another-ca",
        ),
        pytest.param(
            {"KAFKA_SSL_CAFILE": ""},
            "Kafka at {bootstrap} presented a TLS certificate this client does not trust "
            "(self-signed certificate in certificate chain): set KAFKA_SSL_CAFILE to the CA "
            "that signed it",
            id="system-cas",
        ),
        pytest.param(
            # 127.1 reaches 127.0.0.1, but to TLS it is a host name: the certificate names
            # only IP:127.0.0.1 and DNS:localhost.
            {"KAFKA_BOOTSTRAP": "127.1:{port}"},
            "Kafka at 127.1:{port} presented a TLS certificate that does not name '127.1' "
            "(Hostname mismatch, certificate is not valid for '127.1'.): connect by a name or "
            "address the certificate lists",
            id="unnamed-host",
        ),
    ],
)
@pytest.mark.parametrize("program", ["generator", "viewer"])
async def test_tls_refuses_a_certificate_it_cannot_verify(
    program: str,
    change: dict[str, str],
    message: str,
    secure_kafka: LocalKafka,
    other_ca: Path,
    tmp_path: Path,
) -> None:
    fill = {"bootstrap": secure_kafka.bootstrap, "port": str(secure_kafka.port)}
    changes = {name: value.format(**fill) for name, value in change.items()}
    if changes.get("KAFKA_SSL_CAFILE") == "OTHER_CA":
        changes["KAFKA_SSL_CAFILE"] = str(other_ca)
    env = {**secure_kafka.client_env(), **changes}
    line, finished = await refusal(program, env, tmp_path)
    assert_refused_in_one_line(program, line, finished, message.format(**fill), secure_kafka)


async def test_a_host_name_the_certificate_lists_is_accepted(
    secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    topic = TopicFactory(secure_kafka.bootstrap, secure_kafka.client_options()).create(
        partitions=1, transactions="transactions"
    )["transactions"]
    env = {
        **secure_kafka.client_env(),
        "KAFKA_BOOTSTRAP": f"localhost:{secure_kafka.port}",
        "TRANSACTIONS_TOPIC": topic,
    }
    finished = await run_process([PYTHON, "-m", "generator", "--count", "10"], env)
    assert finished.code == 0, finished.err
    assert f"sent 10 records to Kafka topic '{topic}' at localhost:" in finished.err


def test_the_broker_keeps_the_passwords_out_of_its_logs(secure_kafka: LocalKafka) -> None:
    logs = sorted(secure_kafka.log_dir.iterdir())
    assert secure_kafka.server_log in logs
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    # It did refuse the wrong logins of the tests above, without saying more.
    assert "Failed authentication" in text or "invalid credentials" in text
    assert_no_secret(text, secure_kafka)
