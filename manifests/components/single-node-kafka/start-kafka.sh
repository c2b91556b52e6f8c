#!/bin/sh
# Starts the dev broker in the apache/kafka image: formats the KRaft storage on the first start
# (a formatted volume keeps its cluster id), then runs the broker in the foreground, advertised
# under the pod's stable DNS name <pod>.kafka.<namespace>.svc.
set -eu

config=/etc/kafka-config/server.properties

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --standalone \
    --cluster-id "$KAFKA_CLUSTER_ID" --config "$config"

exec /opt/kafka/bin/kafka-server-start.sh "$config" \
    --override "advertised.listeners=PLAINTEXT://${POD_NAME}.kafka.${POD_NAMESPACE}.svc:9092"
