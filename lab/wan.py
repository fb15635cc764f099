"""WAN links between the chaos lab's sites: delay, jitter, loss, a flapping link (issue 17).

Sites a = {sa, ha}, b = {sb, hb}, w = {sw}; dns and obs stay outside the WAN (no delay, no
loss), so the suite's own reads measure the system, not the emulator. Inside a site: nothing.

How (`tc netem` is not in this kernel, nor the nft `queue` statement):
- delay and jitter: in every site host's namespace one iptables rule per remote destination
  host (`-A CONSULHA_WAN -d X -j NFQUEUE --queue-num 0`, so a packet is queued once per
  direction) and one delayer process (lab/wanqueue.py) that accepts each packet at its due time;
- loss and flapping: nft rules in the hub's bridge forward path (a dropped packet vanishes in
  the middle of the network; dropping in a host's output hook would give the sender EPERM), in
  the table `bridge wan`, apart from the lab's `bridge chaos` partition chain: `lab.heal()`
  leaves the WAN alone and `Wan.close()` leaves partitions alone.

No `--queue-bypass`: if a delayer dies, its namespace's packets to remote sites are dropped (a
cut link that the run's invariants and `measure()` report), never silently sent undelayed, which
would make every WAN figure a LAN figure without anybody noticing.

Profile figures are what a ping between two sites shows: each direction gets half the RTT and
half the jitter, and the loss `1 - sqrt(1 - loss)` so that a round trip loses `loss`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lab.netns import SITES, NetLab, _run
from lab.wanprobe import cut_windows_filter, probe, summarize

CHAIN = "CONSULHA_WAN"
QUEUE = 0
PPM = 1_000_000
REPO = Path(__file__).resolve().parents[1]


def preflight() -> str | None:
    """Why the WAN emulator cannot run here (None: it can), beside netns.preflight()."""
    if shutil.which("iptables") is None:
        return "`iptables` not found (scripts/install-deps installs it)"
    if importlib.util.find_spec("netfilterqueue") is None:
        return "Python package netfilterqueue missing (make deps: the `wan` extra)"
    return None


@dataclass(frozen=True)
class WanProfile:
    name: str
    rtt_ms: float
    jitter_ms: float
    loss_pct: float
    flap_period_s: float | None = None
    flap_cut_s: float | None = None


PROFILES: dict[str, WanProfile] = {p.name: p for p in (
    WanProfile("lan", 0, 0, 0),
    WanProfile("metro", 4, 1, 0.1),
    WanProfile("regional", 30, 5, 0.5),
    WanProfile("continental", 80, 10, 1.0),
    WanProfile("bad", 150, 40, 5.0),
    WanProfile("flapping", 30, 5, 0.5, flap_period_s=30, flap_cut_s=2),
)}


@dataclass(frozen=True)
class Link:
    """One direction between two sites."""
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    @property
    def delayed(self) -> bool:
        return self.delay_ms > 0 or self.jitter_ms > 0


def profile_links(profile: WanProfile) -> dict[tuple[str, str], Link]:
    one_way_loss = 100 * (1 - math.sqrt(1 - profile.loss_pct / 100))
    link = Link(profile.rtt_ms / 2, profile.jitter_ms / 2, one_way_loss)
    return {(src, dst): link for src in SITES for dst in SITES if src != dst}


def site_of(host: str) -> str | None:
    return next((site for site, hosts in SITES.items() if host in hosts), None)


def delayer_table(lab: NetLab, links: dict[tuple[str, str], Link], host: str) -> dict[str, dict]:
    """What the delayer in `host` holds: remote destination address -> delay, jitter, key."""
    src = site_of(host)
    table = {}
    for (link_src, dst), link in links.items():
        if link_src == src and link.delayed:
            for remote in SITES[dst]:
                table[lab.addr(remote)] = {"delay_ms": link.delay_ms, "jitter_ms": link.jitter_ms,
                                           "key": dst}
    return table


def queue_rules(table: dict[str, dict]) -> str:
    """iptables-restore input: the chain (declaring it flushes it) with one rule per address."""
    lines = ["*filter", f":{CHAIN} - [0:0]"]
    lines += [f"-A {CHAIN} -d {address}/32 -j NFQUEUE --queue-num {QUEUE}" for address in sorted(table)]
    return "\n".join(lines + ["COMMIT", ""])


def loss_rules(lab: NetLab, links: dict[tuple[str, str], Link]) -> str:
    """nft input replacing the hub's loss chain (one transaction: no moment without loss)."""
    lines = ["flush chain bridge wan loss"]
    for (src, dst), link in sorted(links.items()):
        threshold = round(link.loss_pct / 100 * PPM)
        if threshold > 0:
            lines.append(f"add rule bridge wan loss ip saddr {_set(lab, SITES[src])} "
                         f"ip daddr {_set(lab, SITES[dst])} numgen random mod {PPM} < {threshold} drop")
    return "\n".join(lines) + "\n"


