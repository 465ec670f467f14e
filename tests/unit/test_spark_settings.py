from pathlib import Path

from perflake.config import load_config
from perflake.spark import spark_conf, spark_submit_command
from tests.unit.test_config import CLUSTER_KEYS


def test_every_session_gets_delta_the_jars_and_utc():
    conf = spark_conf(load_config("local", {}))
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    jars = [Path(jar).name for jar in conf["spark.jars"].split(",")]
    assert any(jar.startswith("delta-spark_4.2_2.13-") for jar in jars)
    assert any(jar.startswith("spark-sql-kafka-0-10_2.13-") for jar in jars)
    assert all(Path(jar).is_file() for jar in conf["spark.jars"].split(","))


def test_profile_extras_override_the_defaults():
    conf = spark_conf(load_config("cluster", CLUSTER_KEYS))
    assert conf["spark.master"] == "spark://master:7077"
    assert conf["spark.sql.shuffle.partitions"] == "32"
    assert conf["spark.databricks.delta.snapshotPartitions"] == "32"


def test_spark_submit_gets_the_same_settings_as_a_session():
    config = load_config("local", {})
    command = spark_submit_command(config, Path("jobs/smoke_ingest.py"), ["--x"])
    assert command[0].endswith("spark-submit")
    pairs = dict(item.split("=", 1) for item in command[2:-2:2])
    assert pairs == spark_conf(config)
    assert command[-2:] == ["jobs/smoke_ingest.py", "--x"]
