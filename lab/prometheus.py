"""A throw-away Prometheus (Debian's `prometheus` package) scraping local agents."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from lab import daemon
from lab.ports import free_port


class PrometheusServer:
    """Scrapes `targets` ("host:port") every `interval` seconds, with `rule_files` loaded."""

    def __init__(self, workdir: str | Path, targets: list[str], rule_files: list[str] = (),
                 interval: float = 1.0):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.targets = targets
        self.rule_files = list(rule_files)
        self.interval = interval
        self.log_path = self.workdir / "prometheus.log"
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "PrometheusServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": f"{self.interval:g}s",
                       "evaluation_interval": f"{self.interval:g}s"},
            "rule_files": self.rule_files,
            "scrape_configs": [{"job_name": "consulha",
                                "static_configs": [{"targets": self.targets}]}],
        }
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        command = [shutil.which("prometheus") or "prometheus", f"--config.file={config_path}",
                   f"--storage.tsdb.path={self.workdir / 'data'}",
                   f"--web.listen-address=127.0.0.1:{self.port}"]
        self._process = daemon.spawn(command, self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout}s:\n{self.log_tail()}")

    def api(self, path: str, **params: str) -> dict:
        """GET /api/v1/<path>; the `data` of a successful answer."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=5) as reply:
            answer = json.load(reply)
        if answer.get("status") != "success":
            raise RuntimeError(f"prometheus API {path}: {answer}")
        return answer["data"]

    def query(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: labels (without __name__, job, instance) -> value."""
        result = self.api("query", query=expr)["result"]
        return {tuple(sorted((k, v) for k, v in r["metric"].items()
                             if k not in ("__name__", "job", "instance"))): float(r["value"][1])
                for r in result}

    def stop(self) -> None:
        daemon.terminate(self._process)

    def log_tail(self, lines: int = 30) -> str:
        return daemon.log_tail(self.log_path, lines)
