"""Kafka security settings: defaults, validation in one line, the TLS context, no password shown."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from localkafka import make_certificates

from kafka_security import PLAINTEXT, KafkaSecurity, Secret, SecurityError

PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def cafile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def sasl_env(cafile: Path, **more: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "fraud",
        "KAFKA_SASL_PASSWORD": PASSWORD,
        "KAFKA_SSL_CAFILE": str(cafile),
        **more,
    }


def test_plaintext_by_default_and_with_the_empty_placeholder_secret() -> None:
    assert KafkaSecurity.from_env({}) == PLAINTEXT
    # manifests/base/kafka-credentials.yaml sets both to "" when no SASL is used
    assert KafkaSecurity.from_env({"KAFKA_SASL_USERNAME": "", "KAFKA_SASL_PASSWORD": ""}) == (
        PLAINTEXT
    )
    assert PLAINTEXT.client_options() == {"security_protocol": "PLAINTEXT"}
    assert PLAINTEXT.describe() == "PLAINTEXT"


def test_sasl_ssl_gives_every_client_the_login_and_a_verifying_tls_context(cafile: Path) -> None:
    security = KafkaSecurity.from_env(sasl_env(cafile, KAFKA_SECURITY_PROTOCOL="sasl_ssl"))
    options = security.client_options()
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "fraud",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    subjects = [dict(part[0] for part in ca["subject"]) for ca in context.get_ca_certs()]
    assert subjects == [{"commonName": "fraud-detector local Kafka CA"}]
    assert security.describe() == "SASL_SSL (SCRAM-SHA-512 as 'fraud')"


def test_without_a_ca_file_tls_trusts_the_system_cas() -> None:
    security = KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL"})
    assert security.ssl_context is not None and security.ssl_context.check_hostname
    assert security.client_options() == {
        "security_protocol": "SSL",
        "ssl_context": security.ssl_context,
    }
    assert (
        security.ssl_context.cert_store_stats() == ssl.create_default_context().cert_store_stats()
    )


def test_the_password_never_shows(cafile: Path) -> None:
    security = KafkaSecurity.from_env(sasl_env(cafile, KAFKA_SASL_MECHANISM="SCRAM-SHA-256"))
    assert security.password == Secret(PASSWORD)
    for text in (repr(security), str(security), f"{security.password}", security.describe()):
        assert PASSWORD not in text
    assert "password=Secret('********')" in repr(security)


def test_the_password_file_is_read_without_its_final_newline(cafile: Path, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    env = sasl_env(cafile, KAFKA_SASL_PASSWORD="", KAFKA_SASL_PASSWORD_FILE=str(secret))
    security = KafkaSecurity.from_env(env)
    assert security.password is not None and security.password.reveal() == PASSWORD


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS' must be one of"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "SASL_PLAINTEXT is not supported"),
        ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_MECHANISM='PLAIN' must be one of"),
        ({"KAFKA_SASL_USERNAME": ""}, "SASL_SSL needs KAFKA_SASL_USERNAME"),
        ({"KAFKA_SASL_PASSWORD": ""}, "needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE"),
        (
            {"KAFKA_SASL_PASSWORD_FILE": "/p"},
            "KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL"},
            "a SASL user or password is set, but KAFKA_SECURITY_PROTOCOL=SSL sends no login",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "KAFKA_SASL_USERNAME": ""},
            "a SASL user or password is set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
        ),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "'/nonexistent/ca.pem' cannot be read"),
    ],
)
def test_a_bad_setting_is_one_line_without_the_password(
    cafile: Path, change: dict[str, str], message: str
) -> None:
    with pytest.raises(SecurityError) as caught:
        KafkaSecurity.from_env(sasl_env(cafile, **change))
    text = str(caught.value)
    assert message in text
    assert "\n" not in text and PASSWORD not in text


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(SecurityError) as caught:
        KafkaSecurity.from_env(env)
    return str(caught.value)


def test_plaintext_with_a_ca_file_is_refused(cafile: Path) -> None:
    assert refusal({"KAFKA_SSL_CAFILE": str(cafile)}) == (
        "KAFKA_SSL_CAFILE is set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS: "
        "set KAFKA_SECURITY_PROTOCOL=SASL_SSL or SSL"
    )


def test_unusable_password_and_ca_files_are_named(cafile: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    env = sasl_env(cafile, KAFKA_SASL_PASSWORD="", KAFKA_SASL_PASSWORD_FILE=str(empty))
    assert refusal(env) == f"KAFKA_SASL_PASSWORD_FILE='{empty}' is empty"
    missing = tmp_path / "missing"
    env["KAFKA_SASL_PASSWORD_FILE"] = str(missing)
    assert refusal(env) == (
        f"KAFKA_SASL_PASSWORD_FILE='{missing}' cannot be read (No such file or directory)"
    )
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    message = refusal(sasl_env(cafile, KAFKA_SSL_CAFILE=str(not_pem)))
    assert message.startswith(f"KAFKA_SSL_CAFILE='{not_pem}' holds no usable PEM certificate (")
