"""The ZooKeeper design's site agent, written with kazoo as well as that design allows (bench
tooling: the peer consulha is measured against, not product). The rules are in zkdecide.py.

    python -m bench.peers.zkagent --site a --peer b --zk 10.77.0.11:2181,... --root /consulha-zk/1 \
        --service api=http://127.0.0.1:PORT/health --dns-server 10.77.0.53 --zone example.test. \
        --record zk.example.test. --value 192.0.2.1 --tsig-name consulha-key \
        --tsig-secret-file tsig.key --events events-a.jsonl

ZooKeeper layout under --root: `active` (persistent, data = the active site's name) and
`sites/<site>/<service>` (ephemeral, held while the service's health probe passes).

kazoo does the ZooKeeper side as its docs recommend: default timeouts (10 s session), the
DataWatch and ChildrenWatch recipes (they re-arm after every event, reconnection and session
loss), a connection-state listener, and after a lost session (its ephemerals are gone) the
agent creates them again on the new one. kazoo calls back from its own threads: the callbacks
only queue what they saw; one loop observes, decides (zkdecide.decide) and acts.

Event file (JSON lines, one per role change and DNS write): {"t": wall-clock seconds,
"monotonic": CLOCK_MONOTONIC seconds, "site", "event": "active"|"standby"|"dns_write", ...}.
SIGTERM closes the session (its ephemerals go at once); SIGKILL leaves them to expire.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.protocol.states import KazooState

from bench.peers.zkdecide import Plan, Role, View, decide

log = logging.getLogger("zkagent")


class EventFile:
    """Appends one JSON line per event, flushed at once (the bench reads it while we run)."""

    def __init__(self, path: Path, site: str):
        self.path = path
        self.site = site

    def write(self, event: str, **fields) -> None:
        line = {"t": time.time(), "monotonic": time.monotonic(), "site": self.site,
                "event": event, **fields}
        with open(self.path, "a") as out:
            out.write(json.dumps(line) + "\n")


def probe(url: str, timeout: float) -> bool:
    """The service's health as the lab's Consul check sees it: HTTP 2xx within `timeout`."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return 200 <= reply.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass(frozen=True)
class DnsTarget:
    server: str
    port: int
    zone: str
    record: str
    value: str
    ttl: int
    key_name: str
    secret: str


def write_dns(target: DnsTarget, timeout: float = 2.0) -> str:
    """Point the record at this site: a plain RFC 2136 replace, TSIG-signed, no prerequisite
    (the design had no fencing). Returns the rcode's name, or the error's."""
    keyring = dns.tsigkeyring.from_text({target.key_name: target.secret})
    update = dns.update.UpdateMessage(target.zone, keyring=keyring, keyalgorithm=dns.tsig.HMAC_SHA256)
    update.replace(target.record, target.ttl, "A", target.value)
    try:
        reply = dns.query.tcp(update, target.server, port=target.port, timeout=timeout)
    except (dns.exception.DNSException, OSError, EOFError) as error:
        return type(error).__name__
    return dns.rcode.to_text(reply.rcode())


