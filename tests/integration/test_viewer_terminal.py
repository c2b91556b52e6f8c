"""The viewer and fraud-verify as a person sees them: in a real terminal, on the real broker.

The tests write alert and dead-letter records themselves (the viewer only reads topics), run
``python -m viewer`` in a tmux window of their own tmux server, read the screen with
``tmux capture-pane`` and type keys with ``tmux send-keys``; fraud-verify's progress is read
from a pseudo-terminal on its stderr.
"""

from __future__ import annotations

import os
import pty
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from localkafka import LocalKafka

from tests.conftest import TopicFactory
from tests.integration.terminal import DEADLINE_S, Terminal
from tests.viewer.records import MINUTE_MS, T0_MS, window_record

ROOT = Path(__file__).resolve().parents[2]


def minute(offset: float) -> int:
    return T0_MS + round(offset * MINUTE_MS)


def ago(seconds: float) -> str:
    moment = datetime.fromtimestamp(time.time() - seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


TRANSFERS = [(minute(3), "4000", 1, 5), (minute(5), "3500", 1, 6), (minute(7), "4500", 1, 7)]


def windows(
    sender: str, receiver: str, starts: list[int], kind: str, detected_at: str
) -> list[Any]:
    total = "12000.00" if kind == "window_closed" else "11500.00"
    return [
        window_record(
            kind,
            minute(start),
            total,
            TRANSFERS,
            sender=sender,
            receiver=receiver,
            detected_at=detected_at,
        )
        for start in starts
    ]


async def produce(bootstrap: str, topic: str, documents: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for document in documents:
            key = str(document["alert_id"]).encode() if "alert_id" in document else None
            await producer.send_and_wait(topic, orjson.dumps(document), key=key)
    finally:
        await producer.stop()


def dead_letter(reason: str, offset: int) -> dict[str, Any]:
    return {
        "schema": 1,
        "reason": reason,
        "detail": "test",
        "raw": "x",
        "raw_bytes": 1,
        "truncated": False,
        "topic": "transactions",
        "partition": 0,
        "offset": offset,
        "detected_at": ago(1),
    }


def command(kafka: LocalKafka, names: dict[str, str], *flags: str) -> str:
    """The viewer's shell command line on the test's topics."""
    topics = ["--topic", names["fraud"], "--dlq-topic", names["dlq"]]
    return shlex.join(
        [sys.executable, "-m", "viewer", "--bootstrap", kafka.bootstrap, *topics, *flags]
    )


def row(screen: str, pair: str) -> str:
    rows = [line for line in screen.splitlines() if f" {pair} " in line]
    assert len(rows) == 1, f"expected one row of {pair} on the screen:\n{screen}"
    return rows[0]


async def test_the_live_view_shows_cases_a_footer_and_evidence_on_a_key(
    kafka: LocalKafka,
    topics: TopicFactory,
    terminal_factory: Callable[[str], Terminal],
) -> None:
    names = topics.create(partitions=4, fraud="fraud", dlq="transactions-dlq")
    # 66 -> 26: three windows of one burst, two of them closed. 7 -> 8: two windows, both
    # closed, detected later (so it is the newest case and on top).
    await produce(
        kafka.bootstrap,
        names["fraud"],
        [
            *windows("66", "26", [-2, 0, 2], "threshold_crossed", ago(10)),
            *windows("66", "26", [-2, 0], "window_closed", ago(9)),
            *windows("7", "8", [0, 2], "threshold_crossed", ago(5)),
            *windows("7", "8", [0, 2], "window_closed", ago(4)),
        ],
    )
    await produce(
        kafka.bootstrap,
        names["dlq"],
        [
            dead_letter("late", 1),
            dead_letter("late", 2),
            dead_letter("late", 3),
            dead_letter("bad_amount", 4),
            dead_letter("late", 3),  # written twice: one input record
        ],
    )
    viewer = command(kafka, names, "--from-beginning")
    terminal = terminal_factory(
        f"cd {shlex.quote(str(ROOT))} && {viewer}; echo viewer exited with $?; sleep 600"
    )

    screen = terminal.wait_for(
        lambda shown: "2 cases, 1 confirmed" in shown and "DLQ 4 (late 3)" in shown,
        "both cases and the dead letters",
    )

    assert screen.index(" 7 -> 8 ") < screen.index(" 66 -> 26 "), screen
    newest, older = row(screen, "7 -> 8"), row(screen, "66 -> 26")
    assert "CONFIRMED" in newest and "$12,000.00" in newest
    assert "CROSSED" in older and "3, 2 closed" in older and f"66:26:{minute(-2)}" in older
    assert "2017-07-23 01:03:00–01:07:00" in older
    footer = next(line for line in screen.splitlines() if "alerts/min" in line)
    assert "5 alerts/min" in footer  # 5 windows, all first detected seconds ago
    assert "e evidence · q quit" in footer

    # The burst's last window closes: the case is confirmed, in place.
    await produce(
        kafka.bootstrap, names["fraud"], windows("66", "26", [2], "window_closed", ago(0))
    )
    screen = terminal.wait_for(lambda shown: "2 cases, 2 confirmed" in shown, "the update")
    assert "CONFIRMED" in row(screen, "66 -> 26")

    terminal.keys("e")
    screen = terminal.wait_for(lambda shown: "p1@6" in shown, "the evidence after the e key")
    assert "01:03:00  $4,000.00  p1@5" in screen
    assert "01:07:00  $4,500.00  p1@7" in screen

    terminal.keys("q")
    screen = terminal.wait_for(lambda shown: "viewer exited with" in shown, "the viewer's exit")
    assert "viewer exited with 0" in screen
    assert "2 cases, 2 confirmed" in screen  # the last state stays on the screen


async def test_a_case_asked_for_is_shown_in_detail(
    kafka: LocalKafka,
    topics: TopicFactory,
    terminal_factory: Callable[[str], Terminal],
) -> None:
    names = topics.create(partitions=4, fraud="fraud", dlq="transactions-dlq")
    await produce(
        kafka.bootstrap,
        names["fraud"],
        [
            *windows("66", "26", [-2, 0], "window_closed", ago(10)),
            *windows("7", "8", [0], "window_closed", ago(5)),
        ],
    )
    viewer = command(kafka, names, "--from-beginning", "--case", f"66:26:{minute(0)}")
    terminal = terminal_factory(f"cd {shlex.quote(str(ROOT))} && {viewer}")

    screen = terminal.wait_for(lambda shown: "evidence" in shown, "the case in detail")

    assert f"case 66:26:{minute(-2)}  66 -> 26  CONFIRMED" in screen
    assert " 7 -> 8 " not in screen
    assert "2017-07-23 01:05:00.000 │ $3,500.00 │" in screen


def run_with_terminal_stderr(args: list[str]) -> tuple[int, str, str]:
    """Run ``args`` with stderr on a pseudo-terminal (stdout a pipe); (exit code, out, err)."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=slave,
            env={
                key: value for key, value in os.environ.items() if key not in {"COLUMNS", "LINES"}
            },
        )
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        out, _ = process.communicate(timeout=DEADLINE_S)
        return process.returncode, out.decode(), drawn.decode(errors="replace")
    finally:
        os.close(master)


async def test_verify_shows_progress_on_a_terminal_only(
    kafka: LocalKafka, topics: TopicFactory, tmp_path: Path
) -> None:
    names = topics.create(partitions=4, fraud="fraud", transactions="transactions")
    await produce(
        kafka.bootstrap, names["fraud"], windows("66", "26", [0], "window_closed", ago(1))
    )
    truth = tmp_path / "truth.jsonl"
    truth.write_text("")
    args = [sys.executable, "-m", "viewer.verify", str(truth), "--bootstrap", kafka.bootstrap]
    args += ["--topic", names["fraud"], "--transactions-topic", names["transactions"]]

    code, out, drawn = run_with_terminal_stderr(args)
    quiet = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_S)

    assert code == 0, out + drawn
    assert f"reading {names['fraud']}" in drawn and "1/1" in drawn
    assert "PASS" in out and "reading" not in out  # the report stays clean on stdout
    assert (quiet.returncode, quiet.stderr) == (0, "")  # no terminal: no progress at all
    assert quiet.stdout == out
