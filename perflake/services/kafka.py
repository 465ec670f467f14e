"""A single-node Apache Kafka broker in KRaft mode (broker and controller in one JVM).

Data lives in ``<state_dir>/kafka/data`` and is formatted on the first start only, so topics
and offsets survive restarts. The broker is healthy when it answers a metadata request.
"""

from __future__ import annotations

import base64
import uuid

from perflake.config import Config
from perflake.jars import classpath
from perflake.services.process import ManagedProcess, java_command, port_is_open, run_tool

_LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaService:
    name = "kafka"

    def __init__(self, config: Config):
        self.config = config
        self.settings = config.services.kafka
        self.home = config.paths.state_dir / "kafka"
        self.process = ManagedProcess("kafka", config.paths.state_dir / "run", config.paths.state_dir / "logs")

    @property
    def bootstrap(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.port, self.settings.controller_port]

    def server_properties(self) -> str:
        s = self.settings
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{s.host}:{s.controller_port}",
            "listeners": f"PLAINTEXT://{s.host}:{s.port},CONTROLLER://{s.host}:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.host}:{s.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": str(s.num_partitions),
            # topics are created from config (perflake.kafka.ensure_topics): a typo fails loudly
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        return "".join(f"{key}={value}\n" for key, value in properties.items())

    def prepare(self) -> None:
        """Write the broker's config and format its storage on first start."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(self.server_properties())
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        if (self.home / "data" / "meta.properties").is_file():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        run_tool(
            # "=" keeps an id that starts with "-" (1 in 64 of them) from reading as an option
            self._java("kafka.tools.StorageTool")
            + ["format", f"--cluster-id={cluster_id}", "-c", str(self.home / "server.properties")],
            "format Kafka storage",
            self.process.log_file,
        )

    @property
    def processes(self) -> list[tuple[ManagedProcess, str]]:
        return [(self.process, "kafka.Kafka")]

    def command_for(self, main_class: str) -> list[str]:
        return self._java(main_class, heap=self.settings.heap) + [str(self.home / "server.properties")]

    def is_healthy(self) -> bool:
        if not port_is_open(self.settings.host, self.settings.port):
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import RetriableError

        not_ready = (RetriableError, OSError)  # connection refused, timeouts, not ready yet
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        except not_ready:
            return False
        try:
            cluster = admin.describe_cluster()
        except not_ready:
            return False
        finally:
            admin.close()
        return bool(cluster.get("brokers")) and cluster.get("controller_id") is not None

    def describe(self) -> str:
        return f"Kafka broker (KRaft) at {self.bootstrap}, data in {self.home / 'data'}"

    def _java(self, main_class: str, heap: str | None = None) -> list[str]:
        options = ("-XX:+UseG1GC", f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}")
        return java_command(main_class, classpath(self.config, "kafka"), heap, options)
