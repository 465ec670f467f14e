"""Background JVM processes with a pid file, a log file and bounded waits.

A process is detached in its own session so it outlives the command that started it;
``stop`` sends SIGTERM to its whole process group and SIGKILL after the timeout. Every
wait has a deadline: nothing here can hang.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_LINES = 30
POLL_INTERVAL_S = 0.5


class ServiceError(RuntimeError):
    """A service could not be started, is unhealthy, or its port is taken."""


def java_executable() -> str:
    """java from JAVA_HOME, else from PATH, else a ServiceError saying what to install."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise ServiceError("Java 17 is not installed: "
                           "install it (Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME")
    return found


def java_command(main_class: str, classpath: str, heap: str | None = None, options: tuple[str, ...] = ()) -> list[str]:
    """``java`` for a service JVM: fixed heap when given, headless, extra ``-D``/``-XX`` options."""
    memory = [f"-Xms{heap}", f"-Xmx{heap}"] if heap else []
    return [java_executable(), *memory, "-Djava.awt.headless=true", *options, "-cp", classpath, main_class]


def port_is_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``check`` until it is true; ServiceError when ``alive`` turns false or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if not alive():
            raise ServiceError(f"{what}: the process exited")
        time.sleep(POLL_INTERVAL_S)
    raise ServiceError(f"{what}: not ready after {timeout_s:.0f}s")


def run_tool(command: list[str], what: str, log_file: Path, timeout_s: float = 120) -> None:
    """Run a one-shot command (storage format and the like), appending its output to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log.write(f"\n--- perflake: {what}\n".encode())
        log.flush()
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ServiceError(f"{what}: no answer after {timeout_s:.0f}s (log: {log_file})") from None
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        raise ServiceError(f"{what} failed with exit code {result.returncode}; last lines of {log_file}:\n{tail}")


@dataclass
class ManagedProcess:
    """One long-running process, tracked by ``<run_dir>/<name>.pid`` and logging to ``<log_dir>/<name>.log``."""

    name: str
    run_dir: Path
    log_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _has_exited(pid)

    def state(self) -> str:
        """running; dead (its pid file outlived it: it exited without being stopped); or stopped."""
        if self.is_running():
            return "running"
        return "dead" if self.pid() is not None else "stopped"

    def start(self, command: list[str], env: dict[str, str] | None = None) -> int:
        """Start detached; ``env`` replaces this process's environment when given."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- perflake: starting {self.name} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ if env is None else env,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        return process.pid

    def stop(self, timeout_s: float) -> bool:
        """Stop the process group; True if something was running."""
        pid = self.pid()
        running = self.is_running()
        if running and pid is not None:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while self.is_running() and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.is_running():
                _signal_group(pid, signal.SIGKILL)
                wait_for(lambda: not self.is_running(), 10, f"{self.name} did not die after SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return running

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_file})"
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _has_exited(pid: int) -> bool:
    """A dead child not yet reaped still answers kill(0), so ask /proc. A killed JVM's leader
    thread turns zombie before its other threads are gone, and those still hold its sockets:
    the process has exited only when no thread of it is left but a zombie."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    return all(_task_state(pid, task) in ("Z", "X", None) for task in tasks)


def _task_state(pid: int, task: str) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
    except FileNotFoundError:  # the thread went while we looked
        return None
    return stat.rsplit(")", 1)[1].split()[0]
