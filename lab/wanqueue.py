"""The WAN delayer: one process per source namespace (netlink queues are per network namespace).

    ip netns exec <ns> python -m lab.wanqueue [--queue 0]

The namespace's iptables OUTPUT rules send packets for remote sites to NFQUEUE `--queue`; this
process holds each one in a heap until its due time, then gives the accept verdict. One thread
does it all (it waits on the netlink socket and the control pipe until the next due time), so no
verdict ever waits for a GIL held by another thread. The kernel copies only the IP header to us
(we read the destination address, never change the packet).

Control is JSON lines on stdin, answers JSON lines on stdout:
    {"links": {"10.77.0.12": {"delay_ms": 15, "jitter_ms": 2.5, "key": "b"}, ...}}  replace the table
    {"stats": true}   -> {"packets", "lag_p50_ms", "lag_p99_ms", "lag_max_ms", "max_depth"} (then reset)
    {"stop": true} or end of input: every held packet is released at once, then the process exits.
It prints {"ready": true} once the queue is bound.

Jitter without reordering: the delay of a link is `delay + offset(t)`, where offset walks
linearly between random points in [-jitter, +jitter] set `4 * jitter` apart (at least 10 ms), so
its slope stays within +-0.5: a later packet is never due before an earlier one. Real WAN delay
varies the same way (queues fill and drain; a flow stays on one path), TCP never sees
reordering, and, unlike clamping independent random delays to be monotonic, the delay
distribution does not depend on the packet rate. Due times are also kept monotonic per link, so
a change of settings while packets are held cannot reorder them either.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import heapq
import itertools
import json
import os
import random
import select
import socket
import sys
import time
from dataclasses import dataclass

PR_SET_TIMERSLACK = 29
LAG_BUCKET_S = 10e-6   # lag histogram resolution
LAG_BUCKETS = 20_000   # up to 200 ms; later verdicts land in the last bucket (and lag_max_ms)
RT_PRIORITY = 10
MAX_HELD = 100_000     # the kernel's queue length for us (default 1024 drops under load)


@dataclass(frozen=True)
class LinkDelay:
    delay_s: float
    jitter_s: float
    key: str          # the destination site: due times are monotonic per key


class JitterWalk:
    """Offset in [-jitter, +jitter] that moves linearly between random points (slope <= 0.5)."""

    def __init__(self, jitter_s: float, rng: random.Random):
        self.jitter_s = jitter_s
        self.step_s = max(0.01, 4 * jitter_s)
        self.rng = rng
        self.t0 = time.monotonic()
        self.p0 = self._point()
        self.p1 = self._point()

    def _point(self) -> float:
        return self.rng.uniform(-self.jitter_s, self.jitter_s)

    def offset(self, now: float) -> float:
        if self.jitter_s <= 0:
            return 0.0
        while now - self.t0 >= self.step_s:
            self.t0 += self.step_s
            self.p0, self.p1 = self.p1, self._point()
        return self.p0 + (self.p1 - self.p0) * (now - self.t0) / self.step_s


class LagHistogram:
    def __init__(self):
        self.counts = [0] * LAG_BUCKETS
        self.total = 0
        self.max_s = 0.0

    def add(self, lag_s: float) -> None:
        self.counts[min(LAG_BUCKETS - 1, max(0, int(lag_s / LAG_BUCKET_S)))] += 1
        self.total += 1
        self.max_s = max(self.max_s, lag_s)

    def quantile_ms(self, q: float) -> float | None:
        if not self.total:
            return None
        rank, seen = q * (self.total - 1), 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen > rank:
                return round((index + 0.5) * LAG_BUCKET_S * 1000, 3)
        return round(self.max_s * 1000, 3)


class Delayer:
    """A heap of (due, seq, packet): the queue callback adds, `release_due` gives the verdicts."""

    def __init__(self):
        self.links: dict[bytes, LinkDelay] = {}
        self.walks: dict[str, JitterWalk] = {}
        self.last_due: dict[str, float] = {}
        self.held: list[tuple[float, int, object]] = []
        self.seq = itertools.count()
        self.lags = LagHistogram()
        self.packets = 0
        self.max_depth = 0
        self.rng = random.Random()

    def configure(self, links: dict[str, dict]) -> None:
        self.links = {socket.inet_aton(address): LinkDelay(float(link["delay_ms"]) / 1000,
                                                           float(link.get("jitter_ms", 0)) / 1000,
                                                           str(link.get("key", address)))
                      for address, link in links.items()}
        for key, jitter in {(l.key, l.jitter_s) for l in self.links.values()}:
            walk = self.walks.get(key)
            if walk is None or walk.jitter_s != jitter:
                self.walks[key] = JitterWalk(jitter, self.rng)

    def on_packet(self, packet) -> None:
        """Queue callback: only computes the due time."""
        now = time.monotonic()
        link = self.links.get(packet.get_payload()[16:20])
        if link is None:
            due = now
        else:
            due = max(now + link.delay_s + self.walks[link.key].offset(now),
                      self.last_due.get(link.key, 0.0))
            self.last_due[link.key] = due
        heapq.heappush(self.held, (due, next(self.seq), packet))
        self.max_depth = max(self.max_depth, len(self.held))

    def next_due(self) -> float | None:
        return self.held[0][0] if self.held else None

    def release_due(self, everything: bool = False) -> None:
        while self.held and (everything or self.held[0][0] <= time.monotonic()):
            due, _, packet = heapq.heappop(self.held)
            packet.accept()
            self.lags.add(time.monotonic() - due)
            self.packets += 1

    def stats(self) -> dict:
        lags, packets, depth = self.lags, self.packets, self.max_depth
        self.lags, self.packets, self.max_depth = LagHistogram(), 0, len(self.held)
        return {"packets": packets, "lag_p50_ms": lags.quantile_ms(0.5),
                "lag_p99_ms": lags.quantile_ms(0.99),
                "lag_max_ms": round(lags.max_s * 1000, 3), "max_depth": depth}


def realtime() -> str:
    """Run this process at SCHED_FIFO priority: the delayer stands
    for the kernel's link, and Consul, the agents and other load on the machine must not delay
    its verdicts. It sleeps between due times, so it takes little CPU; the kernel keeps 5 % of
    every second for other tasks anyway (sched_rt_runtime_us). Without the privilege it runs as
    an ordinary process, and says so in its stats."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
        return "fifo"
    except PermissionError:
        return "other"


