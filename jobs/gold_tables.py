"""Keep the gold tables (rollups and business tables) up to date from silver.

    perflake submit jobs/gold_tables.py [--available-now]

One stream for all gold tables; each micro-batch rebuilds the keys (window or trading day and its
dimensions) that new silver rows touch, so late events correct their window. Data on failure:
silver keeps the rows; a restart rebuilds the keys of the uncommitted batch again.
"""

from perflake.pipeline.runner import run_layers


def main(argv: list[str] | None = None) -> None:
    run_layers(("gold",), __doc__, argv)


if __name__ == "__main__":
    main()
