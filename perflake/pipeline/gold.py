"""Gold: rollups and business tables built from silver.

Each gold table is a ``GoldTable``: the silver tables it reads, how a silver row maps to the
gold key it affects (``key_columns``), and a ``build`` transform (silver frames -> gold rows).
The gold stream hands each micro-batch's affected keys to ``refresh`` (perflake.pipeline.streams),
which rebuilds exactly those keys from silver and upserts them. A late event therefore
corrects its window whenever it arrives, and no streaming state grows: all state is in Delta.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

PERCENTILES = (0.5, 0.95, 0.99)
METRIC_SOURCE = ("service", "endpoint", "host")  # a metric rollup's source: a service endpoint or a host
TRADING_DAY_SPAN = timedelta(hours=25)  # a day in a time zone lasts 23 to 25 hours


@dataclass(frozen=True)
class GoldTable:
    name: str
    grain: str
    sources: tuple[str, ...]
    keys: tuple[str, ...]
    key_columns: dict[str, Column]  # silver row -> the gold key it affects
    build: Callable[..., DataFrame]
    partition_column: str
    span: timedelta  # the longest a key's window lasts: every row of a key is this close to any other

    def key_values(self) -> list[Column]:
        """The gold key a silver row affects, as columns named like the table's keys."""
        return [column.alias(name) for name, column in self.key_columns.items()]


def count_where(condition: Column, name: str) -> Column:
    """How many rows of the group meet ``condition`` (nulls do not count)."""
    return F.count(F.when(condition, 1)).alias(name)


def trade_date(timezone: str) -> Column:
    """The trading day of an event: its date in the trading venue's time zone."""
    return F.to_date(F.from_utc_timestamp("event_at", timezone))


def percentiles(column: str, accuracy: int, prefix: str) -> list[Column]:
    """p50/p95/p99 of ``column`` (percentile_approx: rank error at most n / accuracy)."""
    values = F.percentile_approx(column, list(PERCENTILES), accuracy)
    return [values[i].alias(f"p{round(q * 100)}_{prefix}") for i, q in enumerate(PERCENTILES)]


def metric_rollups(metrics: DataFrame, unit: str, accuracy: int) -> DataFrame:
    """silver.metrics -> one row per metric per source (service, endpoint, host) per ``unit`` window."""
    seconds = {"minute": 60, "hour": 3600}[unit]
    windowed = metrics.withColumn("window_at", F.date_trunc(unit, "event_at"))
    rolled = windowed.groupBy("metric", *METRIC_SOURCE, "window_at").agg(
        F.first("unit").alias("unit"),
        F.count("*").alias("n_samples"),
        F.sum("value").alias("sum_value"),
        F.min("value").alias("min_value"),
        F.max("value").alias("max_value"),
        F.avg("value").alias("mean_value"),
        *percentiles("value", accuracy, "value"),
        count_where(F.col("is_error"), "n_errors"),
    )
    return rolled.select(
        "*",
        (F.col("n_errors") / F.col("n_samples")).alias("error_rate"),
        (F.col("n_samples") / F.lit(seconds)).alias("samples_per_s"),
        F.to_date("window_at").alias("window_date"),
        F.current_timestamp().alias("updated_at"),
    )


def market_data_latency(market_data: DataFrame, accuracy: int) -> DataFrame:
    """silver.market_data -> one row per feed per minute: latency percentiles and message rate."""
    rolled = market_data.withColumn("window_at", F.date_trunc("minute", "event_at")).groupBy("feed", "window_at").agg(
        F.count("*").alias("n_samples"),
        F.sum("message_count").alias("n_messages"),
        F.sum("interval_ms").alias("sum_interval_ms"),
        *percentiles("latency_ms", accuracy, "latency_ms"),
        F.max("latency_ms").alias("max_latency_ms"),
        count_where(F.col("is_stale"), "n_stale_samples"),
        F.sum(F.coalesce("gap_count", F.lit(0))).alias("n_gaps"),
    )
    return rolled.select(
        "feed",
        "window_at",
        "n_samples",
        "n_messages",
        (F.col("n_messages") / (F.col("sum_interval_ms") / 1000)).alias("messages_per_s"),
        "p50_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "max_latency_ms",
        "n_stale_samples",
        "n_gaps",
        F.to_date("window_at").alias("window_date"),
        F.current_timestamp().alias("updated_at"),
    )


