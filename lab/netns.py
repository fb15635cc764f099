"""Three sites in network namespaces, for the fault-injection (chaos) suite. Needs root.

Topology (every name starts with `cha-<6 hex>-`, so leftovers of a crashed run can be swept):

    hub  : a bridge; every other namespace hangs off it by a veth pair; partitions are nftables
           rules in the hub's `bridge` family forward chain (packets are dropped in the middle of
           the network, as a real partition would: no local EPERM)
    sa, sb, sw : Consul servers of sites a, b and the witness w
    ha, hb     : application hosts of a and b: Consul client agent, toy service, consulha agent
    dns        : BIND, the authoritative primary for the managed record
    obs        : the observer: the suite's own queries (sampler, waits) run from here

Addresses come from the private test prefix 10.77.0.0/24, which exists only inside these
namespaces: nothing is added to the root namespace, so no traffic leaves them.

Processes are started with `ip netns exec` (which execs, so the pid is the real process); the
suite's own sockets are opened from threads that entered the observer (or an app host) namespace
with setns(2) via ctypes (Python 3.11 has no os.setns).
"""

from __future__ import annotations

import base64
import concurrent.futures
import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from lab.invariants import Sample
from lab.named import NAMED, NamedServer
from lab.pair import SITE_VALUES, wait_until
from lab.site import AgentProcess, http_service, site_config, write_config
from lab.toy import ToyService

PREFIX = "cha-"
NAME_PATTERN = re.compile(r"^cha-([0-9a-f]{6})-[a-z]+$")
OWNER_DIR = Path("/run/consulha-chaos")
SUBNET = "10.77.0"
HOSTS = {"sa": 11, "sb": 12, "sw": 13, "ha": 21, "hb": 22, "dns": 53, "obs": 100}
SERVERS = ("sa", "sb", "sw")
CLIENTS = ("ha", "hb")
SITES = {"a": ("sa", "ha"), "b": ("sb", "hb"), "w": ("sw",)}
CLONE_NEWNET = 0x40000000
GROUP = "app"
LEADER_KEY = f"consulha/{GROUP}/leader"
ZONE = "example.test."
RECORD = "app.example.test."

_libc = ctypes.CDLL(None, use_errno=True)


