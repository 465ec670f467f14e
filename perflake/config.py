"""One typed configuration, chosen by one variable.

``PERFLAKE_PROFILE`` names a profile in ``conf/`` (default ``local``). The profile file
holds only its differences from ``conf/base.toml`` and may ``extends`` another profile.
Any key can then be overridden from the environment as ``PERFLAKE__<SECTION>__<KEY>``
(nested sections add more ``__`` parts). A missing, unknown or mistyped key is a
``ConfigError`` that names it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path

PROFILE_VARIABLE = "PERFLAKE_PROFILE"
CONF_DIR_VARIABLE = "PERFLAKE_CONF_DIR"
OVERRIDE_PREFIX = "PERFLAKE__"
DEFAULT_PROFILE = "local"
BASE_PROFILE = "base"
_PROJECT_DIR = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration key is missing, unknown or has the wrong type."""


@dataclasses.dataclass(frozen=True)
class PathsConfig:
    state_dir: Path
    jars_dir: Path


@dataclasses.dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str
    client_id: str
    security_protocol: str
    request_timeout_ms: int
    topics: dict[str, str]
    security: dict[str, str]


@dataclasses.dataclass(frozen=True)
class SparkConfig:
    master: str
    app_name: str
    shuffle_partitions: int
    driver_memory: str
    ui_enabled: bool
    log_level: str
    extra_conf: dict[str, str]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    trigger_interval_s: float
    max_offsets_per_trigger: int
    late_after_s: float
    max_future_s: float
    max_event_bytes: int
    percentile_accuracy: int
    trading_timezone: str
    drivers: str


@dataclasses.dataclass(frozen=True)
class LakeConfig:
    root: str


@dataclasses.dataclass(frozen=True)
class HdfsConfig:
    webhdfs_url: str
    webhdfs_user: str


@dataclasses.dataclass(frozen=True)
class MetastoreConfig:
    enabled: bool
    managed: bool
    host: str
    port: int
    thrift_port: int


@dataclasses.dataclass(frozen=True)
class KafkaServiceConfig:
    managed: bool
    host: str
    port: int
    controller_port: int
    heap: str
    num_partitions: int


@dataclasses.dataclass(frozen=True)
class HdfsServiceConfig:
    managed: bool
    host: str
    namenode_rpc_port: int
    namenode_http_port: int
    datanode_port: int
    datanode_http_port: int
    datanode_ipc_port: int
    heap: str


@dataclasses.dataclass(frozen=True)
class ServicesConfig:
    start_timeout_s: float
    stop_timeout_s: float
    kafka: KafkaServiceConfig
    hdfs: HdfsServiceConfig


@dataclasses.dataclass(frozen=True)
class SpoolConfig:
    dir: Path
    max_bytes: int
    segment_bytes: int
    full_policy: str
    fsync_interval_ms: int


@dataclasses.dataclass(frozen=True)
class HostAgentConfig:
    collectors: dict[str, str]
    top_processes: int


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    strict: bool
    transport: str
    compression: str
    queue_capacity: int
    linger_ms: int
    max_message_bytes: int
    report_interval_s: float
    ack_timeout_s: float
    shutdown_timeout_s: float
    static_tags: dict[str, str]
    sampling: dict[str, str]
    spool: SpoolConfig
    host: HostAgentConfig


@dataclasses.dataclass(frozen=True)
class MlConfig:
    tracking_uri: str
    artifact_root: str
    experiment: str
    model_prefix: str
    reference_data_dir: Path


@dataclasses.dataclass(frozen=True)
class Config:
    profile: str
    project_dir: Path
    paths: PathsConfig
    kafka: KafkaConfig
    spark: SparkConfig
    lake: LakeConfig
    pipeline: PipelineConfig
    hdfs: HdfsConfig
    metastore: MetastoreConfig
    services: ServicesConfig
    agent: AgentConfig
    ml: MlConfig

    def topic(self, name: str) -> str:
        """The Kafka topic configured under ``kafka.topics.<name>``."""
        try:
            return self.kafka.topics[name]
        except KeyError:
            raise ConfigError(f"missing config key kafka.topics.{name} (profile {self.profile})") from None


def conf_dir() -> Path:
    return Path(os.environ.get(CONF_DIR_VARIABLE, _PROJECT_DIR / "conf"))


