"""Each kind of Kafka login besides SCRAM (test_security.py) on a broker that asks for it.

One broker per kind (scripts/localkafka.py, ``login=...``), each with a TLS client listener:
``plain`` (SASL PLAIN), ``mtls`` (client certificates signed by the broker's CA required; the
user ``fraud``'s key is encrypted, its password in a file) and ``oauth`` (OAUTHBEARER, Kafka's
unsecured JWS validator). With the right login, records go from the generator through a worker
to the viewer, fraud-verify and ``set-threshold``; with a wrong one the worker, the generator and
the viewer stop at once with one line and exit code 2; no password, key password or token shows.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from localkafka import CLIENT_USER, LocalKafka, free_ports, make_certificates, unsecured_token

from kafka_security import KafkaSecurity
from tests.conftest import TopicFactory, running
from tests.integration.kafka_io import read_until
from tests.integration.pipeline import Pipeline, assert_alerts, expect
from tests.integration.test_security import PROGRAMS, REFUSED_IN, refusal
from tests.integration.workers import FAUST, Finished, run_process

PYTHON = sys.executable
WRONG_PASSWORD = "not-the-password-51ae"
LOGINS = ["plain", "mtls", "oauth"]
DESCRIBED = {  # how the worker logs what it connects with
    "plain": "SASL_SSL (PLAIN as 'fraud')",
    "mtls": "SSL (client certificate '{certificate}')",
    "oauth": "SASL_SSL (OAUTHBEARER, token from '{token}')",
}


@pytest.fixture(scope="module", params=LOGINS)
def login_kafka(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalKafka]:
    port, controller_port = free_ports(2)
    root = tmp_path_factory.mktemp(f"kafka-{request.param}")
    with running(LocalKafka(root, port, controller_port, login=request.param)) as broker:
        yield broker


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates of the same kind from a CA the brokers do not trust."""
    directory = tmp_path_factory.mktemp("other-ca")
    make_certificates(directory)
    return directory


def wrong_login(kafka: LocalKafka, other_ca: Path, tmp_path: Path) -> tuple[dict[str, str], str]:
    """A client environment whose login ``kafka`` refuses, and the line that says so."""
    env = kafka.client_env()
    where = f"Kafka at {kafka.bootstrap}"
    if kafka.login == "plain":
        env |= {"KAFKA_SASL_PASSWORD_FILE": "", "KAFKA_SASL_PASSWORD": WRONG_PASSWORD}
        return env, f"{where} refused the login of user 'fraud' (SASL authentication failed)"
    if kafka.login == "mtls":
        certificate = other_ca / "clients" / "fraud.crt"
        env |= {
            "KAFKA_SSL_CERTFILE": str(certificate),
            "KAFKA_SSL_KEYFILE": str(other_ca / "clients" / "fraud.key"),
            "KAFKA_SSL_KEY_PASSWORD_FILE": "",
        }
        return env, (
            f"{where} refused the client certificate of KAFKA_SSL_CERTFILE='{certificate}' "
            "(TLS sslv3 alert certificate unknown): it must be signed by a CA the broker trusts"
        )
    expired = tmp_path / "expired.token"
    expired.write_text(unsecured_token(CLIENT_USER, lifetime_s=-3600) + "\n")
    env["KAFKA_SASL_OAUTH_TOKEN_FILE"] = str(expired)
    return env, (
        f"{where} refused the OAUTHBEARER token of KAFKA_SASL_OAUTH_TOKEN_FILE='{expired}' "
        "(SASL authentication failed): is it expired, or meant for another cluster?"
    )


def assert_no_secret(text: str, kafka: LocalKafka, *more: str) -> None:
    secrets = [*kafka.secrets(), WRONG_PASSWORD, *more]
    assert len(kafka.secrets()) >= 1
    for secret in secrets:
        assert secret not in text


async def test_the_right_login_carries_records_from_generator_to_worker_to_viewer(
    login_kafka: LocalKafka, tmp_path: Path
) -> None:
    kafka = login_kafka
    pipe = Pipeline(kafka, TopicFactory(kafka.bootstrap, kafka.client_options()), tmp_path)
    shown: list[str] = []  # everything the programs printed, searched for secrets at the end
    try:
        truth = tmp_path / "truth.jsonl"
        generator = await run_process(
            [
                *(PYTHON, "-m", "generator", "--count", "2000", "--rate", "0"),
                *("--accounts", "40", "--seed", "23", "--layout", "rfc3339"),
                *("--mean-gap-ms", "400", "--scenarios", "6", "--no-progress"),
                *("--ground-truth", str(truth)),
            ],
            pipe.env,
        )
        shown += [generator.out, generator.err]
        assert generator.code == 0, generator.err
        transactions = pipe.topics["transactions"]
        written = await read_until(
            pipe.bootstrap,
            transactions,
            lambda records: len(records) >= 2000,
            timeout=60,
            what="the generator's 2000 records",
            client_options=pipe.client_options,
        )
        written += await pipe.close_windows(written)
        expected = expect(written)
        assert len(expected.closed) >= 4

        worker = pipe.worker()
        fraud, _ = await pipe.wait_for(expected)
        assert_alerts(fraud, expected)
        env = kafka.client_env()
        described = DESCRIBED[str(kafka.login)].format(
            certificate=env.get("KAFKA_SSL_CERTFILE"), token=env.get("KAFKA_SASL_OAUTH_TOKEN_FILE")
        )
        assert f"Kafka at {pipe.bootstrap}, {described}" in worker.log_text()

        command = await run_process([str(FAUST), "-A", "app", "set-threshold", "10000"], pipe.env)
        shown += [command.out, command.err]
        assert command.code == 0, command.err
        worker.wait_for_log("threshold is now 10000.00", timeout=60)
        shown.append(worker.log_text())

        viewer = await run_process(
            [
                *(PYTHON, "-m", "viewer", "--topic", pipe.topics["fraud"]),
                *("--from-beginning", "--windows", "--json", "--timeout", "10"),
            ],
            pipe.env,
        )
        shown += [viewer.out, viewer.err]
        assert (viewer.code, viewer.err) == (0, "")
        windows = [orjson.loads(line) for line in viewer.out.splitlines()]
        assert {w["alert_id"] for w in windows} == set(expected.closed), viewer.out[-2000:]

        verify = await run_process(
            [
                *(PYTHON, "-m", "viewer.verify", str(truth), "--no-progress"),
                *("--transactions-topic", transactions),
            ],
            pipe.env,
        )
        shown += [verify.out, verify.err]
        assert verify.code == 0, verify.out + verify.err
        assert verify.out.splitlines()[-1].startswith("PASS: ")
    finally:
        pipe.stop()
    for text in shown:
        assert_no_secret(text, kafka)


