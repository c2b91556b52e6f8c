"""`python -m generator` as a user runs it: output lines, flags, errors, Ctrl-C, ground truth."""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from generator import GeneratorConfig, generate
from tests.generator.checker import Line, classify

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "generator", *args],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "generator", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for_output(process: subprocess.Popen[bytes], deadline_s: float = 30) -> bytes:
    """The first bytes the process writes to stdout, or fail after the deadline."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if selector.select(timeout=0.1):
            return os.read(process.stdout.fileno(), 65536)
    process.kill()
    raise AssertionError(f"no output within {deadline_s} s; stderr: {process.stderr!r}")


def test_fifty_lines_on_stdout_are_the_library_records() -> None:
    result = cli("--stdout", "--count", "50", "--seed", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 50
    assert all(isinstance(classify(line), Line) for line in lines)
    assert lines == [r.value for r in generate(GeneratorConfig(count=50, seed=1))]
    assert lines[0].startswith(b"Sunday, 23-Jul-17 00:00:00 UTC;")
    stderr = result.stderr.decode()
    assert "sent 50 records to stdout" in stderr
    assert stderr.count("\n") == 1  # just the summary
    assert cli("--stdout", "--count", "50", "--seed", "1").stdout == result.stdout


def test_layout_and_whole_dollars_flags_shape_the_lines() -> None:
    result = cli(
        "--stdout",
        "--rate",
        "0",
        "--count",
        "200",
        "--layout",
        "rfc3339",
        "--whole-dollars",
        "--accounts",
        "5",
        "--mean-gap-ms",
        "250",
    )
    assert result.returncode == 0, result.stderr
    lines = [line.decode().split(";") for line in result.stdout.splitlines()]
    assert all(stamp.startswith("2017-07-23T") and stamp.endswith("Z") for stamp, *_ in lines)
    assert all("." not in amount for *_, amount in lines)
    assert {s for _, s, _, _ in lines} <= {"0", "1", "2", "3", "4"}


def test_a_simulated_duration_at_a_rate_is_a_record_count() -> None:
    result = cli("--stdout", "--duration", "1", "--rate", "300")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 300


def test_ground_truth_is_written_next_to_the_stream(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    result = cli(
        "--stdout",
        "--rate",
        "0",
        "--count",
        "3000",
        "--scenarios",
        "3",
        "--malformed",
        "0.02",
        "--ground-truth",
        str(truth),
    )
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in truth.read_text().splitlines()]
    assert [e["type"] for e in entries if e["type"] != "malformed"] == [
        "structuring",
        "structuring",
        "near_miss",
    ]
    malformed = [base64.b64decode(e["value_b64"]) for e in entries if e["type"] == "malformed"]
    lines = result.stdout.split(b"\n")[:-1]  # not splitlines: a bad line may hold a \r
    assert len(lines) == 3000
    assert malformed == [line for line in lines if not isinstance(classify(line), Line)]
    assert len(malformed) > 20
    assert "2 structuring + 1 near-miss scenarios" in result.stderr.decode()


def test_help_names_the_environment_variables() -> None:
    result = cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.decode().split())
    assert "[env: KAFKA_BOOTSTRAP, default localhost:9092]" in text
    assert "[env: TRANSACTIONS_TOPIC, default transactions]" in text


def test_a_bad_flag_is_an_argparse_error() -> None:
    for args in (
        ["--layout", "iso"],
        ["--malformed", "2"],
        ["--rate", "-1"],
        ["--accounts", "1"],
        ["--scenarios", "2"],
        ["--start", "yesterday"],
    ):
        result = cli("--stdout", *args)
        assert result.returncode == 2, args
        assert b"error:" in result.stderr
        assert b"Traceback" not in result.stderr


def test_a_broker_that_is_down_is_one_line_and_exit_2() -> None:
    address = f"127.0.0.1:{free_port()}"
    result = cli("--count", "5", env={"KAFKA_BOOTSTRAP": address})
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1, stderr
    assert f"cannot reach Kafka at {address}" in stderr
    assert "Traceback" not in stderr


def test_ctrl_c_ends_an_endless_run_cleanly() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        process = start("--stdout", "--rate", "500")
        first = wait_for_output(process)
        assert isinstance(classify(first.splitlines()[0]), Line)
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert b"Traceback" not in err
        assert b"records to stdout" in err
        assert (first + out).endswith(b"\n")  # flushed whole lines before exiting


def test_a_reader_closing_the_pipe_ends_the_run_quietly() -> None:
    process = start("--stdout", "--rate", "0")
    wait_for_output(process)
    assert process.stdout is not None
    process.stdout.close()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert b"Traceback" not in err
    assert b"Exception ignored" not in err