def load_config(profile: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read base + profile (+ what it extends) + environment overrides into a ``Config``."""
    environ = os.environ if environ is None else environ
    profile = profile or environ.get(PROFILE_VARIABLE) or DEFAULT_PROFILE
    directory = Path(environ.get(CONF_DIR_VARIABLE, conf_dir()))
    merged = _merge(_read_profile(directory, BASE_PROFILE), _read_profile_chain(directory, profile, ()))
    _apply_overrides(merged, environ)
    project_dir = directory.resolve().parent
    values = _build(Config, {**merged, "profile": profile, "project_dir": project_dir}, "", profile)
    return _resolve_paths(values, project_dir)


@functools.lru_cache(maxsize=1)
def get_config() -> Config:
    """The process-wide configuration, loaded once from the environment."""
    return load_config()


def _read_profile(directory: Path, name: str) -> dict:
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.toml") if p.stem != BASE_PROFILE)
        raise ConfigError(f"unknown profile {name!r}: no {path} (known profiles: {', '.join(known)})")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def _read_profile_chain(directory: Path, name: str, seen: tuple[str, ...]) -> dict:
    if name in seen:
        raise ConfigError(f"profile {name!r} extends itself through {' -> '.join(seen + (name,))}")
    values = _read_profile(directory, name)
    parent = values.pop("extends", None)
    if parent is None:
        return values
    return _merge(_read_profile_chain(directory, parent, seen + (name,)), values)


def _merge(base: dict, overlay: dict) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_overrides(values: dict, environ: Mapping[str, str]) -> None:
    for variable, raw in environ.items():
        if not variable.startswith(OVERRIDE_PREFIX):
            continue
        parts = [part.lower() for part in variable[len(OVERRIDE_PREFIX):].split("__")]
        node = values
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{variable} overrides inside {part!r}, which is not a section")
        node[parts[-1]] = raw  # still a string: _build converts it to the field's type


def _build(cls: type, values: dict, prefix: str, profile: str):
    if not isinstance(values, dict):
        raise ConfigError(f"config key {prefix.rstrip('.')} must be a section (profile {profile})")
    hints = typing.get_type_hints(cls)
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]} (profile {profile})")
    kwargs = {}
    for name in names:
        key = f"{prefix}{name}"
        if name not in values and dataclasses.is_dataclass(hints[name]):
            values = {**values, name: {}}  # a missing section: name its first missing key
        if name not in values:
            raise ConfigError(
                f"missing config key {key} (profile {profile}): set it in conf/{profile}.toml "
                f"or as {OVERRIDE_PREFIX}{key.upper().replace('.', '__')}"
            )
        kwargs[name] = _convert(hints[name], values[name], key, profile)
    return cls(**kwargs)


def _convert(hint, value, key: str, profile: str):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", profile)
    origin = typing.get_origin(hint)
    if origin is dict:
        if isinstance(value, str):
            value = _parse_json(value, key, profile)
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key} must be a table, got {value!r} (profile {profile})")
        return {str(k): str(v) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
    elif hint in (int, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return hint(value)
        if isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                pass
    elif hint in (str, Path):
        if isinstance(value, (str, Path)) and str(value):
            return hint(value)
        raise ConfigError(f"config key {key} must be a non-empty string, got {value!r} (profile {profile})")
    raise ConfigError(f"config key {key} must be {hint.__name__}, got {value!r} (profile {profile})")


def _parse_json(raw: str, key: str, profile: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"config key {key} override is not JSON: {error} (profile {profile})") from None


def _resolve_paths(config: Config, project_dir: Path) -> Config:
    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else (project_dir / path)

    paths = dataclasses.replace(
        config.paths,
        state_dir=absolute(config.paths.state_dir),
        jars_dir=absolute(config.paths.jars_dir),
    )
    root = config.lake.root
    if "://" not in root:
        root = absolute(Path(root)).as_uri()
    spool_dir = config.agent.spool.dir if config.agent.spool.dir.is_absolute() else paths.state_dir / config.agent.spool.dir
    agent = dataclasses.replace(config.agent, spool=dataclasses.replace(config.agent.spool, dir=spool_dir))
    return dataclasses.replace(config, paths=paths, lake=LakeConfig(root=root.rstrip("/")), agent=agent,
                               ml=_resolve_ml(config.ml, paths.state_dir, absolute))


def _resolve_ml(ml: MlConfig, state_dir: Path, absolute: typing.Callable[[Path], Path]) -> MlConfig:
    """A tracking store or artifact root without a scheme is a path under the state folder (sqlite, files)."""
    def under_state(value: str) -> Path:
        return Path(value) if Path(value).is_absolute() else state_dir / value

    tracking = ml.tracking_uri if "://" in ml.tracking_uri else f"sqlite:///{under_state(ml.tracking_uri)}"
    artifacts = ml.artifact_root if "://" in ml.artifact_root else under_state(ml.artifact_root).as_uri()
    return dataclasses.replace(ml, tracking_uri=tracking, artifact_root=artifacts,
                               reference_data_dir=absolute(ml.reference_data_dir))
