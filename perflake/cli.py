"""The ``perflake`` command. Each sub-command parses its arguments and calls the package.

    perflake setup                      check Java/Maven, resolve the JVM jars (cached)
    perflake services up|down|status    local Kafka broker (and HDFS with --with-hdfs)
    perflake run                        the main job: services up, then the pipeline end to end
    perflake submit JOB [ARGS]          spark-submit a job with the profile's settings
    perflake config                     print the resolved configuration

PERFLAKE_PROFILE picks the profile in conf/ (default: local).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

from perflake.config import ConfigError, get_config
from perflake.jars import JarsError
from perflake.services.process import ServiceError

DEFAULT_SMOKE_EVENTS = 1000


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, JarsError, ServiceError) as error:
        print(f"perflake: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("perflake: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perflake", description="The performance lakehouse of ALL-USE.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    setup = commands.add_parser("setup", help="check Java and Maven, resolve the JVM jars once")
    setup.add_argument("--force", action="store_true", help="resolve again even if the poms did not change")
    setup.set_defaults(handler=cmd_setup)

    services = commands.add_parser("services", help="start, stop or inspect the local Kafka broker and HDFS")
    services.add_argument("action", choices=["up", "down", "status"])
    services.add_argument("--with-hdfs", action="store_true", help="also HDFS (the hdfs profile always starts it)")
    services.set_defaults(handler=cmd_services)

    run = commands.add_parser("run", help="main job: start the services, run the pipeline end to end, show results")
    run.add_argument("--events", type=_positive_int, default=DEFAULT_SMOKE_EVENTS, help="events to produce (default %(default)s)")
    run.set_defaults(handler=cmd_run)

    submit = commands.add_parser("submit", help="spark-submit a job with the profile's Spark settings")
    submit.add_argument("--print", dest="print_only", action="store_true", help="print the command instead of running it")
    submit.add_argument("job", type=Path, help="for example jobs/smoke_ingest.py")
    submit.add_argument("job_args", nargs=argparse.REMAINDER)
    submit.set_defaults(handler=cmd_submit)

    config = commands.add_parser("config", help="print the resolved configuration of the active profile")
    config.set_defaults(handler=cmd_config)
    return parser


def cmd_setup(args: argparse.Namespace) -> int:
    from perflake.jars import COMPONENTS, component_jars, resolve_jars
    from perflake.services.process import java_executable

    config = get_config()
    java = java_executable()
    version = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr.splitlines()[0]
    print(f"java: {java} ({version})")
    started = time.monotonic()
    if resolve_jars(config, force=args.force):
        print(f"resolved JVM jars with Maven in {time.monotonic() - started:.0f}s")
    for component in COMPONENTS:
        print(f"{component}: {len(component_jars(config, component))} jars in {config.paths.jars_dir / component}")
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    from perflake import services

    config = get_config()
    if args.action == "up":
        if not services.wanted_services(config, args.with_hdfs):
            print(f"profile {config.profile} manages no services (Kafka at {config.kafka.bootstrap_servers} is external)")
            return 0
        services.up(config, with_hdfs=args.with_hdfs)
        print(f"logs: {config.paths.state_dir / 'logs'}")
    elif args.action == "down":
        services.down(config)
    else:
        statuses = services.status(config)
        for item in statuses:
            print(f"{item.name:6} {item.state:8} {item.detail}")
        return 1 if any(item.state == "dead" for item in statuses) else 0
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from perflake import services, smoke
    from perflake.lake import list_webhdfs
    from perflake.spark import get_spark

    config = get_config()
    print(f"perflake main job -- profile {config.profile}, lake at {config.lake.root}")
    started = services.up(config)
    try:
        step = time.monotonic()
        print("starting Spark ...")
        spark = get_spark(config, app_name="perflake-run")
        print(f"Spark {spark.version} ({config.spark.master}) ready in {time.monotonic() - step:.0f}s")
        step = time.monotonic()
        result = smoke.run_smoke(spark, config, args.events)
        print(
            f"streamed run {result.run_id}: {result.landed} of {result.produced} events landed in "
            f"{smoke.LAYER}.{smoke.TABLE} in {time.monotonic() - step:.1f}s; the table now holds {result.table_rows} rows"
        )
        print(f"table: {result.table_path}")
        if result.table_path.startswith("hdfs://"):
            files = list_webhdfs(config, result.table_path)
            print(f"on HDFS (listed through WebHDFS): {len(files)} files, {sum(size for _, size in files)} bytes")
        spark.stop()
    except KeyboardInterrupt:
        if started:
            print(f"interrupted: stopping what this run started ({', '.join(started)})", file=sys.stderr)
            services.down(config, only=started)
        raise
    if result.landed != result.produced:
        print(f"perflake: error: {result.produced - result.landed} events did not land", file=sys.stderr)
        return 1
    print("services keep running for queries; stop them with `perflake services down`")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from perflake.spark import spark_submit_command

    if not args.job.is_file():
        raise ConfigError(f"no job file {args.job}")
    command = spark_submit_command(get_config(), args.job, args.job_args)
    if args.print_only:
        print(" ".join(command))
        return 0
    return subprocess.run(command).returncode


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(dataclasses.asdict(get_config()), indent=2, default=str))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
