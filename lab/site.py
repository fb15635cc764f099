"""Local sites for the demo, tests and benchmarks: a config file per site and the agent process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def site_config(site: str, consul_address: str, dns: dict[str, Any], services: list[dict],
                value: str, group: str = "app", session: dict | None = None,
                **sections: Any) -> dict[str, Any]:
    """A config document for one site; `dns` holds zone, record, server, tsig (see NamedServer)."""
    return {
        "site": site,
        "group": group,
        "consul": {"address": consul_address},
        "session": session or {"ttl": "10s", "lock_delay": "1s", "heartbeat_ttl": "3s"},
        "services": services,
        "dns": {"type": "A", "value": value, "ttl": 30, "reconcile_interval": "10s", **dns},
        **sections,
    }


def write_config(path: str | os.PathLike, document: dict[str, Any]) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def http_service(name: str, url: str, interval: str = "1s") -> dict[str, Any]:
    return {"name": name, "check": {"http": url, "interval": interval, "timeout": "1s"}}


def script_service(name: str, command: str, interval: str = "1s") -> dict[str, Any]:
    return {"name": name, "check": {"script": command, "interval": interval, "timeout": "2s"}}


class AgentProcess:
    """`consulha agent` in a child process, logging to a file, in its own process group."""

    def __init__(self, config_path: str | os.PathLike, log_path: str | os.PathLike,
                 transitions_path: str | os.PathLike | None = None):
        self.config_path = Path(config_path)
        self.log_path = Path(log_path)
        self.transitions_path = transitions_path
        self.process: subprocess.Popen | None = None

    def start(self) -> "AgentProcess":
        command = [sys.executable, "-m", "consulha.cli", "agent", "-c", str(self.config_path)]
        if self.transitions_path:
            command += ["--transitions-file", str(self.transitions_path)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, signum: int) -> None:
        if self.running():
            os.kill(self.process.pid, signum)

    def kill(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGCONT first, in case a test froze it); SIGKILL after `timeout`."""
        if not self.running():
            return self.process.returncode if self.process else None
        self.send(signal.SIGCONT)
        self.send(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def describe(self) -> str:
        if self.process is None:
            return "not started"
        code = self.process.poll()
        return f"pid {self.process.pid}, " + ("running" if code is None else f"exited {code}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
