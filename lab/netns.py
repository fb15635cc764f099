"""Three sites in network namespaces, for the fault-injection (chaos) suite. Needs root.

This module: the namespaces, their links and the partitions (NetLab). The rest of the lab:
lab.nsconsul (the Consul cluster), lab.nshosts (BIND and agents in namespaces), lab.observer
(what the suite reads from the observer namespace), lab.chaoslab (all of it as one lab).

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

import concurrent.futures
import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from lab.named import NAMED

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
PEER_RECORD = "zk.example.test."  # the ZooKeeper design's (bench/peers), beside consulha's

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
