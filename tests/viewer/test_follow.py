"""How aiokafka's logging reaches the person running the viewer (viewer.follow).

Following the real broker is tested in tests/integration/test_viewer_follow.py.
"""

from __future__ import annotations

import logging

from viewer.follow import relay_kafka_logs


def test_kafka_errors_become_rate_limited_escaped_one_line_warnings() -> None:
    warnings: list[str] = []
    log = logging.getLogger("aiokafka.conn")

    with relay_kafka_logs(warnings.append, every_s=3600) as relay:
        relay.muted = False
        for node in range(50):  # aiokafka repeats this every retry while the broker is down
            log.error("Unable connect to node with id %s: refused", node)
        log.warning("Failed fetch messages from %s: %s", 1, "bad\x1b[2J\nsecond line")
        log.info("Not a warning: not shown")

    assert warnings == [
        "kafka: Unable connect to node with id 0: refused",
        "kafka: Failed fetch messages from 1: bad\\x1b[2J",
    ]


def test_kafka_logs_are_silent_while_muted_and_restored_after() -> None:
    warnings: list[str] = []
    logger = logging.getLogger("aiokafka")
    before = (logger.level, logger.propagate, list(logger.handlers))

    with relay_kafka_logs(warnings.append):
        logging.getLogger("aiokafka.client").error('Unable connect to "h:1": refused')

    assert warnings == []
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
