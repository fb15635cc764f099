"""Throw-away caching resolvers on loopback, in front of the lab's authoritative server: Debian's
unbound (remote control plain or TLS) and PowerDNS Recursor (its HTTP API), for the resolver
flush tests and bench/cutover.py.

Each forwards the managed zone to the authoritative server (unbound: a stub-zone; the recursor:
forward-zones), caches answers for their TTL as any resolver does, and answers on 127.0.0.1 at
a free port. unbound needs `do-not-query-localhost: no` to ask a server on 127.0.0.1, no DNSSEC
validation (`module-config: "iterator"`: the lab zone is unsigned), and `local-zone: "test."
nodefault` to resolve a .test zone at all.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from lab import daemon
from lab.named import random_secret
from lab.ports import free_port

UNBOUND = os.environ.get("CONSULHA_UNBOUND", "unbound")
UNBOUND_CONTROL_SETUP = os.environ.get("CONSULHA_UNBOUND_CONTROL_SETUP", "unbound-control-setup")
RECURSOR = os.environ.get("CONSULHA_PDNS_RECURSOR", "pdns_recursor")


def preflight() -> str | None:
    """Why the resolvers cannot run here (None: they can)."""
    missing = [tool for tool in (UNBOUND, UNBOUND_CONTROL_SETUP, RECURSOR) if not shutil.which(tool)]
    return f"not installed: {', '.join(missing)} (scripts/install-deps test)" if missing else None


class ResolverProcess:
    """One resolver in the foreground on 127.0.0.1:<port>, forwarding `zone` to `upstream`."""

    name = "resolver"

    def __init__(self, workdir: str | Path, zone: str, upstream: tuple[str, int]):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.zone = zone.rstrip(".")
        self.upstream = upstream
        self.port = free_port()
        self.address = ("127.0.0.1", self.port)
        self.log_path = self.workdir / f"{self.name}.log"
        self._process: subprocess.Popen | None = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self, timeout: float = 15.0):
        self._write_files()
        self._process = daemon.spawn(self._command(), self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self._process.returncode}):\n"
                                   f"{daemon.log_tail(self.log_path)}")
            if self._answers() and self._control_ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s:\n{daemon.log_tail(self.log_path)}")

    def stop(self) -> None:
        daemon.terminate(self._process)
        self._process = None

    def _answers(self) -> bool:
        try:
            reply = dns.query.udp(dns.message.make_query(f"{self.zone}.", "SOA"), "127.0.0.1",
                                  timeout=0.5, port=self.port)
        except (dns.exception.DNSException, OSError):
            return False
        return reply.rcode() == dns.rcode.NOERROR

    def _control_ready(self) -> bool:
        return True

    def _write_files(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError


class Unbound(ResolverProcess):
    """unbound with its remote control on a free port: plain (control-use-cert: no), or TLS with
    the files unbound-control-setup writes into the work dir (`tls=True`)."""

    name = "unbound"

    def __init__(self, workdir: str | Path, zone: str, upstream: tuple[str, int], tls: bool = False):
        super().__init__(workdir, zone, upstream)
        self.tls = tls
        self.control_port = free_port()
        self.control = ("127.0.0.1", self.control_port)

    def files(self) -> dict[str, str]:
        """The TLS files a consulha config names (control_key, control_cert, server_cert)."""
        return {"control_key": str(self.workdir / "unbound_control.key"),
                "control_cert": str(self.workdir / "unbound_control.pem"),
                "server_cert": str(self.workdir / "unbound_server.pem")}

    def _write_files(self) -> None:
        if self.tls and not (self.workdir / "unbound_server.pem").exists():
            subprocess.run([UNBOUND_CONTROL_SETUP, "-d", str(self.workdir)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        host, port = self.upstream
        tls = (f"    server-key-file: {self.workdir}/unbound_server.key\n"
               f"    server-cert-file: {self.workdir}/unbound_server.pem\n"
               f"    control-key-file: {self.workdir}/unbound_control.key\n"
               f"    control-cert-file: {self.workdir}/unbound_control.pem\n") if self.tls else ""
        (self.workdir / "unbound.conf").write_text(
            "server:\n"
            f"    interface: 127.0.0.1@{self.port}\n"
            f"    directory: \"{self.workdir}\"\n"
            "    chroot: \"\"\n"
            "    username: \"\"\n"
            "    pidfile: \"\"\n"
            "    use-syslog: no\n"
            "    logfile: \"\"\n"
            "    verbosity: 1\n"
            "    do-daemonize: no\n"
            "    do-ip6: no\n"
            "    do-not-query-localhost: no\n"
            "    module-config: \"iterator\"\n"
            f"    local-zone: \"{self.zone.rsplit('.', 1)[-1]}.\" nodefault\n"
            "    access-control: 127.0.0.0/8 allow\n"
            "    num-threads: 1\n"
            "remote-control:\n"
            "    control-enable: yes\n"
            "    control-interface: 127.0.0.1\n"
            f"    control-port: {self.control_port}\n"
            f"    control-use-cert: {'yes' if self.tls else 'no'}\n"
            + tls +
            "stub-zone:\n"
            f"    name: \"{self.zone}\"\n"
            f"    stub-addr: {host}@{port}\n")

    def _command(self) -> list[str]:
        return [UNBOUND, "-d", "-c", str(self.workdir / "unbound.conf")]

    def _control_ready(self) -> bool:
        try:
            with socket.create_connection(self.control, timeout=0.5):
                return True
        except OSError:
            return False


class Recursor(ResolverProcess):
    """PowerDNS Recursor with its web server and API on a free port and a random API key."""

    name = "pdns_recursor"

    def __init__(self, workdir: str | Path, zone: str, upstream: tuple[str, int]):
        super().__init__(workdir, zone, upstream)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.api_key = random_secret()

    def _write_files(self) -> None:
        host, port = self.upstream
        (self.workdir / "recursor.conf").write_text(
            f"local-address=127.0.0.1:{self.port}\n"
            f"socket-dir={self.workdir}\n"
            "daemon=no\n"
            "write-pid=no\n"
            "dnssec=off\n"
            "threads=1\n"
            f"forward-zones={self.zone}={host}:{port}\n"
            "webserver=yes\n"
            "webserver-address=127.0.0.1\n"
            f"webserver-port={self.api_port}\n"
            "webserver-allow-from=127.0.0.0/8\n"
            f"api-key={self.api_key}\n"
            "loglevel=4\n"
            "quiet=yes\n")

    def _command(self) -> list[str]:
        return [RECURSOR, f"--config-dir={self.workdir}"]

    def _control_ready(self) -> bool:
        try:
            request = urllib.request.Request(f"{self.api_url}/api/v1/servers/localhost",
                                             headers={"X-API-Key": self.api_key})
            with urllib.request.urlopen(request, timeout=0.5):
                return True
        except OSError:
            return False
