"""Run the bronze, silver and gold streams in one driver (``pipeline.drivers = "one"``).

    perflake submit jobs/medallion_streams.py [--available-now]

The three layers' streams share this driver's cores under the FAIR scheduler, a pool per layer;
each stream keeps its own checkpoint, exactly as in its layer's job (bronze_events.py,
silver_events.py, gold_tables.py). Data on failure: a crash stops all three; a restart resumes
each from its checkpoint, so Kafka, bronze and silver keep what the next layer has not committed.
"""

from perflake.pipeline.runner import LAYERS, run_layers


def main(argv: list[str] | None = None) -> None:
    run_layers(LAYERS, __doc__, argv)


if __name__ == "__main__":
    main()