class ZkSiteAgent:
    def __init__(self, args: argparse.Namespace, dns_target: DnsTarget):
        self.site = args.site
        self.peer = args.peer
        self.services = dict(args.service)
        self.check_interval = args.check_interval
        self.check_timeout = args.check_timeout
        self.dns = dns_target
        self.events = EventFile(Path(args.events), self.site)
        self.root = args.root.rstrip("/")
        self.client = KazooClient(hosts=args.zk)   # kazoo's defaults: 10 s session timeout
        self.inbox: queue.Queue = queue.Queue()
        self.stopping = False
        # The observed state (`View` is built from it before every decision).
        self.connected = False
        self.watching = False
        self.active: str | None = None
        self.active_version = -1
        self.peer_up: frozenset[str] | None = None
        self.healthy: frozenset[str] = frozenset()
        self.held: frozenset[str] = frozenset()
        self.role: Role | None = None

    # -- paths ----------------------------------------------------------------------------------

    @property
    def active_path(self) -> str:
        return f"{self.root}/active"

    def site_dir(self, site: str) -> str:
        return f"{self.root}/sites/{site}"

    def service_path(self, name: str) -> str:
        return f"{self.site_dir(self.site)}/{name}"

    # -- kazoo callbacks (kazoo's threads: they only queue) -------------------------------------

    def _on_state(self, state: str) -> None:
        self.inbox.put(("state", state))

    def _on_active(self, data: bytes | None, stat) -> None:
        self.inbox.put(("active", (data.decode() if data else None, stat.version if stat else -1)))

    def _on_peer(self, children: list[str]) -> None:
        self.inbox.put(("peer", frozenset(children)))

    # -- observe --------------------------------------------------------------------------------

    def _apply(self, kind: str, value) -> None:
        if kind == "state":
            log.info("ZooKeeper connection %s", value)
            self.connected = value == KazooState.CONNECTED
            if value == KazooState.LOST:
                # The session expired: ZooKeeper has deleted its ephemerals. kazoo connects
                # again with a new session, on which the loop creates them again.
                self.held = frozenset()
        elif kind == "active":
            site, version = value
            # The watch may report a read older than our own write of `active`: keep the newer.
            if version >= self.active_version or site is None:
                self.active, self.active_version = site, version
        elif kind == "peer":
            if value != self.peer_up:
                log.info("site %s's service znodes: %s", self.peer, sorted(value))
            self.peer_up = value

    def _drain(self, timeout: float) -> None:
        try:
            self._apply(*self.inbox.get(timeout=max(0.0, timeout)))
            while True:
                self._apply(*self.inbox.get_nowait())
        except queue.Empty:
            pass

    def _probe(self) -> None:
        healthy = frozenset(name for name, url in self.services.items()
                            if probe(url, self.check_timeout))
        if healthy != self.healthy:
            log.info("healthy services: %s", sorted(healthy))
        self.healthy = healthy

    def _watch(self) -> None:
        """Once connected: the parents, then the two watches for the agent's whole life."""
        try:
            for site in (self.site, self.peer):
                self.client.ensure_path(self.site_dir(site))
            self.client.DataWatch(self.active_path, self._on_active)
            self.client.ChildrenWatch(self.site_dir(self.peer), self._on_peer)
            self.watching = True
        except KazooException as error:
            log.warning("setting the watches failed (%s); again on the next pass", error)

    def view(self) -> View:
        return View(site=self.site, services=frozenset(self.services), healthy=self.healthy,
                    connected=self.connected and self.watching, active=self.active,
                    peer_up=self.peer_up, held=self.held, role=self.role)

    # -- act ------------------------------------------------------------------------------------

    def _announce(self, role: Role, reason: str) -> None:
        log.info("%s: %s", role.value, reason)
        self.events.write(role.value, reason=reason)
        self.role = role

    def _write_dns(self) -> None:
        rcode = write_dns(self.dns)
        log.info("DNS %s -> %s: %s", self.dns.record, self.dns.value, rcode)
        self.events.write("dns_write", value=self.dns.value, rcode=rcode, ok=rcode == "NOERROR")

    def _create(self, name: str) -> None:
        path = self.service_path(name)
        try:
            self.client.create(path, self.site.encode(), ephemeral=True)
        except NodeExistsError:
            # Ours (a create whose answer was lost) or an earlier session's that has not
            # expired yet (this agent restarted): the latter is retried on the next pass.
            stat = self.client.exists(path)
            if stat is None or stat.ephemeralOwner != self.client.client_id[0]:
                return
        self.held |= {name}

    def _delete(self, name: str) -> None:
        try:
            self.client.delete(self.service_path(name))
        except NoNodeError:
            pass
        self.held -= {name}

    def act(self, plan: Plan) -> None:
        try:
            if plan.announce and not plan.take_over:
                self._announce(plan.announce, plan.reason)
            for name in sorted(plan.delete):
                self._delete(name)
            for name in sorted(plan.create):
                self._create(name)
            if plan.claim and self.held == frozenset(self.services):
                try:
                    self.client.create(self.active_path, self.site.encode())
                except NodeExistsError:
                    return   # the peer claimed first: the watch on `active` says so
                self.active, self.active_version = self.site, 0
                self._announce(Role.ACTIVE, "claimed the active znode: no site was active")
                self._write_dns()
            if plan.take_over:
                if plan.announce:
                    self._announce(plan.announce, plan.reason)
                self._write_dns()
                stat = self.client.set(self.active_path, self.site.encode())
                self.active, self.active_version = self.site, stat.version
        except KazooException as error:
            log.warning("ZooKeeper call failed (%s); again on the next pass", type(error).__name__)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, max_runtime: float) -> None:
        self.client.add_listener(self._on_state)
        self.client.start_async()
        deadline = time.monotonic() + max_runtime
        next_probe = time.monotonic()
        while not self.stopping and time.monotonic() < deadline:
            self._drain(next_probe - time.monotonic())
            if time.monotonic() >= next_probe:
                self._probe()
                next_probe = time.monotonic() + self.check_interval
            if self.connected and not self.watching:
                self._watch()
            self.act(decide(self.view()))
        self.client.stop()
        self.client.close()


def _service(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url:
        raise argparse.ArgumentTypeError(f"--service wants NAME=URL, got {text!r}")
    return name, url


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", required=True)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--zk", required=True, help="host:port,host:port,... of the ensemble")
    parser.add_argument("--root", required=True, help="znode under which this pair lives")
    parser.add_argument("--service", type=_service, action="append", required=True)
    parser.add_argument("--check-interval", type=float, default=1.0)
    parser.add_argument("--check-timeout", type=float, default=1.0)
    parser.add_argument("--dns-server", required=True, help="address[:port] of the DNS primary")
    parser.add_argument("--zone", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--value", required=True, help="this site's A record value")
    parser.add_argument("--ttl", type=int, default=30)
    parser.add_argument("--tsig-name", required=True)
    parser.add_argument("--tsig-secret-file", required=True)
    parser.add_argument("--events", required=True, help="JSON-lines event file (appended)")
    parser.add_argument("--max-runtime", type=float, default=6 * 3600,
                        help="exit after this many seconds (a bound for a forgotten agent)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.site} %(name)s %(message)s")
    host, _, port = args.dns_server.partition(":")
    target = DnsTarget(server=host, port=int(port or 53), zone=args.zone, record=args.record,
                       value=args.value, ttl=args.ttl, key_name=args.tsig_name,
                       secret=Path(args.tsig_secret_file).read_text().strip())
    agent = ZkSiteAgent(args, target)

    def stop(signum, frame):
        agent.stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run(args.max_runtime)


if __name__ == "__main__":
    main()
