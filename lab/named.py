"""A throw-away BIND primary (and secondaries) on loopback, for the demo, tests and benchmarks.

The primary serves its zones and accepts RFC 2136 updates signed with a TSIG key, under a
least-privilege update-policy: the key may only touch the managed records (A/AAAA/CNAME) and
their ``_consulha.`` fence TXT records. A `NamedSecondary` transfers the zones from it and
follows its changes by NOTIFY + IXFR, as secondaries that clients ask do in production.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from lab.dnsserver import DnsServerProcess, write_secret
from lab.dnsserver import absolute as _absolute

NAMED = os.environ.get("CONSULHA_NAMED", "named")
ALGORITHM = "hmac-sha256"


def random_secret() -> str:
    """A fresh base64 secret of 32 random bytes, as `tsig-keygen` would make."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


class NamedServer(DnsServerProcess):
    """The primary: its zones with a TSIG key and a least-privilege update-policy."""

    def __init__(
        self,
        workdir: str | Path,
        zone: str = "example.test.",
        records: tuple[str, ...] | list[str] = ("app.example.test.",),
        port: int | None = None,
        key_name: str = "consulha-key",
        initial: dict[str, str] | None = None,
        extra_keys: dict[str, str] | None = None,
        extra_zones: tuple[str, ...] = (),
        notify_ports: tuple[int, ...] = (),
        refused_zones: tuple[str, ...] = (),
    ) -> None:
        """`records` may lie in `zone` or any of `extra_zones`; each is granted in its zone.
        After each change, NOTIFY goes at once to the secondaries on 127.0.0.1:`notify_ports`.
        `refused_zones` (among `extra_zones`) are loaded but every query and update for them is
        REFUSED, as by a server whose ACLs leave the client out."""
        super().__init__(workdir, zone, port)
        self.zones = (self.zone, *(_absolute(z) for z in extra_zones))
        self.conf_path = self.workdir / "named.conf"
        self.log_path = self.workdir / "named.log"
        self.notify_ports = tuple(notify_ports)
        self.refused_zones = tuple(_absolute(z) for z in refused_zones)
        self.records = tuple(_absolute(r) for r in records)
        self.key_name = key_name
        self.secret = random_secret()
        self.initial = {_absolute(k): v for k, v in (initial or {}).items()}
        # Keys that named knows but grants nothing: their updates must be REFUSED.
        self.extra_keys = dict(extra_keys or {})
        self.zone_path = self.zone_path_of(self.zone)

    def __repr__(self) -> str:
        return f"NamedServer(zones={self.zones!r}, address={self.address!r}, key_name={self.key_name!r})"

    def tsig_key_file(self) -> Path:
        """Write the secret to <workdir>/tsig.key (mode 0600) and return its path."""
        return write_secret(self.workdir / "tsig.key", self.secret)

    def zone_path_of(self, zone: str) -> Path:
        return self.workdir / f"db.{zone.rstrip('.')}"

    def _command(self) -> list[str]:
        return [NAMED, "-4", "-g", "-c", str(self.conf_path)]

    def _write_files(self) -> None:
        self.conf_path.write_text(self._named_conf())
        for zone in self.zones:
            self.zone_path_of(zone).write_text(self._zone_file(zone))

    def _named_conf(self) -> str:
        keys = {self.key_name: self.secret, **self.extra_keys}
        key_clauses = "".join(
            f'key "{name}" {{ algorithm {ALGORITHM}; secret "{secret}"; }};\n'
            for name, secret in keys.items()
        )
        if self.notify_ports:
            # Only to the listed secondaries (none run on port 53), at once: notify-delay
            # would otherwise hold each NOTIFY back for up to 5 s, and the default notify-rate
            # (20) sends a second zone's NOTIFY only at the rate limiter's next 500 ms tick.
            targets = " ".join(f"127.0.0.1 port {port};" for port in self.notify_ports)
            notify = (f"    notify explicit;\n    also-notify {{ {targets} }};\n    notify-delay 0;\n"
                      "    notify-rate 1000;\n")
        else:
            notify = "    notify no;\n"
        transfer = "127.0.0.1;" if self.notify_ports else "none;"
        return (
            "options {\n"
            f'    directory "{self.workdir}";\n'
            f"    listen-on port {self.port} {{ 127.0.0.1; }};\n"
            + _common_options(self.workdir) + notify +
            f"    allow-transfer {{ {transfer} }};\n"
            "};\n"
            "controls { };\n"
            f"{key_clauses}"
            + "".join(self._zone_clause(zone) for zone in self.zones)
        )

    def _zone_clause(self, zone: str) -> str:
        if zone in self.refused_zones:
            return (f'zone "{zone}" {{\n    type master;\n    file "{self.zone_path_of(zone)}";\n'
                    "    allow-query { none; };\n    allow-update { none; };\n};\n")
        grants = "".join(
            f"        grant {self.key_name} name {record} A AAAA CNAME;\n"
            f"        grant {self.key_name} name _consulha.{record} TXT;\n"
            for record in self.records if _zone_of(record, self.zones) == zone
        )
        return (
            f'zone "{zone}" {{\n'
            "    type master;\n"
            f'    file "{self.zone_path_of(zone)}";\n'
            "    update-policy {\n"
            f"{grants or f'        grant {self.key_name} name nothing.{zone} TXT;'}\n"
            "    };\n"
            "};\n"
        )

    def _zone_file(self, zone: str | None = None) -> str:
        z = zone or self.zone
        lines = [
            "$TTL 30",
            # The last SOA field (negative-caching TTL) is small so a freshly
            # published record is not hidden behind a cached NXDOMAIN for long.
            f"{z} IN SOA ns.{z} hostmaster.{z} 1 3600 600 86400 5",
            f"{z} IN NS ns.{z}",
            f"ns.{z} IN A 127.0.0.1",
        ]
        lines += [f"{record} IN A {value}" for record, value in self.initial.items()
                  if _zone_of(record, self.zones) == z]
        return "\n".join(lines) + "\n"