def preflight() -> str | None:
    """Why the chaos suite cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft", "consul", NAMED):
        if shutil.which(tool) is None:
            return f"`{tool}` not found"
    return None


def _run(*argv: str, check: bool = True, timeout: float = 20.0, input: str | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def enter_netns(name: str) -> None:
    """Move the calling thread (only it) into network namespace `name`."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def in_netns(name: str, function: Callable[[], object], timeout: float = 30.0) -> object:
    """Run `function` in a fresh thread inside namespace `name`; sockets it opens live there."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            enter_netns(name)
            box["result"] = function()
        except BaseException as error:  # noqa: BLE001 (re-raised in the caller)
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True, name=f"netns-{name}")
    thread.start()
    thread.join(timeout)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    if thread.is_alive():
        raise TimeoutError(f"function in {name} still running after {timeout}s")
    return box.get("result")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _our_namespaces() -> dict[str, list[str]]:
    """lab id -> its namespaces, for every namespace named like ours."""
    found: dict[str, list[str]] = {}
    for line in _run("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        match = NAME_PATTERN.match(name)
        if match:
            found.setdefault(match.group(1), []).append(name)
    return found


def _kill_namespace_processes(names: Iterable[str]) -> None:
    for name in names:
        for pid in _run("ip", "netns", "pids", name, check=False).split():
            if pid == str(os.getpid()):
                continue
            try:
                os.kill(int(pid), signal.SIGCONT)
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def _delete_namespaces(names: Iterable[str]) -> None:
    names = list(names)
    _kill_namespace_processes(names)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
            _run("ip", "netns", "pids", n, check=False).strip() for n in names):
        time.sleep(0.05)
    for name in names:
        _run("ip", "netns", "delete", name, check=False)


def sweep_stale() -> list[str]:
    """Remove namespaces (and their processes, links, bridge, nft tables) left by crashed runs:
    those whose owner process (recorded in /run/consulha-chaos/<id>.owner) is gone. A concurrent
    live run is left alone."""
    swept = []
    for lab_id, names in _our_namespaces().items():
        owner = OWNER_DIR / f"{lab_id}.owner"
        try:
            pid = int(owner.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = 0
        if pid and _alive(pid) and pid != os.getpid():
            continue
        _delete_namespaces(names)
        owner.unlink(missing_ok=True)
        swept += names
    return swept


class NetLab:
    """The namespaces, the bridge, the veths, the nft partition table, and processes in them."""

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self.id = secrets.token_hex(3)
        self.prefix = f"{PREFIX}{self.id}-"
        self.processes: list[subprocess.Popen] = []
        self._obs: concurrent.futures.ThreadPoolExecutor | None = None
        self.created = False

    def ns(self, host: str) -> str:
        return f"{self.prefix}{host}"

    @staticmethod
    def addr(host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    # -- build and tear down --------------------------------------------------------------------

    def create(self) -> "NetLab":
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        (OWNER_DIR / f"{self.id}.owner").write_text(f"{os.getpid()}\n")
        self.created = True
        hub = self.ns("hub")
        _run("ip", "netns", "add", hub)
        _run("ip", "-n", hub, "link", "set", "lo", "up")
        _run("ip", "-n", hub, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", hub, "link", "set", "br0", "up")
        for host in HOSTS:
            name = self.ns(host)
            port = f"c{self.id}{host}"[:15]
            _run("ip", "netns", "add", name)
            _run("ip", "link", "add", port, "netns", hub, "type", "veth", "peer", "name", "eth0",
                 "netns", name)
            _run("ip", "-n", hub, "link", "set", port, "master", "br0", "up")
            _run("ip", "-n", name, "link", "set", "lo", "up")
            _run("ip", "-n", name, "addr", "add", f"{self.addr(host)}/24", "dev", "eth0")
            _run("ip", "-n", name, "link", "set", "eth0", "up")
        _run("ip", "netns", "exec", hub, "nft", "-f", "-", input=(
            "table bridge chaos {\n"
            "  chain partition { type filter hook forward priority 0; policy accept; }\n"
            "}\n"))
        self._obs = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="observer", initializer=enter_netns,
            initargs=(self.ns("obs"),))
        return self

    def destroy(self) -> None:
        if self._obs is not None:
            self._obs.shutdown(wait=False, cancel_futures=True)
            self._obs = None
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.send_signal(signal.SIGCONT)
                    process.kill()
                except ProcessLookupError:
                    pass
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.created:
            _delete_namespaces([self.ns("hub")] + [self.ns(h) for h in HOSTS])
            (OWNER_DIR / f"{self.id}.owner").unlink(missing_ok=True)
            self.created = False

    # -- processes and calls in namespaces ------------------------------------------------------

    def popen(self, host: str, argv: list[str], log_path: Path, **kwargs) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            process = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *argv],
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def observe(self, function: Callable, *args, timeout: float = 30.0, **kwargs):
        """Call `function` from the observer namespace and return its result."""
        assert self._obs is not None, "lab not created"
        return self._obs.submit(function, *args, **kwargs).result(timeout)

    # -- partitions -----------------------------------------------------------------------------

    def nft(self, *rules: str) -> None:
        """Add rules to the partition chain (bridge family: match `ip saddr/daddr`, `th dport`)."""
        script = "".join(f"add rule bridge chaos partition {rule}\n" for rule in rules)
        _run("ip", "netns", "exec", self.ns("hub"), "nft", "-f", "-", input=script)

    def heal(self) -> None:
        _run("ip", "netns", "exec", self.ns("hub"), "nft", "flush", "chain", "bridge", "chaos",
             "partition")

    def rules(self) -> str:
        return _run("ip", "netns", "exec", self.ns("hub"), "nft", "list", "chain", "bridge",
                    "chaos", "partition")

    def _set(self, hosts: Iterable[str]) -> str:
        return "{ " + ", ".join(self.addr(h) for h in hosts) + " }"

    def cut(self, group: Iterable[str], others: Iterable[str], extra: str = "") -> None:
        """Drop traffic both ways between the hosts of `group` and those of `others` (`extra`:
        more match/statement text before `drop`, e.g. a port or `numgen random mod 100 < 30`)."""
        g, o = self._set(group), self._set(others)
        self.nft(f"ip saddr {g} ip daddr {o} {extra} drop",
                 f"ip saddr {o} ip daddr {g} {extra} drop")

    def isolate(self, hosts: Iterable[str], extra: str = "") -> None:
        """Cut `hosts` from every other host but the observer (which is not part of the system)."""
        hosts = list(hosts)
        others = [h for h in HOSTS if h not in hosts and h != "obs"]
        self.cut(hosts, others, extra)

    def block_port(self, host: str, port: int) -> None:
        """Drop tcp+udp traffic of `host` to or from `port` (both directions)."""
        a = self.addr(host)
        for direction in ("saddr", "daddr"):
            for side in ("dport", "sport"):
                self.nft(f"ip {direction} {a} meta l4proto {{ tcp, udp }} th {side} {port} drop")


class ConsulNode:
    """One Consul agent (server or client) in its namespace, with its own data dir."""

    def __init__(self, lab: NetLab, host: str, server: bool):
        self.lab = lab
        self.host = host
        self.server = server
        self.name = ("srv-" if server else "app-") + host[1]
        self.dir = lab.workdir / f"consul-{host}"
        self.log_path = lab.workdir / f"consul-{host}.log"
        self.process: subprocess.Popen | None = None
        self.paused = False

    @property
    def address(self) -> str:
        return self.lab.addr(self.host)

    def _config(self) -> dict:
        config = {
            "node_name": self.name, "datacenter": "dc1", "data_dir": str(self.dir / "data"),
            "bind_addr": self.address, "client_addr": f"127.0.0.1 {self.address}",
            "retry_join": [self.lab.addr(s) for s in SERVERS], "retry_interval": "1s",
            "ports": {"dns": -1, "grpc": -1}, "log_level": "INFO", "leave_on_terminate": False,
            "disable_update_check": True, "performance": {"raft_multiplier": 1},
        }
        if self.server:
            config.update({"server": True, "bootstrap_expect": 3,
                           "autopilot": {"cleanup_dead_servers": False}})
        return config

    def start(self) -> "ConsulNode":
        if self.running():
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "config.json"
        path.write_text(json.dumps(self._config(), indent=1))
        self.process = self.lab.popen(self.host, ["consul", "agent", "-config-file", str(path)],
                                      self.log_path)
        self.paused = False
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
        self.paused = False

    def pause(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class NsNamedServer(NamedServer):
    """NamedServer listening on its namespace's address (port 53) instead of 127.0.0.1."""

    def __init__(self, lab: NetLab, workdir: Path, host: str = "dns", **kwargs):
        super().__init__(workdir, zone=ZONE, records=(RECORD,), port=53, **kwargs)
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


