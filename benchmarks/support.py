"""What the benchmarks share: each runs perflake in a lake and run state of its own."""

from __future__ import annotations

import os
from pathlib import Path

BENCH_DIR = Path("state/bench")


def bench_environ(name: str) -> dict[str, str]:
    """The environment of a benchmark's perflake processes: this one's, less PERFLAKE__*, with its own lake and run
    state under state/bench/NAME (a developer's running pipeline is neither reused nor overwritten) and no
    metastore."""
    lake_root = (BENCH_DIR / name).resolve()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PERFLAKE__")}
    env["PERFLAKE__LAKE__ROOT"] = str(lake_root)
    env["PERFLAKE__PATHS__STATE_DIR"] = str(lake_root / "state")
    env["PERFLAKE__METASTORE__ENABLED"] = "false"
    return env
