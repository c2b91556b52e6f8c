"""The fraud-verify command (viewer.verify): flags, report, progress, failures without a broker.

The whole check against the real broker and a real worker is in
tests/integration/test_viewer_verify.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from tests.viewer.records import MINUTE_MS, T0_MS, encoded, rfc3339, window_record
from tests.viewer.test_cli import closed_port
from viewer.alerts import parse_record
from viewer.scoring import AlertLog, read_ground_truth, score
from viewer.verify import (
    ReadProgress,
    VerifySettings,
    format_duration,
    main,
    parse_settings,
    report_document,
    report_lines,
)


def minute(offset: float) -> int:
    return T0_MS + round(offset * MINUTE_MS)


def entry(kind: str, first: float, last: float, pair: tuple[str, str]) -> str:
    return orjson.dumps(
        {
            "type": kind,
            "sender": pair[0],
            "receiver": pair[1],
            "first_event": rfc3339(minute(first)),
            "last_event": rfc3339(minute(last)),
            "total": "12000.00",
            "count": 5,
            "complete": True,
        }
    ).decode()


TRUTH = [
    entry("structuring", 1, 3, ("90000", "90001")),
    entry("near_miss", 20, 22, ("90002", "90003")),
    entry("structuring", 41, 50.5, ("90004", "90005")),  # 9.5 min: missable by design
    '{"type": "malformed", "reason": "late", "value_b64": ""}',
]


def scored() -> tuple[VerifySettings, list[str], dict[str, object]]:
    log = AlertLog()
    txs = [(minute(1), "6000", 2, 40), (minute(3), "6000", 2, 41)]
    for start in (-6, -4, -2, 0):
        for kind in ("threshold_crossed", "window_closed"):
            record = window_record(kind, minute(start), "12000.00", txs, sender="90000")
            record["receiver"] = "90001"
            record["alert_id"] = f"90000:90001:{minute(start)}"
            log.add(parse_record(encoded(record)))
    truth = read_ground_truth(TRUTH)
    result = score(truth, log, size_ms=600_000, slide_ms=120_000)
    settings = VerifySettings(ground_truth=Path("truth.jsonl"))
    lines = report_lines(settings, result, truth.malformed, truth.other)
    return settings, lines, report_document(settings, result, truth.malformed, truth.other)


def test_the_report_gives_recall_precision_and_latency_per_type() -> None:
    _, lines, _ = scored()

    assert lines[:6] == [
        "ground truth truth.jsonl: 2 structuring and 1 near-miss scenarios; "
        "1 malformed-record entries not scored",
        "topic fraud: 8 records, 4 flagged windows in 1 cases (windows of 10m00s sliding by 2m00s)",
        "",
        "type          scenarios  scored  alerted  recall     crossing after   window end after"
        "       processing",
        "structuring           2       1        1    1.00      2m00s / 2m00s      3m00s / 3m00s"
        "                -",
        "near_miss             1       1        0       -                  -                  -"
        "                -",
    ]
    assert "precision 1.00: 1 of 1 cases match a structuring scenario" in lines[7]
    missable = lines.index(next(line for line in lines if line.startswith("missable by design")))
    assert lines[missable + 1] == (
        "  structuring 90004 -> 90005  2017-07-23 01:41:00–01:50:30 (9m30s) total $12,000.00: "
        "not detected"
    )
    assert lines[-1] == "PASS: 1 of 1 structuring scenarios detected, 0 of 1 near misses alerted"


def test_the_json_report_has_the_same_figures_and_every_scenario() -> None:
    _, _, document = scored()

    parsed = orjson.loads(orjson.dumps(document))
    assert parsed["passed"] is True
    assert parsed["precision"] == 1.0
    assert parsed["types"]["structuring"]["recall"] == 1.0
    assert parsed["types"]["structuring"]["missable_by_design"] == 1
    assert parsed["types"]["structuring"]["latency_s"]["crossing_after"] == {
        "median": 120.0,
        "max": 120.0,
    }
    assert parsed["types"]["near_miss"]["alerted"] == 0
    assert [(s["type"], s["fits_window"], s["alerted"]) for s in parsed["scenarios"]] == [
        ("structuring", True, True),
        ("structuring", False, False),
        ("near_miss", True, False),
    ]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.8412, "0.84s"), (42.04, "42.0s"), (245, "4m05s"), (-3.5, "-3.50s")],
)
def test_durations_read_as_people_write_them(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_flags_and_environment() -> None:
    env = {"KAFKA_BOOTSTRAP": "k:1", "WINDOW_SIZE": "300", "WINDOW_SLIDE": "60"}

    settings = parse_settings(["t.jsonl", "--json"], env, stderr_is_terminal=True)

    assert settings == VerifySettings(
        ground_truth=Path("t.jsonl"),
        bootstrap="k:1",
        size_ms=300_000,
        slide_ms=60_000,
        json=True,
        progress=True,
    )
    assert not parse_settings(["t", "--no-progress"], {}, stderr_is_terminal=True).progress
    assert not parse_settings(["t"], {}, stderr_is_terminal=False).progress


def test_a_size_that_is_no_multiple_of_the_slide_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(["t", "--window-size", "500", "--window-slide", "120"], {}, False)

    assert exited.value.code == 2
    assert "--window-size 500 must be a multiple of --window-slide 120" in capsys.readouterr().err


def test_progress_draws_on_a_terminal_and_not_otherwise() -> None:
    assert ReadProgress(None).step("reading fraud") is None

    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100)
    progress = ReadProgress(console)
    with progress.shown():
        step = progress.step("reading fraud")
        assert step is not None
        step(250, 1000)
        console.file.flush()
        drawn = stream.getvalue()

    assert "reading fraud" in drawn
    assert "250/1000" in drawn


def test_an_unreadable_ground_truth_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(TRUTH[0] + "\n{oops\n")

    assert main([str(missing), "--bootstrap", f"127.0.0.1:{closed_port()}"]) == 2
    assert main([str(bad), "--bootstrap", f"127.0.0.1:{closed_port()}"]) == 2

    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"fraud-verify: cannot read {missing}: ")
    assert err[1].startswith("fraud-verify: line 2: not JSON")


def test_a_broker_that_is_down_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = tmp_path / "truth.jsonl"
    truth.write_text("\n".join(TRUTH) + "\n")
    bootstrap = f"127.0.0.1:{closed_port()}"

    assert main([str(truth), "--bootstrap", bootstrap]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"fraud-verify: cannot reach Kafka at {bootstrap}: is the broker running? "
        "(set --bootstrap or KAFKA_BOOTSTRAP)\n"
    )
