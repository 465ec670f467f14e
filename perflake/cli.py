"""The ``perflake`` command. Each sub-command parses its arguments and calls the package.

    perflake setup                      check Java/Maven, resolve the JVM jars (cached)
    perflake services up|down|status    local Kafka broker (and HDFS with --with-hdfs)
    perflake run                        the main job: services and streams up, sample traffic fed, gold shown
    perflake pipeline start|stop|status the bronze, silver and gold streams as background processes
    perflake agent run|start|stop|status the host agent (system metrics), foreground or as a service
    perflake agent load FILE            the batch collector: a snapshot file's rows as business events
    perflake simulate                   the ALL-USE workload with labelled anomalies, through the agents
    perflake smoke                      platform self-test: Kafka -> Spark -> Delta
    perflake evaluate nab-score|run|chart|train|score|patterns
                                        anomaly detectors: NAB scoring, evaluation, charts, MLflow registry;
                                        recurring behaviour of a metric file
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
DEFAULT_RUN_EVENTS = 20000
DEFAULT_RUN_RATE = 1000
DATA_DIR_HELP = "labelled series laid out like NAB's or SMD's reference copy (default <ml.reference_data_dir>/<dataset>)"


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every failed connection attempt; the agent says once that it spools
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "sql":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.passthrough = extra
    try:
        return args.handler(args)
    except (ConfigError, JarsError, ServiceError) as error:
        return _refused(str(error))
    except KeyboardInterrupt:
        print("perflake: interrupted", file=sys.stderr)
        return 130


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given the ``argv`` it will parse, the parser of ``evaluate``'s actions only when that
    is the command: their options read the detector registry, whose numpy and pandas would cost every other command
    about 0.4 s and 100 MB (the host agent runs as ``perflake agent run``)."""
    parser = argparse.ArgumentParser(prog="perflake", description="The performance lakehouse of ALL-USE.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    setup = commands.add_parser("setup", help="check Java and Maven, resolve the JVM jars once")
    setup.add_argument("--force", action="store_true", help="resolve again even if the poms did not change")
    setup.set_defaults(handler=cmd_setup)

    services = commands.add_parser("services", help="start, stop or inspect the local Kafka broker and HDFS")
    services.add_argument("action", choices=["up", "down", "status"])
    services.add_argument("--with-hdfs", action="store_true", help="also HDFS (the hdfs profile always starts it)")
    services.set_defaults(handler=cmd_services)

    run = commands.add_parser("run", help="main job: services and pipeline up, feed sample traffic, show gold filling up")
    run.add_argument("--events", type=_positive_int, default=DEFAULT_RUN_EVENTS, help="events to feed (default %(default)s)")
    run.add_argument("--rate", type=_positive_int, default=DEFAULT_RUN_RATE, help="events per second (default %(default)s)")
    run.add_argument("--timeout", type=_positive_int, default=600,
                     help="seconds to wait for gold to catch up (default %(default)s)")
    run.add_argument("--start", type=_utc_time, help="simulated start, ISO time, UTC if no offset (default now; e.g. a session's "
                     "open, 2026-11-23T14:30, to see trading tables filled outside trading hours)")
    run.set_defaults(handler=cmd_run)

    pipeline = commands.add_parser("pipeline",
                                   help="start, stop or inspect the bronze, silver and gold streams (background processes)")
    pipeline.add_argument("action", choices=["start", "stop", "status"])
    pipeline.set_defaults(handler=cmd_pipeline)

    reconcile = commands.add_parser("reconcile", help="check that every message of a time range is accounted for in each layer")
    reconcile.add_argument("--since", type=_utc_time, help="ISO time, UTC if no offset (default: an hour before --until)")
    reconcile.add_argument("--until", type=_utc_time, help="ISO time, UTC if no offset (default: now)")
    reconcile.set_defaults(handler=cmd_reconcile)

    sql = commands.add_parser("sql", help="the spark-sql shell on the lake's tables (bronze., silver., gold.<table>)")
    sql.description = "Any further arguments go to spark-sql, e.g. perflake sql -e 'SELECT * FROM gold.metric_rollups_1m LIMIT 5'"
    sql.set_defaults(handler=cmd_sql)

    query = commands.add_parser("query", help="one SQL query on the lake's tables by name, without Spark (dashboards, scripts)")
    query.add_argument("sql", help="DataFusion's SQL dialect, e.g. \"SELECT * FROM gold.metric_rollups_1m LIMIT 5\"")
    query.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    query.set_defaults(handler=cmd_query)

    sql_server = commands.add_parser("sql-server", help="the Spark Thrift server: JDBC/ODBC and beeline on the lake's tables")
    sql_server.add_argument("action", choices=["start", "stop", "status"])
    sql_server.set_defaults(handler=cmd_sql_server)

    agent = commands.add_parser("agent", help="the host agent (run, start, stop, status) and the batch collector (load)")
    agent.add_argument("action", choices=["run", "start", "stop", "status", "load"])
    agent.add_argument("file", nargs="?", type=Path, help="load: the CSV file of snapshots")
    agent.add_argument("--event-type", default="account_snapshot", help="load: the rows' event type (default %(default)s)")
    agent.add_argument("--service", default="ws3-account-management",
                       help="load: the service the rows come from (default %(default)s)")
    agent.add_argument("--at-column", default="event_at", help="load: the column with each row's ISO time (default %(default)s)")
    agent.add_argument("--force", action="store_true", help="load: send a file again although it was loaded before")
    agent.set_defaults(handler=cmd_agent)

    simulate = commands.add_parser("simulate", help="drive the ALL-USE workload through the agents, with labelled anomalies")
    simulate.add_argument("--start", type=_utc_time, help="simulated start, ISO time, UTC if no offset (default: now)")
    simulate.add_argument("--duration", type=_duration, default=_duration("10m"),
                          help="simulated time, e.g. 90s, 30m, 6h, 5d (default 10m)")
    simulate.add_argument("--rate", type=_positive_int, default=200,
                          help="mean events per simulated second (default %(default)s)")
    simulate.add_argument("--speed", type=float, default=1.0,
                          help="simulated seconds per wall second; 0: as fast as possible (default 1)")
    simulate.add_argument("--seed", type=int, default=0, help="the same seed gives the same workload and labels (default 0)")
    simulate.add_argument("--anomalies", type=int, default=8, help="anomalies to inject (default %(default)s, one of each kind)")
    simulate.add_argument("--labels", type=Path, help="labels CSV (default <state>/simulator/labels-<seed>.csv)")
    simulate.set_defaults(handler=cmd_simulate)

    evaluate = commands.add_parser("evaluate",
                                   help="anomaly detectors: score NAB outputs, evaluate, chart results, train and register, "
                                   "score a file; what recurs in one")
    if argv is None or _command_of(argv) == "evaluate":
        _add_evaluate_actions(evaluate)

    smoke = commands.add_parser("smoke", help="platform self-test: Kafka -> Spark -> Delta with a throw-away table")
    smoke.add_argument("--events", type=_positive_int, default=DEFAULT_SMOKE_EVENTS,
                       help="events to produce (default %(default)s)")
    smoke.set_defaults(handler=cmd_smoke)

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


def cmd_agent(args: argparse.Namespace) -> int:
    from perflake.agent import host

    config = get_config()
    process = host_agent_process(config)
    if args.action == "run":
        import signal
        import threading

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        host.run(config, stop, say=lambda line: print(line, flush=True))
    elif args.action == "start":
        if process.is_running():
            print(f"host agent already running (pid {process.pid()})")
        else:
            process.start([sys.executable, "-m", "perflake.cli", "agent", "run"])
            print(f"host agent started (pid {process.pid()}); log {process.log_file}")
    elif args.action == "stop":
        print("host agent stopped" if process.stop(config.agent.shutdown_timeout_s + 10) else "host agent was not running")
    elif args.action == "status":
        print(f"host agent {process.state()} (log {process.log_file})")
        return 1 if process.state() == "dead" else 0
    else:
        return load_batch(config, args)
    return 0


def host_agent_process(config):
    from perflake.services.process import ManagedProcess

    return ManagedProcess("host-agent", config.paths.state_dir / "run", config.paths.state_dir / "logs")


def load_batch(config, args: argparse.Namespace) -> int:
    from perflake.agent import Agent
    from perflake.agent.batch import BatchError, load_file, mark_loaded

    if args.file is None or not args.file.is_file():
        return _refused(f"agent load needs an existing CSV file, got {args.file}")
    agent = Agent(args.service, config)
    try:
        result = load_file(args.file, args.event_type, agent, at_column=args.at_column, force=args.force)
    except BatchError as error:
        return _refused(str(error))
    finally:
        agent.close()
    mark_loaded(config, result, args.event_type)
    stats = agent.stats()
    where = "sent to Kafka" if not stats["spool_bytes"] else f"spooled in {agent.spool.directory} until Kafka is back"
    print(f"{result.events} {args.event_type} events from {args.file}: {where}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from perflake.simulator import simulate
    from perflake.simulator.workload import Workload

    config = get_config()
    start = (args.start or datetime.now(timezone.utc)).timestamp()
    workload = Workload(start, args.duration, args.rate, args.seed, args.anomalies, config.pipeline.trading_timezone)
    labels = args.labels or config.paths.state_dir / "simulator" / f"labels-{args.seed}.csv"
    print(f"simulating {args.duration:.0f}s from {datetime.fromtimestamp(start, timezone.utc).isoformat()} "
          f"at ~{args.rate} events/s, {len(workload.anomalies)} anomalies (labels: {labels})")

    def progress(summary, at: float) -> None:
        print(f"  at {datetime.fromtimestamp(at, timezone.utc):%Y-%m-%d %H:%M:%S}Z: {summary.total} events "
              f"({summary.total / max(summary.simulated_s, 1):.0f}/simulated s)", flush=True)

    summary = simulate(config, workload, labels, speed=args.speed, on_progress=progress)
    print(f"done: {summary.total} events in {summary.wall_s:.1f}s wall ({dict(summary.events.most_common())})")
    return 0


def _command_of(argv: list[str]) -> str | None:
    """The command ``argv`` names: its first argument that is not an option (the top level's only option is --help)."""
    return next((argument for argument in argv if not argument.startswith("-")), None)


def _add_evaluate_actions(evaluate: argparse.ArgumentParser) -> None:
    actions = evaluate.add_subparsers(dest="action", required=True, metavar="ACTION")
    nab_score = actions.add_parser("nab-score",
                                   help="the three NAB profile scores of a folder of detector outputs (NAB's layout)")
    nab_score.add_argument("results_dir", type=Path, help="e.g. ../shared/data/nab/reference_detectors/numenta")
    nab_score.add_argument("--thresholds", type=Path, help="NAB thresholds.json to use (default: NAB's optimum on the corpus)")
    nab_score.add_argument("--nab-dir", type=Path, help="the NAB corpus (default <ml.reference_data_dir>/nab)")
    nab_score.set_defaults(handler=cmd_evaluate_nab_score)
    run_eval = actions.add_parser("run",
                                  help="evaluate detectors and the null/random baselines on a labelled data set; logs to MLflow")
    run_eval.add_argument("--dataset", required=True, choices=_dataset_names())
    run_eval.add_argument("--detector", required=True, type=detector_list,
                          help=f"comma-separated, or all ({', '.join(_detector_names())})")
    run_eval.add_argument("--protocol", default="fixed,cross_fit", type=protocol_list,
                          help="threshold protocols, comma-separated: fixed (level 4), cross_fit, nab, or level:X for "
                          "another level given for every series, e.g. level:3,level:5 (default %(default)s)")
    run_eval.add_argument("--refractory-rows", type=int, default=_default_refractory_rows(),
                          help="an alert must beat the levels of this many rows before it (default %(default)s)")
    run_eval.add_argument("--refit-every", type=period, metavar="PERIOD",
                          help="retrain each detector on this schedule (e.g. 1D: nightly) on every row before, as deployed; "
                          "one that learns as it streams keeps learning (default: fitted once)")
    run_eval.add_argument("--workers", type=_positive_int, default=2,
                          help="processes scoring series in parallel (default %(default)s)")
    run_eval.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    run_eval.add_argument("--json", type=Path, help="also write the results as JSON here")
    run_eval.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    run_eval.add_argument("--nab-results", type=Path, metavar="DIR",
                          help="nab only: also write each detector's scores here in NAB's results layout "
                          "(for nab-score or NAB's own tools)")
    run_eval.set_defaults(handler=cmd_evaluate_run)
    chart = actions.add_parser("chart", help="draw a results file (run --json) against the targets and baselines, as a PNG")
    chart.add_argument("results_file", type=Path, help="e.g. docs/results/nab.json")
    chart.add_argument("--out", type=Path, help="the PNG to write (default: the results file's name with .png)")
    chart.set_defaults(handler=cmd_evaluate_chart)
    train = actions.add_parser("train", help="fit a detector on one series' normal rows, or a CSV of history, and register it "
                               "in MLflow")
    history = train.add_mutually_exclusive_group(required=True)
    history.add_argument("--dataset", choices=_dataset_names(), help="a labelled data set's series (with --series)")
    history.add_argument("--file", type=Path, help="a CSV of history (timestamp + metric columns), every row learned as normal")
    train.add_argument("--series", help="with --dataset: e.g. realKnownCause/nyc_taxi.csv or machine-1-6")
    which = train.add_mutually_exclusive_group(required=True)
    which.add_argument("--detector", choices=_detector_names(), help="a new detector of this kind")
    which.add_argument("--retrain", metavar="MODEL@ALIAS",
                       help="with --file: retrain this registered detector (e.g. perflake-anomaly-ensemble@champion, or @3 "
                       "for a version) on the file's history, as the nightly training does, and register its next version")
    train.add_argument("--alias", default="champion", help="alias to point at the new version (default %(default)s)")
    train.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    train.set_defaults(handler=cmd_evaluate_train)
    score = actions.add_parser("score",
                               help="score a CSV (timestamp + metric columns) with a registered detector, top rows explained")
    score.add_argument("csv_file", type=Path)
    score.add_argument("--model", required=True, help="registered model, e.g. perflake-anomaly-ensemble")
    score.add_argument("--alias", default="champion", help="alias or version number (default %(default)s)")
    score.add_argument("--top", type=_positive_int, default=10)
    score.set_defaults(handler=cmd_evaluate_score)
    patterns = actions.add_parser("patterns", help="what recurs in a CSV's metrics: season, regimes (quiet/normal/peak) "
                                  "in the trading calendar, recurring shapes")
    patterns.add_argument("csv_file", type=Path, help="timestamp + metric columns, e.g. a `perflake query` export")
    patterns.add_argument("--metric", help="only this metric (default: every metric of the file)")
    patterns.add_argument("--window", type=period, default="1h",
                          help="the regimes' windows and the shapes' length, at least 8 rows (default %(default)s)")
    patterns.add_argument("--top", type=_positive_int, default=3, help="recurring shapes per metric (default %(default)s)")
    patterns.add_argument("--chart", type=Path, metavar="PNG", help="also draw the metric (one: --metric) as a PNG")
    patterns.set_defaults(handler=cmd_evaluate_patterns)


def _dataset_names() -> list[str]:
    from perflake.anomaly.evaluate import DATASETS

    return DATASETS


def _default_refractory_rows() -> int:
    from perflake.anomaly.evaluate import DEFAULT_REFRACTORY_ROWS

    return DEFAULT_REFRACTORY_ROWS


def _detector_names() -> list[str]:
    from perflake.anomaly.detectors import DETECTORS

    return list(DETECTORS)


def cmd_evaluate_nab_score(args: argparse.Namespace) -> int:
    from perflake.anomaly.commands import nab_score_report

    nab_dir = args.nab_dir or get_config().ml.reference_data_dir / "nab"
    return _evaluate_errors(lambda: print(nab_score_report(args.results_dir, nab_dir, args.thresholds)))


def cmd_evaluate_run(args: argparse.Namespace) -> int:
    from perflake.anomaly.commands import run_evaluation, summary_json

    def run() -> None:
        results = run_evaluation(get_config(), args.dataset, args.detector, args.protocol, args.refractory_rows,
                                 args.workers, track=not args.no_track, say=lambda line: print(line, flush=True),
                                 refit_every=args.refit_every, data_dir=args.data_dir, nab_results=args.nab_results)
        if args.json:
            args.json.write_text(summary_json(results))

    return _evaluate_errors(run)


def cmd_evaluate_chart(args: argparse.Namespace) -> int:
    from perflake.anomaly.commands import chart_results

    return _evaluate_errors(lambda: print(chart_results(args.results_file, args.out)))


def cmd_evaluate_train(args: argparse.Namespace) -> int:
    from perflake.anomaly.commands import train, train_file

    if args.file:
        if args.series or args.data_dir:
            return _refused("--series and --data-dir pick a series of a labelled data set (--dataset), not of --file")
        return _evaluate_errors(lambda: print(train_file(get_config(), args.file, args.detector, args.alias, args.retrain)))
    if args.retrain:
        return _refused("--retrain retrains on a --file of history, not on a labelled data set's series")
    if not args.series:
        return _refused(f"--dataset {args.dataset} needs --series: which of its series to train on")
    return _evaluate_errors(lambda: print(train(get_config(), args.dataset, args.series, args.detector, args.alias,
                                                args.data_dir)))


def cmd_evaluate_score(args: argparse.Namespace) -> int:
    from perflake.anomaly.commands import score_file

    return _evaluate_errors(lambda: print(score_file(get_config(), args.model, args.alias, args.csv_file, args.top)))


def cmd_evaluate_patterns(args: argparse.Namespace) -> int:
    from perflake.anomaly.commands import patterns_report

    trading_timezone = get_config().pipeline.trading_timezone
    return _evaluate_errors(
        lambda: print(patterns_report(args.csv_file, args.metric, args.window, args.top, trading_timezone, args.chart)))


def _evaluate_errors(action) -> int:
    """Bad input (a missing folder, an unknown detector or series, a malformed file) is one line naming it."""
    from mlflow.exceptions import MlflowException

    try:
        action()
    except (FileNotFoundError, ValueError, KeyError, MlflowException) as error:
        return _refused(str(error))
    return 0


def _refused(why: str) -> int:
    print(f"perflake: error: {why}", file=sys.stderr)
    return 2


def cmd_smoke(args: argparse.Namespace) -> int:
    from perflake import services, smoke
    from perflake.lake import list_webhdfs
    from perflake.spark import get_spark

    config = get_config()
    print(f"perflake platform self-test -- profile {config.profile}, lake at {config.lake.root}")
    started = services.up(config)
    try:
        step = time.monotonic()
        print("starting Spark ...")
        spark = get_spark(config, app_name="perflake-smoke")
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


def cmd_run(args: argparse.Namespace) -> int:
    from perflake import services
    from perflake.contracts import load_contracts
    from perflake.kafka import ensure_topics
    from perflake.pipeline import live, runner
    from perflake.pipeline.streams import family_topics

    config = get_config()
    contracts = load_contracts()
    print(f"perflake main job -- profile {config.profile}, lake at {config.lake.root}")
    started_services = services.up(config)
    ensure_topics(config, family_topics(config, contracts))
    started_layers = runner.start(config)
    print(f"pipeline: {', '.join(runner.LAYERS)} streams running (logs: {config.paths.state_dir / 'logs'}/pipeline-*.log)")
    try:
        last_line = [0.0]

        def show(produced: int) -> None:
            if time.monotonic() - last_line[0] >= 2:
                print(live.progress_line(produced, runner.status(config)), flush=True)
                last_line[0] = time.monotonic()

        print(f"simulating {args.events} ALL-USE events at {args.rate}/s through the agents ...")
        start = args.start.timestamp() if args.start else None
        produced = live.feed(config, args.events, args.rate, show, seed=time.time_ns() % 2**32, start=start)
        print(f"produced {produced.total} events in {produced.kafka_messages} Kafka messages; injected anomalies: "
              f"{produced.labels_file}")
        print("waiting for the streams to catch up ...")
        caught_up = live.wait_until_caught_up(config, produced, args.timeout, lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("interrupted: stopping what this run started", file=sys.stderr)
        runner.stop(config, layers=tuple(started_layers))
        services.down(config, only=started_services)
        raise
    if not caught_up:
        for driver in runner.drivers(config):
            process = runner.process_of(config, driver[0])
            print(f"--- {', '.join(driver)} ({process.state()}), last lines of {process.log_file}:\n{process.log_tail(15)}")
        print(f"perflake: error: the pipeline did not catch up within {args.timeout}s", file=sys.stderr)
        return 1
    show_gold(config)
    print("the streams keep running: `perflake pipeline status` shows them, `perflake pipeline stop` stops them")
    return 0


def show_gold(config) -> None:
    from perflake.lake import table_path
    from perflake.pipeline.live import GOLD_PREVIEW
    from perflake.spark import get_spark

    spark = get_spark(config, app_name="perflake-gold-preview")
    for table, query in GOLD_PREVIEW.items():
        print(f"gold.{table}:")
        spark.sql(query.format(table=f"delta.`{table_path(config, 'gold', table)}`")).show(truncate=False)
    if config.metastore.enabled:
        print('query gold by name: perflake sql -e "SELECT * FROM gold.metric_rollups_1m LIMIT 10"  '
              '(JDBC: perflake sql-server start)')
        print('  or without Spark (no Spark job per query): perflake query "SELECT * FROM gold.metric_rollups_1m LIMIT 10"')
    else:
        print(f"query gold with Spark SQL: SELECT * FROM delta.`{table_path(config, 'gold', 'metric_rollups_1m')}`")
    spark.stop()


def cmd_pipeline(args: argparse.Namespace) -> int:
    from perflake.pipeline import runner

    config = get_config()
    if args.action == "start":
        started = runner.start(config)
        print(f"started: {', '.join(started) or 'nothing (all running)'}; logs in {config.paths.state_dir / 'logs'}")
    elif args.action == "stop":
        stopped = runner.stop(config)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    else:
        statuses = runner.status(config)
        for item in statuses:
            print(f"{item.layer:7} {item.state}")
            for name, stream in item.streams.items():
                print(
                    f"    {name}: batch {stream.get('batch_id')} at {stream.get('batch_at')}, "
                    f"{stream.get('input_rows_per_s')} rows/s in, "
                    f"{stream.get('processed_rows_per_s')} rows/s processed, {stream.get('total_input_rows')} rows since start, "
                    f"behind {stream.get('behind') or 0}{', idle' if stream.get('idle') else ''}"
                )
        return 1 if any(item.state == "dead" for item in statuses) else 0
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta, timezone

    from perflake.contracts import load_contracts
    from perflake.pipeline.reconcile import reconcile
    from perflake.spark import get_spark

    config = get_config()
    until = args.until or datetime.now(timezone.utc)
    since = args.since or until - timedelta(hours=1)
    spark = get_spark(config, app_name="perflake-reconcile")
    checks = reconcile(spark, config, load_contracts(), since, until)
    spark.stop()
    print(f"reconciliation of {since.isoformat()} .. {until.isoformat()} (profile {config.profile})")
    for check in checks:
        verdict = "ok " if check.is_ok else "GAP"
        repeated = f", {check.repeated} repeated" if check.repeated else ""
        print(f"{verdict} {check.step:17} {check.scope:45} expected {check.expected:>9}  found {check.found:>9}{repeated}  "
              f"{check.detail}")
    gaps = [check for check in checks if not check.is_ok]
    print(f"{len(gaps)} gap(s) in {len(checks)} checks")
    return 1 if gaps else 0


def cmd_sql(args: argparse.Namespace) -> int:
    from perflake.sql import spark_sql_command

    return subprocess.run(spark_sql_command(get_config(), args.passthrough)).returncode


def cmd_query(args: argparse.Namespace) -> int:
    from deltalake.exceptions import DeltaError

    from perflake.lake import SqlReader

    try:
        result = SqlReader(get_config()).query(args.sql)
    except (ValueError, DeltaError, OSError) as error:  # a bad query, a missing table, an unreachable HDFS
        print(f"query failed: {error}", file=sys.stderr)
        return 2
    print(result.to_csv(index=False) if args.csv else result.to_string(index=False), end="" if args.csv else "\n")
    return 0


def cmd_sql_server(args: argparse.Namespace) -> int:
    from perflake import sql

    config = get_config()
    server = sql.thrift_server(config)
    if args.action == "start":
        started = sql.start_thrift_server(config)
        print(f"Spark Thrift server {'started' if started else 'already running'}: {sql.jdbc_url(config)} "
              f"(log {server.log_file})")
        print(f"e.g. {sql.spark_executable('beeline')} -u {sql.jdbc_url(config)} "
              "-e 'SELECT * FROM gold.metric_rollups_1m LIMIT 5'")
    elif args.action == "stop":
        print("stopped" if server.stop(30) else "was not running")
    else:
        print(f"{'running' if server.is_running() else 'stopped'}: {sql.jdbc_url(config)}")
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


def _utc_time(text: str):
    from datetime import datetime, timezone

    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive duration such as 90s, 30m, 6h or 5d, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def detector_list(text: str) -> list[str]:
    """An argparse type: detector names, comma-separated, or ``all`` (also the benchmarks' ``--detector``)."""
    from perflake.anomaly.detectors import detector_names

    try:
        return detector_names(text)
    except ValueError as refusal:
        raise argparse.ArgumentTypeError(str(refusal)) from None


def protocol_list(text: str) -> list[str]:
    """An argparse type: threshold protocols, comma-separated (``evaluate.check_protocols``)."""
    from perflake.anomaly.evaluate import check_protocols

    protocols = text.split(",")
    try:
        check_protocols(protocols)
    except ValueError as refusal:
        raise argparse.ArgumentTypeError(str(refusal)) from None
    return protocols


def period(text: str) -> str:
    """An argparse type: a positive fixed period (``1D``, ``6h``), as the offset alias ``Series.dt.floor`` takes (also
    the false-alert benchmark's ``--refit-every`` and ``--grain``)."""
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    try:
        period = pd.Timedelta(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a period such as 1D or 6h: {text!r}") from None
    if period <= pd.Timedelta(0):
        raise argparse.ArgumentTypeError(f"must be a positive period such as 1D or 6h, got {text!r}")
    alias = to_offset(period).freqstr  # "D" for a day: written "1D", as it is given
    return alias if alias[0].isdigit() else f"1{alias}"


if __name__ == "__main__":
    sys.exit(main())
