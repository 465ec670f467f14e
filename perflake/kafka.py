"""Kafka clients (kafka-python) built from config: topic creation and JSON producing."""

from __future__ import annotations

import json
from collections.abc import Iterable

from perflake.config import Config


def client_settings(config: Config) -> dict:
    return {
        "bootstrap_servers": config.kafka.bootstrap_servers.split(","),
        "client_id": config.kafka.client_id,
        "security_protocol": config.kafka.security_protocol,
        "request_timeout_ms": config.kafka.request_timeout_ms,
    }


def ensure_topics(config: Config, topics: Iterable[str], partitions: int | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns those created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(**client_settings(config))
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in topics if topic not in existing]
        if missing:
            count = partitions or config.services.kafka.num_partitions
            admin.create_topics([NewTopic(topic, count, 1) for topic in missing])
        return missing
    finally:
        admin.close()


def produce_json(config: Config, topic: str, records: Iterable[dict], key_field: str) -> int:
    """Send each record as a JSON message keyed by ``record[key_field]``; waits for every ack."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        **client_settings(config),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    try:
        futures = [
            producer.send(topic, key=str(record[key_field]).encode(), value=json.dumps(record, separators=(",", ":")).encode())
            for record in records
        ]
        producer.flush(timeout=config.kafka.request_timeout_ms / 1000)
        for future in futures:
            future.get(timeout=config.kafka.request_timeout_ms / 1000)  # raises what the broker refused
        return len(futures)
    finally:
        producer.close(timeout=10)