def account_performance_daily(snapshots: DataFrame, operations: DataFrame, timezone: str) -> DataFrame:
    """Snapshots + operations -> one row per account per trading day."""
    day = trade_date(timezone)
    latest = F.struct("event_at", "equity_usd", "pnl_usd", "return_pct", "balance_usd")
    from_snapshots = (
        snapshots.withColumn("trade_date", day)
        .groupBy("account_id", "trade_date")
        .agg(
            F.max(latest).alias("close"),
            F.min(F.struct("event_at", "equity_usd")).alias("open"),
            F.max("drawdown_pct").alias("max_drawdown_pct"),
            F.count("*").alias("n_snapshots"),
        )
        .select(
            "account_id",
            "trade_date",
            F.col("open.equity_usd").alias("open_equity_usd"),
            F.col("close.equity_usd").alias("close_equity_usd"),
            F.col("close.balance_usd").alias("close_balance_usd"),
            F.col("close.pnl_usd").alias("pnl_usd"),
            F.col("close.return_pct").alias("return_pct"),
            "max_drawdown_pct",
            "n_snapshots",
        )
    )
    from_operations = (
        operations.withColumn("trade_date", day)
        .groupBy("account_id", "trade_date")
        .agg(
            count_where(F.col("operation") == "fork", "n_forks"),
            count_where(F.col("operation") == "merge", "n_merges"),
            count_where(F.col("operation") == "reinvest", "n_reinvestments"),
            F.sum(F.when(F.col("operation") == "reinvest", F.col("amount_usd")).otherwise(0.0)).alias("reinvested_usd"),
        )
    )
    counts = ["n_forks", "n_merges", "n_reinvestments", "reinvested_usd"]
    return (
        from_snapshots.join(from_operations, ["account_id", "trade_date"], "full_outer")
        .fillna(0, subset=counts)
        .withColumn("updated_at", F.current_timestamp())
    )


def strategy_effectiveness_daily(orders: DataFrame, fills: DataFrame, timezone: str) -> DataFrame:
    """Orders + fills -> one row per strategy per trading day: win rate, P&L, slippage, rejects."""
    day = trade_date(timezone)
    from_fills = (
        fills.withColumn("trade_date", day)
        .groupBy("strategy", "trade_date")
        .agg(
            F.count("*").alias("n_fills"),
            F.count("realized_pnl_usd").alias("n_closing_fills"),
            count_where(F.col("realized_pnl_usd") > 0, "n_winning_fills"),
            F.sum("realized_pnl_usd").alias("realized_pnl_usd"),
            F.avg("realized_pnl_usd").alias("mean_pnl_usd"),
            F.avg("slippage_bps").alias("mean_slippage_bps"),
            F.sum("fee_usd").alias("fees_usd"),
        )
        .withColumn("win_rate", F.col("n_winning_fills") / F.nullif(F.col("n_closing_fills"), F.lit(0)))
    )
    from_orders = (
        orders.withColumn("trade_date", day)
        .groupBy("strategy", "trade_date")
        .agg(
            count_where(F.col("status") == "submitted", "n_orders"),
            count_where(F.col("status") == "rejected", "n_rejected"),
        )
        .withColumn("reject_rate", F.col("n_rejected") / F.nullif(F.col("n_orders"), F.lit(0)))
    )
    return (
        from_fills.join(from_orders, ["strategy", "trade_date"], "full_outer")
        .fillna(0, subset=["n_fills", "n_closing_fills", "n_winning_fills", "n_orders", "n_rejected"])
        .withColumn("updated_at", F.current_timestamp())
    )