# -- observer-side reads (call through NetLab.observe) ------------------------------------------

def http_json(address: str, path: str, timeout: float = 0.5, method: str = "GET",
              body: bytes | None = None) -> tuple[int, object]:
    """(status, decoded JSON or None); status 0 when unreachable."""
    connection = http.client.HTTPConnection(address, 8500, timeout=timeout)
    try:
        connection.request(method, path, body=body)
        reply = connection.getresponse()
        data = reply.read()
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode(errors="replace")
        return reply.status, decoded
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        connection.close()


def read_leader_key(addresses: list[str], timeout: float = 0.4) -> tuple[bool, dict | None, dict | None]:
    """(ok, raw entry or None, decoded value or None) from the first server that answers a
    consistent read; `addresses` is reordered so the last good one goes first next time."""
    for address in list(addresses):
        status, body = http_json(address, f"/v1/kv/{LEADER_KEY}?consistent", timeout)
        if status == 404:
            return True, None, None
        if status == 200 and isinstance(body, list) and body:
            entry = body[0]
            try:
                value = json.loads(base64.b64decode(entry.get("Value") or ""))
            except ValueError:
                value = None
            if addresses[0] != address:
                addresses.remove(address)
                addresses.insert(0, address)
            return True, entry, value if isinstance(value, dict) else None
    return False, None, None


