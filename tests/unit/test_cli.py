import subprocess
import sys

import pytest

from perflake.cli import build_parser, main
from tests.support import PROJECT_DIR, make_environ, run_perflake


@pytest.mark.parametrize("argv", [["services", "restart"], ["run", "--events", "0"], ["run", "--events", "many"], []])
def test_bad_arguments_are_refused_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "usage: perflake" in capsys.readouterr().err


EVALUATE_RUN = ["evaluate", "run", "--dataset", "nab", "--detector", "ensemble"]


@pytest.mark.parametrize(("period", "refusal"), [("nightly", "not a period such as 1D or 6h: 'nightly'"),
                                                 ("0h", "must be a positive period")])
def test_a_retraining_schedule_must_be_a_positive_period(period, refusal, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*EVALUATE_RUN, "--refit-every", period])
    assert refusal in capsys.readouterr().err
    assert build_parser().parse_args([*EVALUATE_RUN, "--refit-every", "1 day"]).refit_every == "1D"


def test_an_unknown_detector_is_refused_by_name_before_any_data_is_read(tmp_path, capsys):
    argv = ["evaluate", "run", "--dataset", "nab", "--detector", "ensemble,isolation_forrest", "--no-track",
            "--data-dir", str(tmp_path / "nowhere")]  # the data set's refusal would come first were it read
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "argument --detector: unknown detector 'isolation_forrest'; known: median_mad" in capsys.readouterr().err
    assert build_parser().parse_args([*EVALUATE_RUN[:-1], "all"]).detector[-1] == "ensemble"


@pytest.mark.parametrize(("protocols", "refusal"), [
    ("fixed,fixd", "argument --protocol: unknown threshold protocols ['fixd']; known: fixed, cross_fit, nab or level:X"),
    ("level:high", "argument --protocol: threshold protocol 'level:high': a given level is a positive number"),
])
def test_an_unknown_threshold_protocol_is_refused_by_name_when_the_arguments_are_read(protocols, refusal, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*EVALUATE_RUN, "--protocol", protocols])
    assert exit_info.value.code == 2
    assert refusal in capsys.readouterr().err
    assert build_parser().parse_args([*EVALUATE_RUN, "--protocol", "nab,level:3"]).protocol == ["nab", "level:3"]
    assert build_parser().parse_args(EVALUATE_RUN).protocol == ["fixed", "cross_fit"]


def test_the_nab_protocol_on_another_data_set_is_refused_before_any_data_is_read(tmp_path, capsys):
    argv = ["evaluate", "run", "--dataset", "smd", "--detector", "median_mad", "--protocol", "fixed,nab", "--no-track",
            "--data-dir", str(tmp_path / "nowhere")]  # the data set's refusal would come first were it read
    assert main(argv) == 2
    assert "the nab protocol applies to the NAB data set only, not to smd" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "refusal"), [
    (["--detector", "median_mad", "--file", "history.csv", "--series", "machine-1-6"],
     "--series and --data-dir pick a series of a labelled data set"),
    (["--detector", "median_mad", "--dataset", "smd"], "--dataset smd needs --series"),
    (["--retrain", "perflake-anomaly-median_mad@champion", "--dataset", "smd", "--series", "machine-1-6"],
     "--retrain retrains on a --file of history"),
])
def test_training_takes_a_data_set_series_or_a_file_not_both_nor_half(argv, refusal, capsys):
    assert main(["evaluate", "train", *argv]) == 2
    assert capsys.readouterr().err.startswith(f"perflake: error: {refusal}")


@pytest.mark.parametrize(("argv", "refusal"), [
    (["--detector", "median_mad", "--dataset", "smd", "--file", "h.csv"], "argument --file: not allowed with argument --dataset"),
    (["--detector", "median_mad", "--retrain", "m@champion", "--file", "h.csv"],
     "argument --retrain: not allowed with argument --detector"),
])
def test_training_takes_one_source_of_history_and_one_detector(argv, refusal, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "train", *argv])
    assert refusal in capsys.readouterr().err


def test_only_the_evaluate_command_loads_the_detectors():
    # the host agent runs as `perflake agent run`: the detectors' numpy and pandas would cost it about 100 MB
    parse = "import sys; from perflake.cli import build_parser; build_parser(sys.argv[1:]).parse_args(sys.argv[1:]); "

    def modules_after_parsing(*argv: str) -> set[str]:
        shown = subprocess.run([sys.executable, "-c", parse + "print(*sys.modules)", *argv], cwd=PROJECT_DIR,
                               capture_output=True, text=True, check=True).stdout
        return set(shown.split())

    assert "pandas" not in modules_after_parsing("agent", "status")
    assert "perflake.anomaly.detectors" in modules_after_parsing(*EVALUATE_RUN)


def test_config_prints_the_active_profile(tmp_path):
    result = run_perflake(["config"], make_environ(tmp_path, PERFLAKE_PROFILE="hdfs"))
    assert result.returncode == 0, result.stderr
    assert '"profile": "hdfs"' in result.stdout


def test_a_config_error_is_one_clear_line_and_exit_code_2(tmp_path):
    result = run_perflake(["config"], make_environ(tmp_path, PERFLAKE_PROFILE="nope"))
    assert result.returncode == 2
    assert result.stderr.startswith("perflake: error: unknown profile 'nope'")
    assert "Traceback" not in result.stderr


def test_submit_print_shows_the_spark_submit_command(tmp_path):
    result = run_perflake(["submit", "--print", "jobs/smoke_ingest.py"], make_environ(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "spark-submit --conf spark.master=local[2]" in result.stdout
    assert "delta-spark_4.2_2.13" in result.stdout and result.stdout.strip().endswith("jobs/smoke_ingest.py")


def test_submit_of_a_missing_job_names_it(capsys):
    assert main(["submit", "jobs/no_such_job.py"]) == 2
    assert "no job file jobs/no_such_job.py" in capsys.readouterr().err


def test_the_cluster_profile_starts_no_services(tmp_path):
    env = make_environ(tmp_path, PERFLAKE_PROFILE="cluster", PERFLAKE__SPARK__MASTER="spark://m:7077",
                       PERFLAKE__LAKE__ROOT="hdfs://nn:8020/p")
    result = run_perflake(["services", "up"], env)
    assert result.returncode == 0, result.stderr
    assert "profile cluster manages no services" in result.stdout


def test_query_of_a_missing_table_names_it_and_exits_2(tmp_path):
    env = make_environ(tmp_path)
    result = run_perflake(["query", "--csv", "SELECT count(*) AS n FROM gold.metric_rollups_1m"], env)
    assert result.returncode == 2
    assert result.stderr.startswith("query failed: gold.metric_rollups_1m does not exist: no Delta table at file://")