class NamedSecondary(DnsServerProcess):
    """Secondary for every zone of `primary`: it transfers them at start and follows NOTIFY +
    IXFR. Give its port to the primary's `notify_ports`, or it only catches up at the zone's
    SOA refresh (an hour): a lagging secondary."""

    def __init__(self, workdir: str | Path, primary: NamedServer, port: int | None = None) -> None:
        super().__init__(workdir, primary.zone, port)
        self.conf_path = self.workdir / "named.conf"
        self.log_path = self.workdir / "named.log"
        self.primary = primary
        self.zones = primary.zones

    def __repr__(self) -> str:
        return f"NamedSecondary(zones={self.primary.zones!r}, address={self.address!r})"

    _command = NamedServer._command

    def _write_files(self) -> None:
        self.conf_path.write_text(self._named_conf())

    def _named_conf(self) -> str:
        zones = "".join(
            f'zone "{zone}" {{\n    type secondary;\n'
            f"    primaries {{ 127.0.0.1 port {self.primary.port}; }};\n"
            f'    file "{self.workdir / ("db." + zone.rstrip("."))}";\n}};\n'
            for zone in self.zones
        )
        return (
            "options {\n"
            f'    directory "{self.workdir}";\n'
            f"    listen-on port {self.port} {{ 127.0.0.1; }};\n"
            + _common_options(self.workdir) +
            "    notify no;\n"
            # The default (20) lets a second zone's refresh after its NOTIFY wait for the next
            # 500 ms tick of the rate limiter.
            "    serial-query-rate 1000;\n"
            "    allow-transfer { none; };\n"
            "};\n"
            "controls { };\n"
            f"{zones}"
        )


def _common_options(workdir: Path) -> str:
    return (
        "    listen-on-v6 { none; };\n"
        "    recursion no;\n"
        "    dnssec-validation no;\n"
        f'    pid-file "{workdir}/named.pid";\n'
        f'    session-keyfile "{workdir}/session.key";\n'
        f'    managed-keys-directory "{workdir}";\n'
    )


def _zone_of(name: str, zones: tuple[str, ...]) -> str | None:
    """The longest of `zones` that `name` lies in."""
    inside = [zone for zone in zones if name == zone or name.endswith("." + zone)]
    return max(inside, key=len, default=None)

