"""A DNS server process on loopback for the lab: BIND (lab.named) and PowerDNS (lab.pdns)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from lab import daemon
from lab.ports import free_port


def absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


def write_secret(path: Path, secret: str) -> Path:
    """Write `secret` to `path` with mode 0600 and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode is ignored when the file already existed
    return path


class DnsServerProcess:
    """One DNS server in the foreground on 127.0.0.1:<port> (TCP+UDP) in a private work dir.
    Subclasses set `zones` (every zone it must serve before it counts as started), write their
    files in `_write_files` and give their command line in `_command`."""

    refused_zones: tuple[str, ...] = ()  # loaded, but refused to everybody: never "answers"

    def __init__(self, workdir: str | Path, zone: str, port: int | None) -> None:
        self.workdir = Path(workdir).resolve()
        self.zone = absolute(zone)
        self.port = port if port is not None else free_port()
        self.address = ("127.0.0.1", self.port)
        self.zones = (self.zone,)
        self.log_path = self.workdir / "server.log"
        self._process: subprocess.Popen | None = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self, timeout: float = 10.0):
        """Write its files, start it and wait until it answers an SOA query for every
        zone. Raises RuntimeError with the tail of its log if it exits or does not
        answer within `timeout` seconds (and then stops it)."""
        if self._process is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_files()
        self._process = daemon.spawn(self._command(), self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"{self._command()[0]} exited with status {code}:\n{self.log_tail()}")
            if self._answers_soa():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self._command()[0]} did not answer on {self.port} within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Safe to call twice."""
        process, self._process = self._process, None
        daemon.terminate(process, timeout)

    def log_tail(self, lines: int = 30) -> str:
        return daemon.log_tail(self.log_path, lines)

    def soa_serial(self, zone: str | None = None) -> int:
        """The zone's SOA serial as this server answers it now (TCP)."""
        response = dns.query.tcp(dns.message.make_query(zone or self.zone, "SOA"), "127.0.0.1", timeout=2,
                                 port=self.port)
        return response.answer[0][0].serial

    def _write_files(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _answers_soa(self) -> bool:
        """Whether it serves every zone (a secondary: has transferred every zone) but those it
        refuses on purpose."""
        for zone in set(self.zones) - set(self.refused_zones):
            query = dns.message.make_query(zone, "SOA")
            try:
                # TCP, because a closed port refuses at once where UDP would wait out a timeout.
                response = dns.query.tcp(query, "127.0.0.1", timeout=0.5, port=self.port)
            except (dns.exception.Timeout, OSError, EOFError):
                return False
            # A server answers SERVFAIL while the zone is still loading or transferring.
            if response.rcode() != dns.rcode.NOERROR or not response.answer:
                return False
        return True
