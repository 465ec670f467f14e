"""Kafka clients (kafka-python) built from config: topic creation and JSON producing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping

from perflake.config import Config, ConfigError

SECURITY_KEYS = ("sasl_mechanism", "sasl_username", "sasl_password_env", "ssl_cafile")
_JAAS_MODULES = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule"}
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


def security(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``kafka.security`` checked, with the password read from the variable it names."""
    settings = dict(config.kafka.security)
    unknown = sorted(set(settings) - set(SECURITY_KEYS))
    if unknown:
        raise ConfigError(f"unknown config key kafka.security.{unknown[0]}; known: {', '.join(SECURITY_KEYS)}")
    variable = settings.pop("sasl_password_env", None)
    if variable:
        environ = os.environ if environ is None else environ
        if variable not in environ:
            raise ConfigError(f"kafka.security.sasl_password_env names {variable}, which is not set")
        settings["sasl_password"] = environ[variable]
    return settings


def client_settings(config: Config) -> dict:
    """kafka-python settings: servers, identity, timeouts and SASL/TLS."""
    secure = security(config)
    settings = {
        "bootstrap_servers": config.kafka.bootstrap_servers.split(","),
        "client_id": config.kafka.client_id,
        "security_protocol": config.kafka.security_protocol,
        "request_timeout_ms": config.kafka.request_timeout_ms,
    }
    names = {"sasl_mechanism": "sasl_mechanism", "sasl_username": "sasl_plain_username", "sasl_password": "sasl_plain_password",
             "ssl_cafile": "ssl_cafile"}
    return settings | {names[key]: value for key, value in secure.items()}


def spark_options(config: Config) -> dict[str, str]:
    """The same connection for Spark's Kafka source (Java client property names)."""
    secure = security(config)
    options = {"kafka.bootstrap.servers": config.kafka.bootstrap_servers,
               "kafka.security.protocol": config.kafka.security_protocol}
    if "sasl_mechanism" in secure:
        mechanism = secure["sasl_mechanism"]
        module = _JAAS_MODULES.get(mechanism, _SCRAM_MODULE)
        options["kafka.sasl.mechanism"] = mechanism
        options["kafka.sasl.jaas.config"] = (
            f'{module} required username="{secure.get("sasl_username", "")}" password="{secure.get("sasl_password", "")}";'
        )
    if "ssl_cafile" in secure:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = secure["ssl_cafile"]
    return options


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


def events_by_topic(config: Config, contracts: dict, events: Iterable[dict]) -> dict[str, list[dict]]:
    """Envelopes grouped by their family's topic; an event of no known contract is refused."""
    by_topic: dict[str, list[dict]] = {}
    for event in events:
        contract = contracts.get((event["event_type"], event["schema_version"]))
        if contract is None:
            raise ValueError(f"no contract for event type {event['event_type']} version {event['schema_version']}")
        by_topic.setdefault(config.topic(contract.family), []).append(event)
    return by_topic


def produce_events(config: Config, contracts: dict, events: Iterable[dict]) -> dict[str, int]:
    """Send envelopes to their family's topic, keyed by event_id; returns the count per topic."""
    by_topic = events_by_topic(config, contracts, events)
    return {topic: produce_json(config, topic, batch, "event_id") for topic, batch in by_topic.items()}


def consume_events(config: Config, keep: Callable[[dict], bool], expected: int, timeout_s: float = 60) -> list[dict]:
    """Every copy of the events on the config's topics that ``keep`` accepts (messages hold one
    envelope or a batch; anything that is not an envelope, such as the smoke test's rows or
    bytes that are not JSON, is skipped), read until ``expected`` distinct ones arrived and a second passed."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(*config.kafka.topics.values(), **client_settings(config), auto_offset_reset="earliest",
                             enable_auto_commit=False)
    events: list[dict] = []
    ids: set[str] = set()
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    try:
        while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    try:
                        body = json.loads(record.value)
                    except ValueError:  # not JSON: not an envelope either
                        continue
                    items = body if isinstance(body, list) else [body]
                    found = [item for item in items if isinstance(item, dict) and "source" in item and keep(item)]
                    events += found
                    ids.update(event["event_id"] for event in found)
            if quiet_until is None and len(ids) >= expected:
                quiet_until = time.monotonic() + 1  # anything more (a duplicate) would have arrived by now
    finally:
        consumer.close()
    return events
