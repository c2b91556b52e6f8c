"""Kafka security settings: defaults, validation in one line, the TLS context, no password shown."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from localkafka import encrypt_key, make_certificates

from kafka_security import PLAINTEXT, KafkaSecurity, Secret, SecurityError, TokenFile

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
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM='GSSAPI' must be one of"),
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


def test_plain_logs_in_with_the_user_and_password(cafile: Path) -> None:
    security = KafkaSecurity.from_env(sasl_env(cafile, KAFKA_SASL_MECHANISM="plain"))
    options = security.client_options()
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == ("PLAIN", "fraud")
    assert options["sasl_plain_password"] == PASSWORD
    assert security.describe() == "SASL_SSL (PLAIN as 'fraud')"
    assert PASSWORD not in repr(security)


KEY_PASSWORD = "key-Pa55-e91b"


@pytest.fixture(scope="module")
def client_tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates with the clients' certificates and keys, and fraud's key encrypted."""
    directory = tmp_path_factory.mktemp("client-tls")
    make_certificates(directory)
    (directory / "key-password").write_text(KEY_PASSWORD + "\n")
    clients = directory / "clients"
    encrypt_key(clients / "fraud.key", directory / "key-password", clients / "fraud.enc.key")
    return directory


def mtls_env(tls: Path, **more: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CAFILE": str(tls / "ca.pem"),
        "KAFKA_SSL_CERTFILE": str(tls / "clients" / "fraud.crt"),
        "KAFKA_SSL_KEYFILE": str(tls / "clients" / "fraud.enc.key"),
        "KAFKA_SSL_KEY_PASSWORD_FILE": str(tls / "key-password"),
        **more,
    }


def test_a_client_certificate_goes_into_the_tls_context(client_tls: Path) -> None:
    security = KafkaSecurity.from_env(mtls_env(client_tls))
    assert security.client_options() == {
        "security_protocol": "SSL",
        "ssl_context": security.ssl_context,
    }
    certificate = client_tls / "clients" / "fraud.crt"
    assert security.describe() == f"SSL (client certificate '{certificate}')"
    assert KEY_PASSWORD not in repr(security) + security.describe()
    # An unencrypted key needs no password; a SASL login can come on top of the certificate.
    plain_key = str(client_tls / "clients" / "fraud.key")
    both = KafkaSecurity.from_env(
        {
            **mtls_env(client_tls, KAFKA_SSL_KEYFILE=plain_key, KAFKA_SSL_KEY_PASSWORD_FILE=""),
            **sasl_env(client_tls / "ca.pem"),
        }
    )
    assert both.describe() == (
        f"SASL_SSL (SCRAM-SHA-512 as 'fraud', client certificate '{certificate}')"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"KAFKA_SSL_KEYFILE": ""},
            "KAFKA_SSL_CERTFILE is set without KAFKA_SSL_KEYFILE: a client certificate needs both",
        ),
        (
            {"KAFKA_SSL_CERTFILE": ""},
            "KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE: a client certificate needs both",
        ),
        (
            {"KAFKA_SSL_KEY_PASSWORD_FILE": ""},
            "KAFKA_SSL_KEYFILE='{tls}/clients/fraud.enc.key' is encrypted: set "
            "KAFKA_SSL_KEY_PASSWORD_FILE (or KAFKA_SSL_KEY_PASSWORD)",
        ),
        (
            {"KAFKA_SSL_KEY_PASSWORD_FILE": "", "KAFKA_SSL_KEY_PASSWORD": "wrong-" + KEY_PASSWORD},
            "KAFKA_SSL_KEYFILE='{tls}/clients/fraud.enc.key' cannot be decrypted with the key "
            "password given: check KAFKA_SSL_KEY_PASSWORD(_FILE)",
        ),
        (
            {"KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD},
            "set KAFKA_SSL_KEY_PASSWORD or KAFKA_SSL_KEY_PASSWORD_FILE, not both",
        ),
        (
            {"KAFKA_SSL_KEYFILE": "{tls}/clients/admin.key", "KAFKA_SSL_KEY_PASSWORD_FILE": ""},
            "KAFKA_SSL_CERTFILE='{tls}/clients/fraud.crt' and "
            "KAFKA_SSL_KEYFILE='{tls}/clients/admin.key' are not a PEM certificate and its "
            "private key (KEY_VALUES_MISMATCH)",
        ),
        (
            {"KAFKA_SSL_KEYFILE": "{tls}/missing.key"},
            "KAFKA_SSL_KEYFILE='{tls}/missing.key' cannot be read (No such file or directory)",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "KAFKA_SSL_CAFILE": ""},
            "KAFKA_SSL_CERTFILE is set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS",
        ),
    ],
)
def test_a_bad_client_certificate_setting_is_one_line_without_the_key_password(
    client_tls: Path, change: dict[str, str], message: str
) -> None:
    env = mtls_env(client_tls, **{k: v.format(tls=client_tls) for k, v in change.items()})
    text = refusal(env)
    assert text.startswith(message.format(tls=client_tls)), text
    assert KEY_PASSWORD not in text and "\n" not in text


def oauth_env(token_file: Path, cafile: Path, **more: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "KAFKA_SASL_OAUTH_TOKEN_FILE": str(token_file),
        "KAFKA_SSL_CAFILE": str(cafile),
        **more,
    }


async def test_oauthbearer_hands_aiokafka_the_token_file(cafile: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("a.token.\n")
    security = KafkaSecurity.from_env(oauth_env(token_file, cafile))
    options = security.client_options()
    provider = options.pop("sasl_oauth_token_provider")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "ssl_context": security.ssl_context,
    }
    assert isinstance(provider, TokenFile) and await provider.token() == "a.token."
    assert security.describe() == f"SASL_SSL (OAUTHBEARER, token from '{token_file}')"
    assert "a.token." not in repr(security)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"KAFKA_SASL_OAUTH_TOKEN_FILE": ""}, "KAFKA_SASL_MECHANISM=OAUTHBEARER needs "),
        (
            {"KAFKA_SASL_USERNAME": "fraud"},
            "KAFKA_SASL_MECHANISM=OAUTHBEARER logs in with a token, not a user and password",
        ),
        (
            {
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "p",
            },
            "KAFKA_SASL_OAUTH_TOKEN_FILE is set, but KAFKA_SASL_MECHANISM=PLAIN logs in with a "
            "password: set KAFKA_SASL_MECHANISM=OAUTHBEARER",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL"},
            "a SASL token is set, but KAFKA_SECURITY_PROTOCOL=SSL sends no login",
        ),
        (
            {"KAFKA_SASL_OAUTH_TOKEN_FILE": "/nonexistent/token"},
            "KAFKA_SASL_OAUTH_TOKEN_FILE='/nonexistent/token' cannot be read",
        ),
        ({"KAFKA_SASL_OAUTH_TOKEN_FILE": "EMPTY"}, "KAFKA_SASL_OAUTH_TOKEN_FILE='"),
    ],
)
def test_a_bad_oauthbearer_setting_is_one_line(
    cafile: Path, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("secret.token.\n")
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    if change.get("KAFKA_SASL_OAUTH_TOKEN_FILE") == "EMPTY":
        change = {"KAFKA_SASL_OAUTH_TOKEN_FILE": str(empty)}
    text = refusal(oauth_env(token_file, cafile, **change))
    assert text.startswith(message), text
    assert "secret.token." not in text
