"""Flags, environment and the entry point of the viewer (viewer.cli, viewer.__main__)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from viewer.__main__ import main, make_renderer
from viewer.cli import OutputMode, ViewerSettings, build_parser, parse_settings
from viewer.render import CaseRenderer, OneCase, WindowRenderer

ROOT = Path(__file__).resolve().parents[2]


def settings(*argv: str, env: dict[str, str] | None = None, tty: bool = False) -> ViewerSettings:
    return parse_settings(list(argv), env or {}, stdout_is_terminal=tty)


def test_defaults() -> None:
    assert settings() == ViewerSettings(
        bootstrap="localhost:9092",
        topic="fraud",
        dlq_topic="transactions-dlq",
        from_beginning=False,
        output=OutputMode.PLAIN,
        evidence=False,
        windows=False,
        case=None,
        max_alerts=None,
        timeout=None,
    )


def test_environment_sets_bootstrap_and_topics_and_flags_win() -> None:
    env = {"KAFKA_BOOTSTRAP": "k1:9092,k2:9093", "FRAUD_TOPIC": "alerts", "DLQ_TOPIC": "dead"}

    from_env = settings(env=env)
    assert (from_env.bootstrap, from_env.topic, from_env.dlq_topic) == (
        "k1:9092,k2:9093",
        "alerts",
        "dead",
    )
    overridden = settings(
        "--bootstrap", "127.0.0.1:1234", "--topic", "f2", "--dlq-topic", "d2", env=env
    )
    assert (overridden.bootstrap, overridden.topic, overridden.dlq_topic) == (
        "127.0.0.1:1234",
        "f2",
        "d2",
    )


def test_an_empty_environment_variable_means_the_default() -> None:
    assert settings(env={"KAFKA_BOOTSTRAP": "", "FRAUD_TOPIC": ""}).topic == "fraud"


def test_all_flags() -> None:
    parsed = settings(
        "--from-beginning",
        "--evidence",
        "--windows",
        "--case",
        "66:26:1500771600000",
        "--max-alerts",
        "3",
        "--timeout",
        "2.5",
        "--json",
    )

    assert parsed.from_beginning and parsed.evidence and parsed.windows
    assert parsed.case == "66:26:1500771600000"
    assert (parsed.max_alerts, parsed.timeout, parsed.output) == (3, 2.5, OutputMode.JSON)


@pytest.mark.parametrize(
    ("argv", "renderer"),
    [
        ((), CaseRenderer),
        (("--json",), CaseRenderer),
        (("--windows",), WindowRenderer),
        (("--windows", "--json"), WindowRenderer),
        (("--case", "a:b:1"), OneCase),
    ],
)
def test_cases_are_the_default_and_windows_on_request(
    argv: tuple[str, ...], renderer: type[object]
) -> None:
    assert isinstance(make_renderer(settings(*argv)), renderer)


@pytest.mark.parametrize(
    ("argv", "tty", "output"),
    [
        ((), False, OutputMode.PLAIN),
        ((), True, OutputMode.LIVE),
        (("--plain",), True, OutputMode.PLAIN),
        (("--json",), True, OutputMode.JSON),
        (("--json",), False, OutputMode.JSON),
    ],
)
def test_output_mode_follows_the_terminal_unless_asked(
    argv: tuple[str, ...], tty: bool, output: OutputMode
) -> None:
    assert settings(*argv, tty=tty).output is output


def test_help_names_the_environment_variables() -> None:
    text = build_parser({}).format_help()

    assert "[env: KAFKA_BOOTSTRAP, default: localhost:9092]" in " ".join(text.split())
    assert "[env: FRAUD_TOPIC, default: fraud]" in " ".join(text.split())
    assert "[env: DLQ_TOPIC, default: transactions-dlq]" in " ".join(text.split())


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--bootstrap", "host:port"], {}, "bad port 'port'"),
        (["--bootstrap", "host:99999"], {}, "bad port '99999'"),
        (["--bootstrap", "a:1,,b:2"], {}, "expected host:port"),
        ([], {"KAFKA_BOOTSTRAP": ":9092"}, "expected host:port"),
        (["--topic", "bad topic"], {}, "is not a Kafka topic name"),
        (["--max-alerts", "0"], {}, "expected a positive integer"),
        (["--timeout", "-1"], {}, "expected a positive number of seconds"),
        (["--timeout", "inf"], {}, "expected a positive number of seconds"),
        (["--json", "--plain"], {}, "not allowed with argument"),
        (["--dlq-topic", "a/b"], {}, "is not a Kafka topic name"),
        (["--case", ""], {}, "expected a case or alert id"),
    ],
)
def test_an_invalid_value_is_a_usage_error_with_exit_code_2(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(argv, env, stdout_is_terminal=False)

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_broker_that_is_down_is_one_line_on_stderr_and_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"

    code = main(["--bootstrap", bootstrap, "--timeout", "20"])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == (
        f"fraud-viewer: cannot reach Kafka at {bootstrap}: is the broker running? "
        "(set --bootstrap or KAFKA_BOOTSTRAP)\n"
    )


def test_python_dash_m_viewer_runs_the_same_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "viewer", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "--from-beginning" in done.stdout
    assert "KAFKA_BOOTSTRAP" in done.stdout
