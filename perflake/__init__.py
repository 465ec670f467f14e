"""perflake: the performance lakehouse of the ALL-USE trading platform."""

__version__ = "0.1.0"