def protocol_effectiveness_daily(decisions: DataFrame, timezone: str, accuracy: int) -> DataFrame:
    """silver.protocol_decisions -> one row per decision type per trading day."""
    rolled = (
        decisions.withColumn("trade_date", trade_date(timezone))
        .groupBy("decision", "trade_date")
        .agg(
            F.count("*").alias("n_decisions"),
            count_where(F.col("outcome") == "profit", "n_profit"),
            count_where(F.col("outcome") == "loss", "n_loss"),
            count_where(F.col("outcome") == "pending", "n_pending"),
            count_where(F.col("is_human_override"), "n_overrides"),
            count_where(F.col("is_compliant"), "n_compliant"),
            F.sum("pnl_usd").alias("pnl_usd"),
            *percentiles("decision_latency_ms", accuracy, "decision_latency_ms"),
            F.percentile_approx("approval_latency_ms", 0.5, accuracy).alias("p50_approval_latency_ms"),
        )
    )
    settled = F.col("n_profit") + F.col("n_loss")
    return rolled.select(
        "*",
        (F.col("n_profit") / F.nullif(settled, F.lit(0))).alias("success_rate"),
        (F.col("n_overrides") / F.col("n_decisions")).alias("override_rate"),
        (F.col("n_compliant") / F.col("n_decisions")).alias("compliance_rate"),
        F.current_timestamp().alias("updated_at"),
    )


def gold_tables(accuracy: int, timezone: str) -> list[GoldTable]:
    """Every gold table, wired to the pipeline settings."""
    minute = {"window_at": F.date_trunc("minute", "event_at")}
    daily = {"trade_date": trade_date(timezone)}
    return [
        GoldTable(
            "metric_rollups_1m", "one row per metric per source (service, endpoint, host) per minute", ("metrics",),
            ("metric", *METRIC_SOURCE, "window_at"),
            {**_columns("metric", *METRIC_SOURCE), **minute},
            lambda metrics: metric_rollups(metrics, "minute", accuracy), "window_date", timedelta(minutes=1),
        ),
        GoldTable(
            "metric_rollups_1h", "one row per metric per source (service, endpoint, host) per hour", ("metrics",),
            ("metric", *METRIC_SOURCE, "window_at"),
            {**_columns("metric", *METRIC_SOURCE), "window_at": F.date_trunc("hour", "event_at")},
            lambda metrics: metric_rollups(metrics, "hour", accuracy), "window_date", timedelta(hours=1),
        ),
        GoldTable(
            "market_data_latency_1m", "one row per market-data feed per minute", ("market_data",),
            ("feed", "window_at"), {**_columns("feed"), **minute},
            lambda market_data: market_data_latency(market_data, accuracy), "window_date", timedelta(minutes=1),
        ),
        GoldTable(
            "account_performance_daily", "one row per account per trading day", ("account_snapshots", "account_operations"),
            ("account_id", "trade_date"), {**_columns("account_id"), **daily},
            lambda snapshots, operations: account_performance_daily(snapshots, operations, timezone),
            "trade_date", TRADING_DAY_SPAN,
        ),
        GoldTable(
            "strategy_effectiveness_daily", "one row per trading strategy per trading day", ("orders", "fills"),
            ("strategy", "trade_date"), {**_columns("strategy"), **daily},
            lambda orders, fills: strategy_effectiveness_daily(orders, fills, timezone), "trade_date", TRADING_DAY_SPAN,
        ),
        GoldTable(
            "protocol_effectiveness_daily", "one row per protocol decision type per trading day", ("protocol_decisions",),
            ("decision", "trade_date"), {**_columns("decision"), **daily},
            lambda decisions: protocol_effectiveness_daily(decisions, timezone, accuracy), "trade_date", TRADING_DAY_SPAN,
        ),
    ]


def _columns(*names: str) -> dict[str, Column]:
    return {name: F.col(name) for name in names}
