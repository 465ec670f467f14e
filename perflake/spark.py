"""The Spark session factory every job, test, notebook and DAG uses.

``spark_conf`` is the single list of settings; ``get_spark`` builds a session from it when
Python starts the JVM, and ``spark_submit_command`` passes the same settings to
``spark-submit`` (whose JVM is started before any Python code runs, so the jars must be on
its command line).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from perflake.config import Config, get_config
from perflake.jars import component_jars


def spark_conf(config: Config) -> dict[str, str]:
    """All Spark settings for this profile, as spark-submit --conf pairs."""
    jars = [str(jar) for jar in component_jars(config, "spark")]
    conf = {
        "spark.master": config.spark.master,
        "spark.app.name": config.spark.app_name,
        "spark.jars": ",".join(jars),  # shipped to executors
        # and on the driver JVM's own class path: the Thrift server and the Hive client load
        # the Delta catalog and JDBC drivers through loaders that do not see spark.jars
        "spark.driver.extraClassPath": os.pathsep.join(jars + metastore_driver_jars(config)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        "spark.driver.memory": config.spark.driver_memory,
        "spark.ui.enabled": str(config.spark.ui_enabled).lower(),
        "spark.sql.warehouse.dir": f"{config.lake.root}/_warehouse",
        # executors must run the same Python as the driver (a venv, not the system one)
        "spark.pyspark.python": sys.executable,
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={config.project_dir / 'conf' / 'log4j2.properties'}",
    }
    conf.update(metastore_conf(config))
    conf.update(config.spark.extra_conf)
    return conf


def metastore_conf(config: Config) -> dict[str, str]:
    """The Hive catalog that lets every Spark process query tables by name."""
    if not config.metastore.enabled:
        return {}
    conf = {"spark.sql.catalogImplementation": "hive"}
    if config.metastore.managed:
        m = config.metastore
        conf.update(
            {
                "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby://{m.host}:{m.port}/metastore_db;create=true",
                "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.ClientDriver",
                "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
                "spark.hadoop.hive.metastore.schema.verification": "false",
            }
        )
    return conf


def metastore_driver_jars(config: Config) -> list[str]:
    """The metastore database's JDBC driver, when perflake runs that database."""
    if not (config.metastore.enabled and config.metastore.managed):
        return []
    return [str(jar) for jar in component_jars(config, "metastore") if jar.name.startswith("derbyclient")]


def get_spark(config: Config | None = None, app_name: str | None = None, extra_conf: Mapping[str, str] | None = None):
    """The active SparkSession, or a new one configured for the profile (plus ``extra_conf``,
    which a running session ignores: settings of its SparkContext are fixed at its start)."""
    from pyspark.sql import SparkSession

    config = config or get_config()
    settings = {**spark_conf(config), **(extra_conf or {})}
    # an in-process session (notebooks, tests) starts its Python workers from PYSPARK_PYTHON only
    os.environ.setdefault("PYSPARK_PYTHON", settings["spark.pyspark.python"])
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    if app_name:
        builder = builder.appName(app_name)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(config.spark.log_level)
    return session


def spark_command(config: Config, executable: str, tail: list[str]) -> list[str]:
    """A Spark launcher (spark-submit, spark-sql) with this profile's settings, then ``tail``."""
    command = [spark_executable(executable)]
    for key, value in spark_conf(config).items():
        command += ["--conf", f"{key}={value}"]
    return command + tail


def spark_submit_command(config: Config, script: Path, args: list[str]) -> list[str]:
    """The spark-submit command line that runs ``script`` with this profile's settings."""
    return spark_command(config, "spark-submit", [str(script), *args])


def spark_executable(name: str = "spark-submit") -> str:
    """A launcher script of the installed pyspark (the same Spark version as the jars)."""
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / name)
