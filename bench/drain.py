"""The limit: a bare consumer that reads the whole topic and decodes each value, nothing else.

    python -m bench.drain {aiokafka,confluent} --bootstrap HOST:PORT --topic T --count N

Reads every partition from the beginning without a consumer group (nothing to commit), decodes
each value as UTF-8 and stops after N records. aiokafka runs on uvloop, as the Faust worker does.
Prints one JSON line: records, seconds from the first poll to the last record.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


async def drain_aiokafka(bootstrap: str, topic: str, count: int) -> tuple[int, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:  # the client has no metadata for the topic yet
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        started = time.monotonic()
        seen = chars = 0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batches.values():
                for message in messages:
                    chars += len(message.value.decode())
                seen += len(messages) if messages else 0
        return seen, time.monotonic() - started
    finally:
        await consumer.stop()


def drain_confluent(bootstrap: str, topic: str, count: int) -> tuple[int, float]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-drain-confluent",  # required by the client; nothing is committed
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(partitions)])
        started = time.monotonic()
        seen = chars = 0
        while seen < count:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error() is None:
                    chars += len(message.value().decode())
                    seen += 1
        return seen, time.monotonic() - started
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client", choices=("aiokafka", "confluent"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    if args.client == "aiokafka":
        import uvloop

        seen, seconds = uvloop.run(drain_aiokafka(args.bootstrap, args.topic, args.count))
    else:
        seen, seconds = drain_confluent(args.bootstrap, args.topic, args.count)
    print(json.dumps({"records": seen, "seconds": round(seconds, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
