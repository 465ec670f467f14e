"""JVM jars: resolved once with Maven from ``jvm/pom.xml`` into ``<jars_dir>/<component>/``.

Resolution is skipped while a stamp file records the hash of every pom under ``jvm/``;
change a pom and the next ``perflake setup`` resolves again. Nothing is downloaded when a
job runs: Spark gets the jars through ``spark.jars``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from perflake.config import Config

COMPONENTS = ("spark", "kafka", "hdfs", "metastore")
MAVEN_TIMEOUT_S = 900
_STAMP = ".resolved"
_UNRESOLVED = re.compile(r"(?:Could not (?:resolve|find) artifact|Failure to find|was not found in)\s*:?\s*(\S+)")


class JarsError(RuntimeError):
    """The JVM jars are missing or could not be resolved."""


def pom_dir(config: Config) -> Path:
    return config.project_dir / "jvm"


def poms_digest(config: Config) -> str:
    digest = hashlib.sha256()
    for pom in sorted(pom_dir(config).rglob("pom.xml")):
        digest.update(pom.relative_to(pom_dir(config)).as_posix().encode())
        digest.update(pom.read_bytes())
    return digest.hexdigest()


def is_resolved(config: Config) -> bool:
    stamp = config.paths.jars_dir / _STAMP
    return stamp.is_file() and stamp.read_text().strip() == poms_digest(config)


def resolve_jars(config: Config, force: bool = False) -> bool:
    """Run Maven when the poms changed since the last resolution. Returns True if it ran."""
    if not force and is_resolved(config):
        return False
    maven = shutil.which("mvn")
    if maven is None:
        raise JarsError("Maven (mvn) is not installed: install it (Debian: apt-get install maven) and retry")
    for component in COMPONENTS:
        shutil.rmtree(config.paths.jars_dir / component, ignore_errors=True)
    command = [maven, "-B", "-q", "-f", str(pom_dir(config) / "pom.xml"), f"-Djars.dir={config.paths.jars_dir}", "package"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise JarsError(f"Maven did not finish within {MAVEN_TIMEOUT_S}s: {' '.join(command)}") from None
    if result.returncode != 0:
        output = result.stdout + result.stderr
        missing = sorted(set(_UNRESOLVED.findall(output)))
        what = f"cannot resolve {', '.join(missing)}" if missing else "Maven failed"
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise JarsError(f"{what} (from {pom_dir(config)}/pom.xml):\n{tail}")
    (config.paths.jars_dir / _STAMP).write_text(poms_digest(config) + "\n")
    return True


def component_jars(config: Config, component: str) -> list[Path]:
    """The resolved jars of one component, or a JarsError saying how to get them."""
    jars = sorted((config.paths.jars_dir / component).glob("*.jar"))
    if not jars:
        raise JarsError(f"no {component} jars in {config.paths.jars_dir / component}: run `make setup` (or `perflake setup`)")
    return jars


def classpath(config: Config, component: str) -> str:
    """A java -cp entry for one component (checked to be resolved)."""
    component_jars(config, component)
    return f"{config.paths.jars_dir / component}/*"
