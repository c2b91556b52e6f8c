#!/bin/sh
# Creates the pipeline's topics (run by the fraud-topics Job in the apache/kafka image) and
# checks that each has TOPIC_PARTITIONS partitions. Idempotent: existing topics are kept.
# The replication factor is the broker's default.replication.factor. Faust's internal topics
# (changelogs, repartition) are created by the workers themselves.
set -eu

topics_tool=/opt/kafka/bin/kafka-topics.sh

for topic in "$TRANSACTIONS_TOPIC" "$FRAUD_TOPIC" "$DLQ_TOPIC"; do
    "$topics_tool" --bootstrap-server "$KAFKA_BOOTSTRAP" --create --if-not-exists \
        --topic "$topic" --partitions "$TOPIC_PARTITIONS"
    partitions=$("$topics_tool" --bootstrap-server "$KAFKA_BOOTSTRAP" --describe \
        --topic "$topic" | grep -c "Partition: " || true)
    if [ "$partitions" -ne "$TOPIC_PARTITIONS" ]; then
        echo "topic $topic has $partitions partitions, not TOPIC_PARTITIONS=$TOPIC_PARTITIONS:" \
            "change the setting or the topic" >&2
        exit 1
    fi
    echo "topic $topic: $partitions partitions"
done
