"""A throw-away PowerDNS Authoritative server on loopback (Debian's pdns-server with the sqlite3
back end), for the tests and the command provider's example.

It serves its zones from a private sqlite3 file, accepts RFC 2136 updates (`dnsupdate=yes`)
signed with a TSIG key that each zone allows (TSIG-ALLOW-DNSUPDATE), and runs the HTTP API with
a random API key. The same attributes as lab.named.NamedServer, so tests run against either.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from lab.dnsserver import DnsServerProcess, absolute, write_secret
from lab.named import ALGORITHM, random_secret
from lab.ports import free_port

PDNS_SERVER = os.environ.get("CONSULHA_PDNS_SERVER", "pdns_server")
PDNSUTIL = os.environ.get("CONSULHA_PDNSUTIL", "pdnsutil")
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


class PowerDnsServer(DnsServerProcess):
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
        super().__init__(workdir, zone, port=None)
        self.zones = (self.zone, *(absolute(z) for z in extra_zones))
        self.records = tuple(absolute(r) for r in records)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.api_key = random_secret()
        self.key_name = key_name
        self.secret = random_secret()
        self.extra_keys = dict(extra_keys or {})
        self.log_path = self.workdir / "pdns.log"

    def __repr__(self) -> str:
        return f"PowerDnsServer(zones={self.zones!r}, address={self.address!r}, api={self.api_url!r})"

    def api_key_file(self) -> Path:
        """Write the API key to <workdir>/api.key (mode 0600) and return its path."""
        return write_secret(self.workdir / "api.key", self.api_key)

    def tsig_key_file(self) -> Path:
        """Write the TSIG secret to <workdir>/tsig.key (mode 0600) and return its path."""
        return write_secret(self.workdir / "tsig.key", self.secret)

    def _command(self) -> list[str]:
        return [PDNS_SERVER, f"--config-dir={self.workdir}"]

    def _write_files(self) -> None:
        """The config, and the database with zones and keys (pdnsutil)."""
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

    def _pdnsutil(self, *arguments: str) -> None:
        result = subprocess.run([PDNSUTIL, f"--config-dir={self.workdir}", *arguments], capture_output=True,
                                text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"pdnsutil {arguments[0]} failed: {result.stderr.strip()[-500:]}")

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

