"""What the scale benchmark measures from outside the processes: CPU time and memory from /proc,
TCP connections to Consul from `ss`, and Consul's own request counters (Prometheus format, which
needs `telemetry { prometheus_retention_time }`: its summaries' counts are cumulative)."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request

# Consul's cumulative request counters need this in its config.
CONSUL_TELEMETRY = 'telemetry { prometheus_retention_time = "1h" disable_hostname = true }'

_TICKS = os.sysconf("SC_CLK_TCK")
_HTTP_COUNT = re.compile(r"^consul_http_(\w+?)_count (\d+(?:\.\d+)?)$", re.M)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def connections_to(port: int, pids: list[int]) -> int:
    """Established TCP connections from any of `pids` to 127.0.0.1:`port` (what Consul counts
    against `http_max_conns_per_client` for the client address)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    wanted = {f"pid={pid}," for pid in pids}
    return sum(1 for line in out.splitlines() for tag in wanted if tag in line)


def consul_requests(address: str, endpoint: str = "") -> int:
    """HTTP requests Consul has answered so far (the metrics endpoint's own excluded), or only
    those of one endpoint as Consul names it (e.g. PUT_v1_session_create)."""
    with urllib.request.urlopen(f"{address}/v1/agent/metrics?format=prometheus", timeout=5) as reply:
        text = reply.read().decode()
    return int(sum(float(count) for name, count in _HTTP_COUNT.findall(text)
                   if not name.startswith("GET_v1_agent_metrics") and name.startswith(endpoint)))
