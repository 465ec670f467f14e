"""Single-node Apache Hadoop HDFS: one NameNode and one DataNode JVM, WebHDFS on.

Metadata and blocks live under ``<state_dir>/hdfs`` and the NameNode is formatted on the
first start only. HDFS is healthy when WebHDFS answers, a DataNode is live and the
NameNode has left safe mode (until then writes would fail).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from xml.sax.saxutils import escape

from perflake.config import Config
from perflake.jars import classpath
from perflake.services.process import ManagedProcess, java_command, run_tool

_LOG4J = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.BlockStateChange=WARN
log4j.logger.org.apache.hadoop.hdfs.StateChange=WARN
"""
# The Hadoop tarball ships these web apps as folders; the jars do not. The NameNode and
# DataNode HTTP servers (which serve WebHDFS) refuse to start without them.
_WEBAPPS = ("hdfs", "datanode", "secondary", "static")
_EMPTY_WEB_XML = '<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="3.1"/>\n'


class HdfsService:
    name = "hdfs"

    def __init__(self, config: Config):
        self.config = config
        self.settings = config.services.hdfs
        self.home = config.paths.state_dir / "hdfs"
        run_dir, log_dir = config.paths.state_dir / "run", config.paths.state_dir / "logs"
        self.namenode = ManagedProcess("hdfs-namenode", run_dir, log_dir)
        self.datanode = ManagedProcess("hdfs-datanode", run_dir, log_dir)

    @property
    def processes(self) -> list[tuple[ManagedProcess, str]]:
        return [
            (self.namenode, "org.apache.hadoop.hdfs.server.namenode.NameNode"),
            (self.datanode, "org.apache.hadoop.hdfs.server.datanode.DataNode"),
        ]

    @property
    def ports(self) -> list[int]:
        s = self.settings
        return [s.namenode_rpc_port, s.namenode_http_port, s.datanode_port, s.datanode_http_port, s.datanode_ipc_port]

    @property
    def uri(self) -> str:
        return f"hdfs://{self.settings.host}:{self.settings.namenode_rpc_port}"

    @property
    def webhdfs_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.namenode_http_port}"

    def site_files(self) -> dict[str, dict[str, str]]:
        s, home = self.settings, self.home
        return {
            "core-site.xml": {"fs.defaultFS": self.uri, "hadoop.tmp.dir": str(home / "tmp")},
            "hdfs-site.xml": {
                "dfs.namenode.name.dir": (home / "name").as_uri(),
                "dfs.datanode.data.dir": (home / "data").as_uri(),
                "dfs.replication": "1",
                "dfs.namenode.rpc-address": f"{s.host}:{s.namenode_rpc_port}",
                "dfs.namenode.http-address": f"{s.host}:{s.namenode_http_port}",
                "dfs.datanode.address": f"{s.host}:{s.datanode_port}",
                "dfs.datanode.http.address": f"{s.host}:{s.datanode_http_port}",
                "dfs.datanode.ipc.address": f"{s.host}:{s.datanode_ipc_port}",
                "dfs.webhdfs.enabled": "true",
                # one local user owns the lake; a real cluster keeps permissions on
                "dfs.permissions.enabled": "false",
                "dfs.namenode.safemode.extension": "0",
            },
        }

    def prepare(self) -> None:
        """Write Hadoop's config and web apps, and format the NameNode on first start."""
        conf = self.home / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        for name, properties in self.site_files().items():
            (conf / name).write_text(_hadoop_xml(properties))
        (conf / "log4j.properties").write_text(_LOG4J)
        for app in _WEBAPPS:
            web_inf = self.home / "resources" / "webapps" / app / "WEB-INF"
            web_inf.mkdir(parents=True, exist_ok=True)
            (web_inf / "web.xml").write_text(_EMPTY_WEB_XML)
        if (self.home / "name" / "current" / "VERSION").is_file():
            return
        run_tool(
            self._java("org.apache.hadoop.hdfs.server.namenode.NameNode") + ["-format", "-nonInteractive", "-force"],
            "format the HDFS NameNode",
            self.namenode.log_file,
        )

    def command_for(self, main_class: str) -> list[str]:
        return self._java(main_class, heap=self.settings.heap)

    def is_healthy(self) -> bool:
        state = self._jmx("Hadoop:service=NameNode,name=FSNamesystemState")
        info = self._jmx("Hadoop:service=NameNode,name=NameNodeInfo")
        if state is None or info is None:
            return False
        return state.get("NumLiveDataNodes", 0) >= 1 and not info.get("Safemode")

    def describe(self) -> str:
        return f"HDFS at {self.uri} (WebHDFS {self.webhdfs_url}), data in {self.home}"

    def _jmx(self, bean: str) -> dict | None:
        url = f"{self.webhdfs_url}/jmx?qry={bean}"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                beans = json.load(response).get("beans", [])
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return beans[0] if beans else None

    def _java(self, main_class: str, heap: str | None = None) -> list[str]:
        cp = f"{self.home / 'conf'}:{self.home / 'resources'}:{classpath(self.config, 'hdfs')}"
        return java_command(main_class, cp, heap)


def _hadoop_xml(properties: dict[str, str]) -> str:
    body = "".join(
        f"  <property><name>{escape(key)}</name><value>{escape(value)}</value></property>\n"
        for key, value in properties.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'
