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


def produce(config: Config, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Send (key, value) byte pairs; returns once the broker acknowledged every one (acks=all)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**client_settings(config), acks="all", enable_idempotence=True, linger_ms=5)
    timeout_s = config.kafka.request_timeout_ms / 1000
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in messages]
        producer.flush(timeout=timeout_s)
        for future in futures:
            future.get(timeout=timeout_s)  # raises what the broker refused
        return len(futures)
    finally:
        producer.close(timeout=10)


def encode_json(record: dict) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def produce_json(config: Config, topic: str, records: Iterable[dict], key_field: str) -> int:
    """Send each record as a JSON message keyed by ``record[key_field]``."""
    return produce(config, topic, ((str(record[key_field]).encode(), encode_json(record)) for record in records))


def produce_events(config: Config, contracts: dict, events: Iterable[dict]) -> dict[str, int]:
    """Send envelopes to their family's topic, keyed by event_id; returns the count per topic."""
    by_topic: dict[str, list[dict]] = {}
    for event in events:
        contract = contracts.get((event["event_type"], event["schema_version"]))
        if contract is None:
            raise ValueError(f"no contract for event type {event['event_type']} version {event['schema_version']}")
        by_topic.setdefault(config.topic(contract.family), []).append(event)
    return {topic: produce_json(config, topic, batch, "event_id") for topic, batch in by_topic.items()}