def _set(lab: NetLab, hosts) -> str:
    return "{ " + ", ".join(lab.addr(h) for h in hosts) + " }"


class DelayerProcess:
    """lab/wanqueue.py in one namespace, driven over its stdin/stdout."""

    def __init__(self, lab: NetLab, host: str):
        self.host = host
        self.ns = lab.ns(host)
        log = open(lab.workdir / f"wanqueue-{host}.log", "ab")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "lab.wanqueue", "--queue", str(QUEUE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
        log.close()
        lab.processes.append(self.process)
        self._lock = threading.Lock()
        if self._read().get("ready") is not True:
            raise RuntimeError(f"WAN delayer in {host} did not start (see wanqueue-{host}.log)")

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"WAN delayer in {self.host} exited ({self.process.poll()})")
        return json.loads(line)

    def ask(self, command: dict) -> dict:
        with self._lock:
            self.process.stdin.write(json.dumps(command) + "\n")
            return self._read()

    def alive(self) -> bool:
        return self.process.poll() is None

    def queue_counters(self) -> dict[str, int]:
        """The kernel's counters of our queue in this namespace: drops mean lost packets."""
        text = _run("ip", "netns", "exec", self.ns, "cat", "/proc/net/netfilter/nfnetlink_queue",
                    check=False)
        for line in text.splitlines():
            fields = line.split()
            if fields and int(fields[0]) == QUEUE:
                return {"queued_now": int(fields[2]), "queue_dropped": int(fields[5]),
                        "user_dropped": int(fields[6])}
        return {}

    def stop(self) -> None:
        if self.alive():
            try:
                self.process.stdin.write(json.dumps({"stop": True}) + "\n")
                self.process.stdin.close()
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(5)