def read_dns(server: str, timeout: float = 0.25) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    """(ok, A values, fence TXT strings) as the authoritative server answers now.

    The record and its fence are two queries: an update landing between them would give a torn
    state, so the record is read again after the fence and the read retried (at most 3 times)
    until both record reads agree."""

    def one(name: str, rdtype: str) -> tuple[str, ...] | None:
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        reply = dns.query.udp(query, server, port=53, timeout=timeout)
        if reply.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        texts = [b"".join(rr.strings).decode() if rdtype == "TXT" else rr.to_text()
                 for rrset in reply.answer for rr in rrset]
        return tuple(sorted(texts))

    try:
        for _ in range(3):
            values = one(RECORD, "A")
            fence = one("_consulha." + RECORD, "TXT")
            again = one(RECORD, "A")
            if values is None or fence is None or again is None:
                return False, (), ()
            if values == again:
                return True, values, fence
        return False, (), ()
    except (dns.exception.DNSException, OSError):
        return False, (), ()


_FENCE = re.compile(r"epoch=(\d+)\s+site=(\S+)")


def make_sample(t: float, key: tuple[bool, dict | None, dict | None],
                dns_state: tuple[bool, tuple[str, ...], tuple[str, ...]]) -> Sample:
    key_ok, entry, value = key
    holder_site = holder_epoch = holder_session = None
    if key_ok and entry and entry.get("Session") and value:
        holder_site, holder_epoch, holder_session = value.get("site"), value.get("epoch"), entry["Session"]
    dns_ok, values, fence = dns_state
    fence_epoch = fence_site = None
    for text in fence:
        match = _FENCE.search(text)
        if match and (fence_epoch is None or int(match.group(1)) > fence_epoch):
            fence_epoch, fence_site = int(match.group(1)), match.group(2)
    return Sample(t=t, dns_ok=dns_ok, dns_values=values, fence_epoch=fence_epoch,
                  fence_site=fence_site, key_ok=key_ok, holder_site=holder_site,
                  holder_epoch=holder_epoch, holder_session=holder_session)


class Sampler:
    """Polls the leader key and the authoritative DNS answer + fence every `period` from the
    observer namespace, for at most `max_duration` seconds (bounded), appending JSON lines."""

    def __init__(self, lab: NetLab, path: Path, period: float = 0.05, max_duration: float = 240.0):
        self.lab = lab
        self.path = path
        self.period = period
        self.max_duration = max_duration
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._servers = [lab.addr(s) for s in SERVERS]

    def start(self) -> "Sampler":
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        enter_netns(self.lab.ns("obs"))
        started = time.monotonic()
        dns_server = self.lab.addr("dns")
        with open(self.path, "a") as out:
            while not self._stop.is_set() and time.monotonic() - started < self.max_duration:
                t = time.monotonic()
                sample = make_sample(t, read_leader_key(self._servers), read_dns(dns_server))
                self.samples.append(sample)
                out.write(sample.to_json() + "\n")
                self._stop.wait(max(0.0, t + self.period - time.monotonic()))

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return list(self.samples)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def wait(self, predicate: Callable[[Sample], bool], timeout: float, what: str,
             logs: Callable[[], str] | None = None) -> Sample:
        """Wait until a sample taken from now on satisfies `predicate`; returns it
        (AssertionError naming `what`, with `logs()`, after `timeout`)."""
        start = len(self.samples)

        def found():
            for sample in self.samples[start:]:
                if predicate(sample):
                    return sample
            return None
        return wait_until(found, timeout, step=0.05, what=what, logs=logs)  # type: ignore[return-value]


