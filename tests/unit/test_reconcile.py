from perflake.pipeline.reconcile import Check, kafka_to_bronze


def bronze(spark, offsets):
    return spark.createDataFrame([("t", 0, offset) for offset in offsets],
                                 "kafka_topic STRING, kafka_partition INT, kafka_offset BIGINT")


def test_every_offset_once_is_ok(spark):
    [check] = kafka_to_bronze(bronze(spark, [5, 6, 7, 8, 99]), {("t", 0): (5, 9)})
    assert check == Check("kafka -> bronze", "t[0]", 4, 4, "offsets 5..8", 0) and check.is_ok


def test_a_missing_offset_is_a_gap(spark):
    [check] = kafka_to_bronze(bronze(spark, [5, 7, 8]), {("t", 0): (5, 9)})
    assert (check.expected, check.found, check.is_ok) == (4, 3, False)


def test_a_repeated_offset_is_a_gap_even_when_the_count_matches(spark):
    [check] = kafka_to_bronze(bronze(spark, [5, 5, 6, 7, 8]), {("t", 0): (5, 9)})
    assert (check.expected, check.found, check.repeated, check.is_ok) == (4, 4, 1, False)


def test_partitions_with_nothing_in_range_are_not_checked(spark):
    assert kafka_to_bronze(bronze(spark, [1]), {("t", 0): (9, 9)}) == []
