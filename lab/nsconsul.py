"""The three-site Consul cluster of the lab: one agent (server or client) per namespace."""

from __future__ import annotations

import json
import signal
import subprocess

from lab.netns import SERVERS, NetLab


class ConsulNode:
    """One Consul agent (server or client) in its namespace, with its own data dir."""

    def __init__(self, lab: NetLab, host: str, server: bool):
        self.lab = lab
        self.host = host
        self.server = server
        self.name = ("srv-" if server else "app-") + host[1]
        self.dir = lab.workdir / f"consul-{host}"
        self.log_path = lab.workdir / f"consul-{host}.log"
        self.process: subprocess.Popen | None = None
        self.paused = False

    @property
    def address(self) -> str:
        return self.lab.addr(self.host)

    def _config(self) -> dict:
        config = {
            "node_name": self.name, "datacenter": "dc1", "data_dir": str(self.dir / "data"),
            "bind_addr": self.address, "client_addr": f"127.0.0.1 {self.address}",
            "retry_join": [self.lab.addr(s) for s in SERVERS], "retry_interval": "1s",
            "ports": {"dns": -1, "grpc": -1}, "log_level": "INFO", "leave_on_terminate": False,
            "disable_update_check": True, "performance": {"raft_multiplier": 1},
        }
        if self.server:
            config.update({"server": True, "bootstrap_expect": 3,
                           "autopilot": {"cleanup_dead_servers": False}})
        return config

    def start(self) -> "ConsulNode":
        if self.running():
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "config.json"
        path.write_text(json.dumps(self._config(), indent=1))
        self.process = self.lab.popen(self.host, ["consul", "agent", "-config-file", str(path)],
                                      self.log_path)
        self.paused = False
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
        self.paused = False

    def pause(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