class ChaosLab:
    """Sites a and b (server + app host) and witness w on one Raft cluster, BIND, two consulha
    agents, a toy service per site. `reset()` brings it to: a leads, DNS names a, b standby."""

    values = SITE_VALUES

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self.net = NetLab(self.workdir)
        self.consul: dict[str, ConsulNode] = {}
        self.named: NsNamedServer | None = None
        self.toys: dict[str, ToyService] = {}
        self.agents: dict[str, NsAgentProcess] = {}
        self.sampler: Sampler | None = None
        self.scenario = "setup"
        self.transitions_path = self.workdir / "transitions-setup.jsonl"
        self.session_overrides: dict = {}  # extra `session:` keys for this scenario's agents

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "ChaosLab":
        self.net.create()
        for host in SERVERS:
            self.consul[host] = ConsulNode(self.net, host, server=True).start()
        for host in CLIENTS:
            self.consul[host] = ConsulNode(self.net, host, server=False).start()
        self.named = NsNamedServer(self.net, self.workdir / "named").start()
        for site in ("a", "b"):
            host = f"h{site}"
            self.toys[site] = in_netns(self.net.ns(host), lambda s=site: ToyService(f"api-{s}").start())
        self.wait_cluster()
        return self

    def close(self) -> None:
        if self.sampler:
            self.sampler.stop()
        for agent in self.agents.values():
            try:
                agent.kill()
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        for toy in self.toys.values():
            try:
                toy.stop()
            except Exception:  # noqa: BLE001
                pass
        if self.named:
            self.named.stop()
        for node in self.consul.values():
            node.kill()
        self.net.destroy()

    # -- consul ---------------------------------------------------------------------------------

    def api(self, path: str, method: str = "GET", body: bytes | None = None,
            hosts: Iterable[str] = SERVERS, timeout: float = 1.0) -> tuple[int, object]:
        """First non-error answer of a Consul HTTP API call via the servers (or `hosts`)."""
        status, answer = 0, None
        for host in hosts:
            status, answer = self.net.observe(http_json, self.net.addr(host), path, timeout, method, body)
            if 200 <= status < 300 or status == 404:
                return status, answer
        return status, answer

    def raft_leader(self) -> str | None:
        """The host (sa/sb/sw) of the current Raft leader, or None."""
        status, answer = self.api("/v1/status/leader")
        if status == 200 and isinstance(answer, str) and answer:
            ip = answer.split(":")[0]
            for host in SERVERS:
                if self.net.addr(host) == ip:
                    return host
        return None

    def cluster_healthy(self) -> bool:
        for host in SERVERS:
            status, answer = self.net.observe(http_json, self.net.addr(host), "/v1/status/leader")
            if status != 200 or not answer:
                return False
        status, members = self.api("/v1/agent/members")
        if status != 200 or len([m for m in members if m.get("Status") == 1]) != 5:
            return False
        for host in CLIENTS:
            status, checks = self.api(f"/v1/health/node/{self.consul[host].name}?consistent")
            if status != 200 or not any(c["CheckID"] == "serfHealth" and c["Status"] == "passing"
                                        for c in checks or []):
                return False
        return True

    def wait_cluster(self, timeout: float = 60.0) -> None:
        for node in self.consul.values():
            node.resume()
            node.start()
        wait_until(self.cluster_healthy, timeout, step=0.2,
                   what="Consul cluster: a Raft leader, 5 members alive, both app hosts passing\n"
                   + "\n".join(f"--- {h}\n{n.log_tail(8)}" for h, n in self.consul.items()))

    # -- agents ---------------------------------------------------------------------------------

    def config(self, site: str) -> Path:
        assert self.named is not None
        dns_server = f"{self.named.address[0]}:53"
        dns_section = {
            "zone": self.named.zone, "record": self.named.records[0], "server": dns_server,
            "verify": [dns_server],
            "tsig": {"name": self.named.key_name, "secret_file": str(self.named.tsig_key_file())},
        }
        services = [http_service("api", self.toys[site].url)]
        document = site_config(site, "http://127.0.0.1:8500", dns_section, services,
                               self.values[site], group=GROUP,
                               session={"ttl": "10s", "lock_delay": "1s", "heartbeat_ttl": "3s",
                                        **self.session_overrides})
        return write_config(self.workdir / f"{site}.yaml", document)

    def start_agent(self, site: str) -> NsAgentProcess:
        agent = NsAgentProcess(self.net, f"h{site}", self.config(site),
                               self.workdir / f"agent-{site}-{self.scenario}.log",
                               self.transitions_path)
        self.agents[site] = agent.start()
        return agent

    def stop_agents(self) -> None:
        for agent in self.agents.values():
            agent.stop(timeout=8)
        self.agents.clear()

    # -- observation ----------------------------------------------------------------------------

    def leader(self) -> tuple[str | None, int | None]:
        """(site, epoch) of the leader key's holder now (None, None when free or unreadable)."""
        ok, entry, value = self.net.observe(read_leader_key, [self.net.addr(s) for s in SERVERS])
        if ok and entry and entry.get("Session") and value:
            return value.get("site"), value.get("epoch")
        return None, None

    def candidate(self, site: str) -> bool:
        status, body = self.api(f"/v1/kv/consulha/{GROUP}/candidates/{site}?consistent")
        return status == 200 and bool(body) and bool(body[0].get("Session"))

    def dns(self) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
        return self.net.observe(read_dns, self.net.addr("dns"))

    def names(self, sample: Sample, site: str) -> bool:
        """DNS names `site` and the lock key shows `site` holding with the epoch DNS carries."""
        return (sample.dns_values == (self.values[site],) and sample.holder_site == site
                and sample.fence_epoch == sample.holder_epoch and sample.fence_site == site)

    def wait_dns_names(self, site: str, timeout: float) -> Sample:
        assert self.sampler is not None
        return self.sampler.wait(lambda s: self.names(s, site), timeout,
                                 what=f"DNS and lock on {site}", logs=self.logs)

    def transitions(self):
        from lab.invariants import load_transitions
        return load_transitions(self.transitions_path)

    def logs(self, chars: int = 2500) -> str:
        return "\n".join(f"--- agent {site} ({self.scenario})\n{agent.log_text()[-chars:]}"
                         for site, agent in self.agents.items())

    # -- scenarios ------------------------------------------------------------------------------

    def reset(self, scenario: str, timeout: float = 60.0, **session) -> Sample:
        """Fresh agents, healed network, every process running, healthy toys; then a leads with
        DNS on a and b is a standby. Starts the scenario's sampler; returns the steady sample.
        `session`: extra keys of the agents' `session:` section for this scenario."""
        if self.sampler:
            self.sampler.stop()
            self.sampler = None
        self.stop_agents()
        self.net.heal()
        for toy in self.toys.values():
            toy.recover()
        self.scenario = scenario
        self.session_overrides = dict(session)
        self.transitions_path = self.workdir / f"transitions-{scenario}.jsonl"
        self.transitions_path.unlink(missing_ok=True)
        self.wait_cluster()
        self.sampler = Sampler(self.net, self.workdir / f"samples-{scenario}.jsonl").start()
        self.start_agent("a")
        steady = self.wait_dns_names("a", timeout)
        self.start_agent("b")
        wait_until(lambda: self.candidate("b"), 30, step=0.1, what="b standby", logs=self.logs)
        return steady
