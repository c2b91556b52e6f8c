"""Faust's own floor: the least a Faust worker does per record, measured like our worker.

    FLOOR_MODE=events|table|take [FLOOR_DRIVER=kafka|confluent] KAFKA_BOOTSTRAP=... \
        FLOOR_TOPIC=... APP_ID=... DATA_DIR=... faust -A bench.floor worker -l info

``events``: an agent that only iterates the events of the topic (Faust's consumer, conductor,
stream and offset commits, nothing else). ``table``: the same plus one get and one set of a
RocksDB-backed, changelogged table per record (the record's own key and value), which is the
state work our worker cannot do with less than one of per transaction. The gap between these
two and the bare aiokafka drain is what Faust's per-record machinery costs on this machine.
``take``: batches of up to 1,000 events from ``stream.take`` (batching in the agent), nothing
else. FLOOR_DRIVER=confluent runs any mode on Faust's confluent-kafka driver instead of aiokafka.
"""

from __future__ import annotations

import os
from typing import Any

import faust
import mode.loop

mode.loop.use("uvloop")  # as our worker

MODE = os.environ.get("FLOOR_MODE", "events")
if MODE not in ("events", "table", "take"):
    raise SystemExit(f"FLOOR_MODE must be events, table or take, not {MODE!r}")
DRIVER = os.environ.get("FLOOR_DRIVER", "kafka")
if DRIVER not in ("kafka", "confluent"):
    raise SystemExit(f"FLOOR_DRIVER must be kafka or confluent, not {DRIVER!r}")

app = faust.App(
    os.environ["APP_ID"],
    broker=f"{DRIVER}://" + os.environ["KAFKA_BOOTSTRAP"],
    store="rocksdb://",
    datadir=os.environ["DATA_DIR"],
    topic_partitions=8,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    producer_linger_ms=5,
    key_serializer="raw",
    value_serializer="raw",
    web_enabled=False,
)
records = app.topic(os.environ["FLOOR_TOPIC"], key_type=bytes, value_type=bytes)
state = app.Table("floor-state", partitions=8, key_type=bytes, value_type=bytes)


@app.agent(records)
async def floor(stream: Any) -> None:
    if MODE == "events":
        async for _event in stream.events():
            pass
    elif MODE == "take":
        async for _batch in stream.take(1000, within=0.1):
            pass
    else:
        async for event in stream.events():
            message = event.message
            state.get(message.key)
            state[message.key] = message.value