def serve(queue_num: int) -> None:
    # Timer slack 1 ns: the timed waits wake when asked, not up to 50 us late.
    ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    from netfilterqueue import NetfilterQueue   # here: the pure parts import without the `wan` extra

    sched = realtime()
    # A full collection walks every object the imports made (milliseconds of lag): freeze those,
    # and collect only between control commands (the packet path makes no reference cycles).
    gc.freeze()
    gc.disable()
    delayer = Delayer()
    queue = NetfilterQueue()
    queue.bind(queue_num, delayer.on_packet, max_len=MAX_HELD, range=20, sock_len=8 << 20)
    netlink, control = queue.get_fd(), sys.stdin.fileno()
    print(json.dumps({"ready": True, "sched": sched}), flush=True)
    pending = b""
    running = True
    while running:
        due = delayer.next_due()
        timeout = None if due is None else max(0.0, due - time.monotonic())
        readable = select.select([netlink, control], [], [], timeout)[0]
        if netlink in readable:
            queue.run(block=False)      # every message waiting now, then back here
        delayer.release_due()
        if control in readable:
            chunk = os.read(control, 65536)
            pending += chunk
            lines, _, pending = pending.rpartition(b"\n")
            for line in filter(None, lines.split(b"\n")):
                running = answer(delayer, json.loads(line), sched) and running
            gc.collect()
            running = running and bool(chunk)     # end of input: stop
    delayer.release_due(everything=True)
    queue.unbind()


def answer(delayer: Delayer, command: dict, sched: str) -> bool:
    """Carry out one control command, print its answer; False when told to stop."""
    if "links" in command:
        delayer.configure(command["links"])
        print(json.dumps({"ok": True}), flush=True)
    if command.get("stats"):
        print(json.dumps({**delayer.stats(), "sched": sched}), flush=True)
    return not command.get("stop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, default=0)
    serve(parser.parse_args().queue)


if __name__ == "__main__":
    main()