@pytest.mark.parametrize("program", ["worker", "generator", "viewer"])
async def test_a_wrong_login_is_refused_with_one_line(
    program: str, login_kafka: LocalKafka, other_ca: Path, tmp_path: Path
) -> None:
    env, message = wrong_login(login_kafka, other_ca, tmp_path)
    line, finished = await refusal(program, env, tmp_path)
    assert_refused(program, line, finished, message, login_kafka)


def assert_refused(
    program: str, line: str, finished: Finished, message: str, kafka: LocalKafka
) -> None:
    assert finished.code == 2, finished.out + finished.err
    assert line == f"{PROGRAMS[program]}: {message}", finished.err[-3000:]
    assert finished.seconds < REFUSED_IN, f"{program} took {finished.seconds:.1f}s to give up"
    assert "Traceback" not in finished.out + finished.err
    assert_no_secret(finished.out + finished.err, kafka)
    if program != "worker":  # the worker's log also holds its banner and aiokafka's lines
        assert finished.err.count("\n") == 1, finished.err


@pytest.mark.parametrize("login_kafka", ["mtls"], indirect=True)  # asks for certificates
async def test_without_a_client_certificate_the_client_is_told_to_set_one(
    login_kafka: LocalKafka, tmp_path: Path
) -> None:
    env = {
        name: value
        for name, value in login_kafka.client_env().items()
        if not name.startswith(("KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEY"))
    }
    line, finished = await refusal("generator", env, tmp_path)
    message = (
        f"Kafka at {login_kafka.bootstrap} refused this client without a certificate (TLS "
        "sslv3 alert bad certificate): it asks for one; set KAFKA_SSL_CERTFILE and "
        "KAFKA_SSL_KEYFILE"
    )
    assert_refused("generator", line, finished, message, login_kafka)


@pytest.mark.parametrize("login_kafka", ["oauth"], indirect=True)
async def test_each_new_connection_logs_in_with_the_token_the_file_holds_now(
    login_kafka: LocalKafka, tmp_path: Path
) -> None:
    topic = TopicFactory(login_kafka.bootstrap, login_kafka.client_options()).create(
        partitions=1, transactions="transactions"
    )["transactions"]
    token_file = tmp_path / "token"
    token_file.write_text(unsecured_token(CLIENT_USER) + "\n")
    security = KafkaSecurity.from_env(
        {**login_kafka.client_env(), "KAFKA_SASL_OAUTH_TOKEN_FILE": str(token_file)}
    )

    async def produces() -> bool:
        # a new client: new connections, each logging in with the provider's token
        producer = AIOKafkaProducer(
            bootstrap_servers=login_kafka.bootstrap, **security.client_options()
        )
        try:
            await producer.start()
            await producer.send_and_wait(topic, b"x")
            return True
        except KafkaConnectionError:
            return False
        finally:
            await producer.stop()

    assert await produces()
    expired = unsecured_token(CLIENT_USER, lifetime_s=-60)
    token_file.write_text(expired + "\n")  # the same client settings, the file's new token
    assert not await produces(), "an expired token in the file was not read, or not refused"
    token_file.write_text(unsecured_token(CLIENT_USER, lifetime_s=600) + "\n")
    assert await produces()


def test_the_broker_keeps_the_secrets_out_of_its_logs(login_kafka: LocalKafka) -> None:
    logs = sorted(login_kafka.log_dir.iterdir())
    assert login_kafka.server_log in logs
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert_no_secret(text, login_kafka)


async def test_the_topics_job_creates_the_topics_through_the_login(
    login_kafka: LocalKafka, tmp_path: Path
) -> None:
    suffix = tmp_path.name[-12:].replace("_", "-")
    names = {
        "TRANSACTIONS_TOPIC": f"transactions-{suffix}",
        "FRAUD_TOPIC": f"fraud-{suffix}",
        "DLQ_TOPIC": f"dlq-{suffix}",
    }
    env = {**login_kafka.client_env(), **names, "TOPIC_PARTITIONS": "3"}
    env["DATA_DIR"] = str(tmp_path / "data")
    command = [str(FAUST), "-A", "app", "create-topics"]
    first = await run_process(command, env)
    assert first.code == 0, first.err
    assert first.out.splitlines() == [f"topic {n}: 3 partitions (created)" for n in names.values()]
    again = await run_process(command, env)  # idempotent, as the Job's retries need
    assert again.out.splitlines() == [f"topic {n}: 3 partitions (exists)" for n in names.values()]
    assert_no_secret(first.out + first.err + again.out + again.err, login_kafka)
