"""A throw-away `consul agent -dev` on free loopback ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from lab import apirecord, daemon
from lab.ports import free_ports


class ConsulDev:
    """One single-server Consul (server + client agent in one process) bound to 127.0.0.1.

    Unlike `consul agent -dev` it keeps its Raft data on disk, so `restart()` behaves like a
    production restart: indexes (and so epochs) keep growing, sessions and KV survive.

    Every port is chosen explicitly so that parallel runs cannot collide; `start()` returns once
    the agent has elected itself leader and synced its node, or raises RuntimeError with the tail
    of Consul's log.

    While `lab.apirecord` is enabled (the test suite), `address` is a recording proxy in front
    of the HTTP port (lab.apirecord); the lab's own readiness probes bypass it.
    """

    def __init__(self, workdir: str | os.PathLike | None = None, node_name: str = "consulha-dev",
                 extra_hcl: tuple[str, ...] = ()):
        self._own_dir = workdir is None
        self.extra_hcl = extra_hcl
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="consulha-consul-"))
        self.node_name = node_name
        self.http_port, proxy_port, *others = free_ports(5)
        recording = apirecord.RECORDING
        self._proxy = (apirecord.RecordingProxy(proxy_port, self.http_port, recording)
                       if recording is not None else None)
        self._ports = dict(zip(("server", "serf_lan", "serf_wan"), others))
        self.log_path = self.workdir / "consul.log"
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The Consul process (for CPU figures in the benchmarks), None when not running."""
        return self._process.pid if self._process and self._process.poll() is None else None

    @property
    def address(self) -> str:
        """Where clients reach the HTTP API (through the recording proxy when there is one)."""
        port = self._proxy.port if self._proxy else self.http_port
        return f"http://127.0.0.1:{port}"

    def delay_requests(self, seconds: float) -> None:
        """Hold every request this long on its way to Consul (recording proxy only)."""
        if self._proxy is None:
            raise RuntimeError("delay_requests needs lab.apirecord enabled (the test suite)")
        self._proxy.delay = seconds

    @property
    def direct_address(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 15.0) -> "ConsulDev":
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            shutil.which("consul") or "consul", "agent", "-server", "-bootstrap-expect", "1",
            "-ui", "-data-dir", str(self.workdir / "data"), "-node", self.node_name,
            "-bind", "127.0.0.1", "-client", "127.0.0.1",
            "-http-port", str(self.http_port), "-dns-port", "-1",
            "-grpc-port", "-1",
            "-server-port", str(self._ports["server"]),
            "-serf-lan-port", str(self._ports["serf_lan"]),
            "-serf-wan-port", str(self._ports["serf_wan"]),
            "-hcl", 'performance { raft_multiplier = 1 }',
            "-hcl", 'log_level = "INFO"',
            *(arg for hcl in self.extra_hcl for arg in ("-hcl", hcl)),
        ]
        self._process = daemon.spawn(command, self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"consul exited with {self._process.returncode}:\n{self.log_tail()}")
            if self._ready():
                if self._proxy:
                    self._proxy.start()
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"consul not ready after {timeout}s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.direct_address}/v1/status/leader", timeout=1) as reply:
                if reply.read().strip() in (b"", b'""'):
                    return False
            with urllib.request.urlopen(f"{self.direct_address}/v1/catalog/node/{self.node_name}",
                                        timeout=1) as reply:
                return reply.read().strip() not in (b"", b"null")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the agent vanishes without a graceful leave (used to test Consul outages)."""
        if self._proxy:
            self._proxy.stop()
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; idempotent."""
        if self._proxy:
            self._proxy.stop()
        daemon.terminate(self._process)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, timeout: float = 15.0) -> "ConsulDev":
        """Stop (SIGTERM) and start again on the same ports and data."""
        own_dir, self._own_dir = self._own_dir, False
        self.stop()
        self._own_dir = own_dir
        return self.start(timeout)

    def log_tail(self, lines: int = 30) -> str:
        return daemon.log_tail(self.log_path, lines)

    def __enter__(self) -> "ConsulDev":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
