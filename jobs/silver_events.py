"""Validate bronze.events into one silver table per event type, quarantining what fails.

    perflake submit jobs/silver_events.py [--available-now]

Every bronze row lands in a silver table or in silver.quarantine (with its reasons, raw bytes
and Kafka coordinates); repeated event_ids are stored once. Data on failure: bronze keeps the
rows; a restart replays the uncommitted batch and its writes are skipped where they committed.
"""

from perflake.pipeline.runner import run_layers


def main(argv: list[str] | None = None) -> None:
    run_layers(("silver",), __doc__, argv)


if __name__ == "__main__":
    main()
