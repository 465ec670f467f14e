"""How the agent's sender hands messages to Kafka: kafka-python (default) or confluent-kafka.

Both produce with acks=all, idempotence and retries, compress batches, and report each
message's outcome through ``on_done(error)`` (None when the broker acknowledged it). They are
used from the sender thread only; callbacks may arrive on the client's own thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from perflake.config import Config, ConfigError
from perflake.kafka import client_settings, security

TRANSPORTS = ("kafka-python", "confluent-kafka")
Callback = Callable[[Exception | None], None]


class Transport(Protocol):
    def send(self, topic: str, key: bytes, value: bytes, on_done: Callback) -> None: ...

    def poll(self) -> None: ...

    def flush(self, timeout_s: float) -> None: ...

    def close(self, timeout_s: float) -> None: ...


class KafkaPythonTransport:
    def __init__(self, config: Config, connect_timeout_s: float):
        from kafka import KafkaProducer

        compression = None if config.agent.compression == "none" else config.agent.compression
        self._producer = KafkaProducer(
            **client_settings(config),
            acks="all",
            enable_idempotence=True,
            compression_type=compression,
            linger_ms=5,
            batch_size=max(16384, config.agent.max_message_bytes),
            max_request_size=config.agent.max_message_bytes * 2,
            bootstrap_timeout_ms=int(connect_timeout_s * 1000),
            max_block_ms=int(connect_timeout_s * 1000),
        )

    def send(self, topic: str, key: bytes, value: bytes, on_done: Callback) -> None:
        future = self._producer.send(topic, key=key, value=value)
        future.add_callback(lambda _metadata: on_done(None))
        future.add_errback(on_done)

    def poll(self) -> None:
        """kafka-python delivers callbacks from its own I/O thread."""

    def flush(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for outstanding sends; what is still open is reported through its callback later."""
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            pass

    def close(self, timeout_s: float) -> None:
        self._producer.close(timeout=timeout_s)


class ConfluentTransport:
    def __init__(self, config: Config, connect_timeout_s: float):
        try:
            from confluent_kafka import Producer
        except ImportError:
            raise ConfigError("agent.transport is confluent-kafka, which is not installed: pip install confluent-kafka") from None
        secure = security(config)
        settings = {
            "bootstrap.servers": config.kafka.bootstrap_servers,
            "client.id": config.kafka.client_id,
            "security.protocol": config.kafka.security_protocol,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": config.agent.compression,
            "linger.ms": 5,
            "message.max.bytes": config.agent.max_message_bytes * 2,
            "socket.connection.setup.timeout.ms": int(connect_timeout_s * 1000),
        }
        names = {"sasl_mechanism": "sasl.mechanism", "sasl_username": "sasl.username", "sasl_password": "sasl.password",
                 "ssl_cafile": "ssl.ca.location"}
        self._producer = Producer(settings | {names[key]: value for key, value in secure.items()})

    def send(self, topic: str, key: bytes, value: bytes, on_done: Callback) -> None:
        def delivered(error, _message) -> None:
            on_done(None if error is None else RuntimeError(str(error)))

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
                return
            except BufferError:  # the client's queue is full: serve callbacks, then retry
                self._producer.poll(0.05)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        self._producer.flush(timeout_s)

    def close(self, timeout_s: float) -> None:
        self._producer.flush(timeout_s)


def connect(config: Config, connect_timeout_s: float) -> Transport:
    """The configured transport, connected (raises when no broker answers in time)."""
    if config.agent.transport == "kafka-python":
        return KafkaPythonTransport(config, connect_timeout_s)
    if config.agent.transport == "confluent-kafka":
        return ConfluentTransport(config, connect_timeout_s)
    raise ConfigError(f"agent.transport is {config.agent.transport!r}; expected one of {', '.join(TRANSPORTS)}")
