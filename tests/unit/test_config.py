from pathlib import Path

import pytest

from perflake.config import ConfigError, load_config

CLUSTER_KEYS = {
    "PERFLAKE__SPARK__MASTER": "spark://master:7077",
    "PERFLAKE__KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
    "PERFLAKE__LAKE__ROOT": "hdfs://nn:8020/perflake",
    "PERFLAKE__HDFS__WEBHDFS_URL": "http://nn:9870",
}


def test_local_is_the_default_profile_with_the_lake_on_local_files():
    config = load_config(environ={})
    assert config.profile == "local"
    assert config.spark.master == "local[*]"
    assert config.lake.root == (config.project_dir / "state" / "lake").as_uri()
    assert config.paths.state_dir == config.project_dir / "state"


def test_the_profile_variable_picks_the_profile():
    assert load_config(environ={"PERFLAKE_PROFILE": "hdfs"}).profile == "hdfs"


def test_hdfs_profile_extends_local_and_moves_the_lake():
    local, hdfs = load_config("local", {}), load_config("hdfs", {})
    assert hdfs.lake.root == "hdfs://127.0.0.1:8020/perflake"
    assert hdfs.services.hdfs.managed and not local.services.hdfs.managed
    assert hdfs.kafka == local.kafka and hdfs.spark == local.spark


def test_environment_overrides_are_converted_to_the_key_type():
    config = load_config("local", {"PERFLAKE__SERVICES__KAFKA__PORT": "19999", "PERFLAKE__SPARK__UI_ENABLED": "true"})
    assert config.services.kafka.port == 19999
    assert config.spark.ui_enabled is True


def test_cluster_profile_takes_its_endpoints_from_the_environment():
    config = load_config("cluster", CLUSTER_KEYS)
    assert config.spark.master == "spark://master:7077"
    assert config.spark.shuffle_partitions == 32
    assert not config.services.kafka.managed


@pytest.mark.parametrize("missing", sorted(CLUSTER_KEYS))
def test_a_missing_required_key_is_an_error_naming_it(missing):
    environ = {key: value for key, value in CLUSTER_KEYS.items() if key != missing}
    dotted = missing.removeprefix("PERFLAKE__").lower().replace("__", ".")
    with pytest.raises(ConfigError, match=rf"missing config key {dotted} \(profile cluster\).*{missing}"):
        load_config("cluster", environ)


def test_a_wrongly_typed_value_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="services.kafka.port must be int, got 'ninety'"):
        load_config("local", {"PERFLAKE__SERVICES__KAFKA__PORT": "ninety"})


def test_an_empty_string_is_not_a_value():
    with pytest.raises(ConfigError, match="kafka.bootstrap_servers must be a non-empty string"):
        load_config("local", {"PERFLAKE__KAFKA__BOOTSTRAP_SERVERS": ""})


def test_an_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="unknown config key spark.mastr"):
        load_config("local", {"PERFLAKE__SPARK__MASTR": "local[1]"})


def test_an_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown profile 'prod'.*known profiles: cluster, hdfs, local"):
        load_config("prod", {})


def write_profiles(directory: Path, **profiles: str) -> dict[str, str]:
    base = (Path(__file__).resolve().parents[2] / "conf" / "base.toml").read_text()
    (directory / "base.toml").write_text(base)
    for name, text in profiles.items():
        (directory / f"{name}.toml").write_text(text)
    return {"PERFLAKE_CONF_DIR": str(directory)}


def test_a_profile_that_extends_itself_is_an_error(tmp_path):
    environ = write_profiles(tmp_path, a='extends = "b"\n', b='extends = "a"\n')
    with pytest.raises(ConfigError, match="extends itself through a -> b -> a"):
        load_config("a", environ)


def test_invalid_toml_names_the_file(tmp_path):
    environ = write_profiles(tmp_path, broken="[spark\n")
    with pytest.raises(ConfigError, match=r"broken.toml is not valid TOML"):
        load_config("broken", environ)
