"""A throw-away BIND primary on loopback, for the demo, tests and benchmarks.

It serves one zone that accepts RFC 2136 updates signed with a TSIG key,
under a least-privilege update-policy: the key may only touch the managed
records (A/AAAA/CNAME) and their ``_consulha.`` fence TXT records.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from lab import daemon
from lab.ports import free_port

NAMED = os.environ.get("CONSULHA_NAMED", "named")
ALGORITHM = "hmac-sha256"


def random_secret() -> str:
    """A fresh base64 secret of 32 random bytes, as `tsig-keygen` would make."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


class NamedServer:
    """Start `named -g` (foreground) on 127.0.0.1:<port> (TCP+UDP), in a private
    work dir, serving one primary zone with a TSIG key and a least-privilege
    update-policy."""

    def __init__(
        self,
        workdir: str | Path,
        zone: str = "example.test.",
        records: tuple[str, ...] | list[str] = ("app.example.test.",),
        port: int | None = None,
        key_name: str = "consulha-key",
        initial: dict[str, str] | None = None,
        extra_keys: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.zone = _absolute(zone)
        self.records = tuple(_absolute(r) for r in records)
        self.port = port if port is not None else free_port()
        self.address = ("127.0.0.1", self.port)
        self.key_name = key_name
        self.secret = random_secret()
        self.initial = {_absolute(k): v for k, v in (initial or {}).items()}
        # Keys that named knows but grants nothing: their updates must be REFUSED.
        self.extra_keys = dict(extra_keys or {})
        self.conf_path = self.workdir / "named.conf"
        self.zone_path = self.workdir / f"db.{self.zone.rstrip('.')}"
        self.log_path = self.workdir / "named.log"
        self._process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"NamedServer(zone={self.zone!r}, address={self.address!r}, key_name={self.key_name!r})"

    def __enter__(self) -> "NamedServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def tsig_key_file(self) -> Path:
        """Write the secret to <workdir>/tsig.key (mode 0600) and return its path."""
        path = self.workdir / "tsig.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.secret + "\n")
        os.chmod(path, 0o600)  # O_CREAT's mode is ignored when the file already existed
        return path

    def start(self, timeout: float = 10.0) -> "NamedServer":
        """Write the config and zone, start named and wait until it answers an
        SOA query. Raises RuntimeError with the tail of named's log if it exits
        or does not answer within `timeout` seconds (and then stops it)."""
        if self._process is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self._named_conf())
        self.zone_path.write_text(self._zone_file())
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [NAMED, "-4", "-g", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"named exited with status {code}:\n{self.log_tail()}")
            if self._answers_soa():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"named did not answer on {self.port} within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Safe to call twice."""
        process, self._process = self._process, None
        daemon.terminate(process, timeout)

    def log_tail(self, lines: int = 30) -> str:
        return daemon.log_tail(self.log_path, lines)

    def _answers_soa(self) -> bool:
        query = dns.message.make_query(self.zone, "SOA")
        try:
            # TCP, because a closed port refuses at once where UDP would wait out a timeout.
            response = dns.query.tcp(query, "127.0.0.1", timeout=0.5, port=self.port)
        except (dns.exception.Timeout, OSError, EOFError):
            return False
        # named answers SERVFAIL while the zone is still loading.
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def _named_conf(self) -> str:
        keys = {self.key_name: self.secret, **self.extra_keys}
        key_clauses = "".join(
            f'key "{name}" {{ algorithm {ALGORITHM}; secret "{secret}"; }};\n'
            for name, secret in keys.items()
        )
        grants = "".join(
            f"        grant {self.key_name} name {record} A AAAA CNAME;\n"
            f"        grant {self.key_name} name _consulha.{record} TXT;\n"
            for record in self.records
        )
        w = self.workdir
        return (
            "options {\n"
            f'    directory "{w}";\n'
            f"    listen-on port {self.port} {{ 127.0.0.1; }};\n"
            "    listen-on-v6 { none; };\n"
            "    recursion no;\n"
            "    dnssec-validation no;\n"
            f'    pid-file "{w}/named.pid";\n'
            f'    session-keyfile "{w}/session.key";\n'
            f'    managed-keys-directory "{w}";\n'
            "    notify no;\n"
            "    allow-transfer { none; };\n"
            "};\n"
            "controls { };\n"
            f"{key_clauses}"
            f'zone "{self.zone}" {{\n'
            "    type master;\n"
            f'    file "{self.zone_path}";\n'
            "    update-policy {\n"
            f"{grants}"
            "    };\n"
            "};\n"
        )

    def _zone_file(self) -> str:
        z = self.zone
        lines = [
            "$TTL 30",
            # The last SOA field (negative-caching TTL) is small so a freshly
            # published record is not hidden behind a cached NXDOMAIN for long.
            f"{z} IN SOA ns.{z} hostmaster.{z} 1 3600 600 86400 5",
            f"{z} IN NS ns.{z}",
            f"ns.{z} IN A 127.0.0.1",
        ]
        lines += [f"{record} IN A {value}" for record, value in self.initial.items()]
        return "\n".join(lines) + "\n"


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."
