"""SQL on the lake by name: the spark-sql CLI and the Spark Thrift server (JDBC/ODBC, beeline),
both with the profile's settings and the shared metastore, so ``SELECT ... FROM gold.<table>``
works from either while the streams write."""

from __future__ import annotations

from perflake.config import Config
from perflake.services.process import ManagedProcess, ServiceError, port_is_open, wait_for
from perflake.spark import spark_command, spark_executable

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


def require_metastore(config: Config) -> None:
    if not config.metastore.enabled:
        raise ServiceError(f"profile {config.profile} has no metastore (metastore.enabled = false): "
                           "tables have no names to query")


def spark_sql_command(config: Config, args: list[str]) -> list[str]:
    require_metastore(config)
    return spark_command(config, "spark-sql", args)


def thrift_server(config: Config) -> ManagedProcess:
    return ManagedProcess("sql-server", config.paths.state_dir / "run", config.paths.state_dir / "logs")


def jdbc_url(config: Config) -> str:
    return f"jdbc:hive2://{config.metastore.host}:{config.metastore.thrift_port}/default"


def start_thrift_server(config: Config, timeout_s: float = 180) -> bool:
    """Start the Thrift server unless it runs; returns once it accepts connections."""
    require_metastore(config)
    server = thrift_server(config)
    if server.is_running():
        return False
    if port_is_open(config.metastore.host, config.metastore.thrift_port):
        raise ServiceError(f"port {config.metastore.thrift_port} (metastore.thrift_port) is taken by another process")
    hive = [f"hive.server2.thrift.port={config.metastore.thrift_port}", f"hive.server2.thrift.bind.host={config.metastore.host}"]
    tail = ["--class", THRIFT_SERVER_CLASS, "--name", "perflake-sql-server", "spark-internal"]
    server.start(spark_command(config, "spark-submit", tail + [arg for item in hive for arg in ("--hiveconf", item)]))
    try:
        wait_for(lambda: port_is_open(config.metastore.host, config.metastore.thrift_port), timeout_s, "the Spark Thrift server",
                 server.is_running)
    except ServiceError as error:
        server.stop(30)
        raise ServiceError(f"{error}; last lines of {server.log_file}:\n{server.log_tail()}") from None
    return True


def beeline_command(config: Config, query: str) -> list[str]:
    return [spark_executable("beeline"), "-u", jdbc_url(config), "--silent=true", "--outputformat=csv2", "-e", query]
