"""Stream every event-family Kafka topic into bronze.events (raw messages, never parsed).

    perflake submit jobs/bronze_events.py [--available-now]

(``perflake submit --print jobs/bronze_events.py`` shows the exact spark-submit command.)
Data on failure: Kafka keeps every message until this stream's checkpoint records it as
committed to Delta; a restart replays the uncommitted batch, which Delta's sink writes once.
"""

from perflake.pipeline.runner import run_layers


def main(argv: list[str] | None = None) -> None:
    run_layers(("bronze",), __doc__, argv)


if __name__ == "__main__":
    main()
