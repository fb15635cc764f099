"""Processes of the lab's hosts that live in a namespace: BIND on the dns host, `consulha agent`
on the app hosts."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from lab.named import NAMED, NamedServer
from lab.netns import PEER_RECORD, RECORD, ZONE, NetLab
from lab.site import AgentProcess


class NsNamedServer(NamedServer):
    """NamedServer listening on its namespace's address (port 53) instead of 127.0.0.1."""

    def __init__(self, lab: NetLab, workdir: Path, host: str = "dns", **kwargs):
        super().__init__(workdir, zone=ZONE, records=(RECORD, PEER_RECORD), port=53, **kwargs)
        self.lab = lab
        self.host = host
        self.address = (lab.addr(host), 53)

    def _named_conf(self) -> str:
        conf = super()._named_conf()
        return conf.replace(f"listen-on port {self.port} {{ 127.0.0.1; }};",
                            f"listen-on port {self.port} {{ {self.address[0]}; }};")

    def start(self, timeout: float = 15.0) -> "NsNamedServer":
        if self._process is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self._named_conf())
        self.zone_path.write_text(self._zone_file())
        self._process = self.lab.popen(self.host, [NAMED, "-4", "-g", "-c", str(self.conf_path)],
                                       self.log_path, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                raise RuntimeError(f"named exited with status {code}:\n{self.log_tail()}")
            if self.lab.observe(self._answers_soa_remote):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"named did not answer within {timeout}s:\n{self.log_tail()}")

    def _answers_soa_remote(self) -> bool:
        query = dns.message.make_query(self.zone, "SOA")
        try:
            response = dns.query.tcp(query, self.address[0], timeout=0.5, port=self.port)
        except (dns.exception.Timeout, OSError, EOFError):
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


class NsAgentProcess(AgentProcess):
    """`consulha agent` inside an app host's namespace."""

    def __init__(self, lab: NetLab, host: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lab = lab
        self.host = host

    def start(self) -> "NsAgentProcess":
        command = [sys.executable, "-m", "consulha.cli", "agent", "-c", str(self.config_path)]
        if self.transitions_path:
            command += ["--transitions-file", str(self.transitions_path)]
        self.process = self.lab.popen(self.host, command, self.log_path)
        return self