class Wan:
    """The WAN between the sites of `lab` (a NetLab already created). Starts with no delay and
    no loss; `apply` and `set_link` change it at any time, also while traffic flows."""

    def __init__(self, lab: NetLab):
        self.lab = lab
        self.links: dict[tuple[str, str], Link] = {
            (s, d): Link() for s in SITES for d in SITES if s != d}
        self.profile: WanProfile | None = None
        self.flap_windows: list[tuple[float, float]] = []   # (cut, healed) monotonic
        self._flap_stop = threading.Event()
        self._flapper: threading.Thread | None = None
        self._flap_pair: tuple[str, str] | None = None   # the pair that flaps (or flapped)
        self._cut_since: float | None = None              # a cut in progress
        self._hub("add table bridge wan\n"
                  "add chain bridge wan loss { type filter hook forward priority -10; policy accept; }\n"
                  "add chain bridge wan flap { type filter hook forward priority -5; policy accept; }\n")
        self.delayers: dict[str, DelayerProcess] = {}
        try:
            for host in self._site_hosts():
                ns = lab.ns(host)
                _run("ip", "netns", "exec", ns, "iptables", "-w", "-N", CHAIN)
                _run("ip", "netns", "exec", ns, "iptables", "-w", "-A", "OUTPUT", "-j", CHAIN)
                self.delayers[host] = DelayerProcess(lab, host)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _site_hosts() -> list[str]:
        return [host for hosts in SITES.values() for host in hosts]

    def _hub(self, script: str, check: bool = True) -> None:
        _run("ip", "netns", "exec", self.lab.ns("hub"), "nft", "-f", "-", input=script, check=check)

    # -- settings -------------------------------------------------------------------------------

    def apply(self, profile: WanProfile) -> None:
        self.stop_flapping()
        self.profile = profile
        self._install(profile_links(profile))
        if profile.flap_period_s and profile.flap_cut_s:
            self.start_flapping(period_s=profile.flap_period_s, cut_s=profile.flap_cut_s)

    def set_link(self, src_site: str, dst_site: str, delay_ms: float, jitter_ms: float,
                 loss_pct: float) -> None:
        """One direction only (asymmetric links: call it for each direction)."""
        if (src_site, dst_site) not in self.links:
            raise ValueError(f"no WAN link {src_site}->{dst_site}: sites are {sorted(SITES)}")
        if delay_ms < 0 or jitter_ms < 0 or not 0 <= loss_pct <= 100 or jitter_ms > delay_ms:
            raise ValueError(f"link {src_site}->{dst_site}: need 0 <= jitter <= delay and "
                             f"0 <= loss <= 100, got {delay_ms}, {jitter_ms}, {loss_pct}")
        self.profile = None
        self._install({**self.links, (src_site, dst_site): Link(delay_ms, jitter_ms, loss_pct)})

    def _install(self, links: dict[tuple[str, str], Link]) -> None:
        for host, delayer in self.delayers.items():
            table = delayer_table(self.lab, links, host)
            # New delays first, then the rules: a packet queued by a new rule finds its delay.
            delayer.ask({"links": table})
            _run("ip", "netns", "exec", self.lab.ns(host), "iptables-restore", "-w", "--noflush",
                 input=queue_rules(table))
        self._hub(loss_rules(self.lab, links))
        self.links = dict(links)

    # -- flapping -------------------------------------------------------------------------------

    def start_flapping(self, a: str = "a", b: str = "b", period_s: float = 30, cut_s: float = 2,
                       max_s: float = 3600) -> None:
        """Cut the a-b link (both directions) for `cut_s` at the end of every `period_s`, until
        stop_flapping()/close() or for `max_s` at most. Cuts are recorded in `flap_windows`."""
        if not 0 < cut_s < period_s:
            raise ValueError(f"flapping needs 0 < cut_s < period_s, got {cut_s}, {period_s}")
        self.stop_flapping()
        self._flap_stop = threading.Event()
        self._flap_pair = (a, b)
        self._flapper = threading.Thread(target=self._flap, args=(a, b, period_s, cut_s, max_s),
                                         name="wan-flap", daemon=True)
        self._flapper.start()

    def _flap(self, a: str, b: str, period_s: float, cut_s: float, max_s: float) -> None:
        started = time.monotonic()
        stop = self._flap_stop
        sa, sb = _set(self.lab, SITES[a]), _set(self.lab, SITES[b])
        while not stop.wait(period_s - cut_s) and time.monotonic() - started < max_s:
            self._hub(f"add rule bridge wan flap ip saddr {sa} ip daddr {sb} drop\n"
                      f"add rule bridge wan flap ip saddr {sb} ip daddr {sa} drop\n")
            self._cut_since = time.monotonic()
            stop.wait(cut_s)
            self._hub("flush chain bridge wan flap\n")
            self.flap_windows.append((self._cut_since, time.monotonic()))
            self._cut_since = None

    def stop_flapping(self) -> None:
        if self._flapper is not None:
            self._flap_stop.set()
            self._flapper.join(10)
            self._flapper = None
            self._hub("flush chain bridge wan flap\n", check=False)

    # -- measurement ----------------------------------------------------------------------------

    def measure(self, count: int = 20, interval_s: float = 0.02) -> dict:
        """Configured vs observed per directed site pair (one-way delay and loss measured at the
        receiver, RTT and round-trip loss at the sender; `count` UDP probes per host pair), the
        delayers' lag since the last measure(), and whether the run is valid (see wanprobe)."""
        pairs = [(s, d) for s in self._site_hosts() for d in self._site_hosts()
                 if site_of(s) != site_of(d)]
        probes = probe(self.lab, pairs, count, interval_s)
        if self._flap_pair:
            ongoing = [(self._cut_since, math.inf)] if self._cut_since is not None else []
            probes = cut_windows_filter(probes, self.flap_windows + ongoing, self._flap_pair_hosts())
        delayers = {}
        for host, delayer in self.delayers.items():
            alive = delayer.alive()
            delayers[host] = {"alive": alive, **(delayer.ask({"stats": True}) if alive else {}),
                              **delayer.queue_counters()}
        return summarize(self.links, probes, delayers, site_of,
                         profile=self.profile.name if self.profile else None)

    def _flap_pair_hosts(self) -> set[tuple[str, str]]:
        a, b = self._flap_pair or ("", "")
        return {(x, y) for x in SITES.get(a, ()) for y in SITES.get(b, ())} | \
               {(y, x) for x in SITES.get(a, ()) for y in SITES.get(b, ())}

    # -- teardown -------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the WAN rules and stop the delayers; partitions (lab.cut...) stay as they are."""
        self.stop_flapping()
        for host in self._site_hosts():
            ns = self.lab.ns(host)
            _run("ip", "netns", "exec", ns, "iptables", "-w", "-D", "OUTPUT", "-j", CHAIN, check=False)
            _run("ip", "netns", "exec", ns, "iptables", "-w", "-F", CHAIN, check=False)
            _run("ip", "netns", "exec", ns, "iptables", "-w", "-X", CHAIN, check=False)
        for delayer in self.delayers.values():
            delayer.stop()
        self.delayers.clear()
        self._hub("delete table bridge wan\n", check=False)
