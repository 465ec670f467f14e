"""The medallion pipeline: Kafka -> bronze (raw) -> silver (valid, typed, deduplicated) -> gold (rolled up)."""
