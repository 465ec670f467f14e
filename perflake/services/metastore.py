"""The Hive metastore's database for local profiles: an Apache Derby network server.

Data lives in ``<state_dir>/metastore`` (created on first connection). Healthy when the
server answers Derby's ping.
"""

from __future__ import annotations

import subprocess

from perflake.config import Config
from perflake.jars import classpath
from perflake.services.process import ManagedProcess, java_command, port_is_open

MAIN_CLASS = "org.apache.derby.drda.NetworkServerControl"


class MetastoreService:
    name = "metastore"

    def __init__(self, config: Config):
        self.config = config
        self.settings = config.metastore
        self.home = config.paths.state_dir / "metastore"
        self.process = ManagedProcess("metastore", config.paths.state_dir / "run", config.paths.state_dir / "logs")

    @property
    def ports(self) -> list[int]:
        return [self.settings.port]

    @property
    def processes(self) -> list[tuple[ManagedProcess, str]]:
        return [(self.process, MAIN_CLASS)]

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command_for(self, main_class: str, action: str = "start") -> list[str]:
        return [
            *java_command(main_class, classpath(self.config, "metastore"), "256m", (f"-Dderby.system.home={self.home}",)),
            action,
            "-h",
            self.settings.host,
            "-p",
            str(self.settings.port),
            *(["-noSecurityManager"] if action == "start" else []),
        ]

    def is_healthy(self) -> bool:
        if not port_is_open(self.settings.host, self.settings.port):
            return False
        ping = subprocess.run(self.command_for(MAIN_CLASS, "ping"), capture_output=True, timeout=30)
        return ping.returncode == 0

    def describe(self) -> str:
        return f"Hive metastore database (Derby network server) at {self.settings.host}:{self.settings.port}, data in {self.home}"
