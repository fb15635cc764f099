"""A throw-away PowerDNS Authoritative server on loopback (Debian's pdns-server with the sqlite3
back end), for the tests and the command provider's example.

It serves its zones from a private sqlite3 file, accepts RFC 2136 updates (`dnsupdate=yes`)
signed with a TSIG key that each zone allows (TSIG-ALLOW-DNSUPDATE), and runs the HTTP API with
a random API key. The same attributes as lab.named.NamedServer, so tests run against either.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from lab.named import ALGORITHM, random_secret
from lab.ports import free_port

PDNS_SERVER = os.environ.get("CONSULHA_PDNS_SERVER", "pdns_server")
PDNSUTIL = os.environ.get("CONSULHA_PDNSUTIL", "pdnsutil")
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


class PowerDnsServer:
    def __init__(
        self,
        workdir: str | Path,
        zone: str = "example.test.",
        records: tuple[str, ...] | list[str] = ("app.example.test.",),
        key_name: str = "consulha-key",
        extra_keys: dict[str, str] | None = None,
        extra_zones: tuple[str, ...] = (),
    ) -> None:
        """`extra_keys` are known to the server but allowed to update no zone."""
        self.workdir = Path(workdir).resolve()
        self.zone = _absolute(zone)
        self.zones = (self.zone, *(_absolute(z) for z in extra_zones))
        self.records = tuple(_absolute(r) for r in records)
        self.port = free_port()
        self.address = ("127.0.0.1", self.port)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.api_key = random_secret()
        self.key_name = key_name
        self.secret = random_secret()
        self.extra_keys = dict(extra_keys or {})
        self.log_path = self.workdir / "pdns.log"
        self._process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"PowerDnsServer(zones={self.zones!r}, address={self.address!r}, api={self.api_url!r})"

    def __enter__(self) -> "PowerDnsServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def api_key_file(self) -> Path:
        """Write the API key to <workdir>/api.key (mode 0600) and return its path."""
        path = self.workdir / "api.key"
        path.touch(mode=0o600)
        path.write_text(self.api_key + "\n")
        return path

    def start(self, timeout: float = 10.0) -> "PowerDnsServer":
        """Create the database, zones and keys, start pdns_server and wait until it answers
        an SOA query. Raises RuntimeError with the log's tail if it exits or stays silent."""
        if self._process is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "pdns.conf").write_text(self._conf())
        with sqlite3.connect(self.workdir / "pdns.sqlite3") as database:
            database.executescript(SCHEMA.read_text())
        self._pdnsutil("import-tsig-key", self.key_name, ALGORITHM, self.secret)
        for name, secret in self.extra_keys.items():
            self._pdnsutil("import-tsig-key", name, ALGORITHM, secret)
        for zone in self.zones:
            self._pdnsutil("create-zone", zone, f"ns.{zone}")
            # Serial 1, minimum (negative TTL) 5 s, as the BIND lab zone has.
            self._pdnsutil("replace-rrset", zone, "@", "SOA", "30",
                           f"ns.{zone} hostmaster.{zone} 1 3600 600 86400 5")
            self._pdnsutil("set-meta", zone, "TSIG-ALLOW-DNSUPDATE", self.key_name)
            # Without it the first update jumps the serial to a date (YYYYMMDDnn); INCREASE is +1.
            self._pdnsutil("set-meta", zone, "SOA-EDIT-DNSUPDATE", "INCREASE")
            # HTTP API changes leave the serial alone unless told (secondaries would never see them).
            self._pdnsutil("set-meta", zone, "SOA-EDIT-API", "INCREASE")
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen([PDNS_SERVER, f"--config-dir={self.workdir}"],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                raise RuntimeError(f"pdns_server exited with status {code}:\n{self.log_tail()}")
            if self._answers_soa():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"pdns_server did not answer on {self.port} within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def soa_serial(self, zone: str | None = None) -> int:
        response = dns.query.tcp(dns.message.make_query(zone or self.zone, "SOA"), "127.0.0.1", timeout=2,
                                 port=self.port)
        return response.answer[0][0].serial

    def _pdnsutil(self, *arguments: str) -> None:
        result = subprocess.run([PDNSUTIL, f"--config-dir={self.workdir}", *arguments], capture_output=True,
                                text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"pdnsutil {arguments[0]} failed: {result.stderr.strip()[-500:]}")

    def _answers_soa(self) -> bool:
        try:
            response = dns.query.tcp(dns.message.make_query(self.zone, "SOA"), "127.0.0.1", timeout=0.5,
                                     port=self.port)
        except (dns.exception.Timeout, OSError, EOFError):
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def _conf(self) -> str:
        w = self.workdir
        return "\n".join([
            "launch=gsqlite3",
            f"gsqlite3-database={w}/pdns.sqlite3",
            "local-address=127.0.0.1",
            f"local-port={self.port}",
            "dnsupdate=yes",
            # Who may send updates at all; each zone then names the TSIG key it accepts.
            "allow-dnsupdate-from=127.0.0.0/8",
            "api=yes",
            f"api-key={self.api_key}",
            "webserver=yes",
            "webserver-address=127.0.0.1",
            f"webserver-port={self.api_port}",
            "webserver-allow-from=127.0.0.0/8",
            f"socket-dir={w}",
            "guardian=no",
            "daemon=no",
            "disable-syslog=yes",
            "write-pid=no",
            "loglevel=4",
            "",
        ])


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."
