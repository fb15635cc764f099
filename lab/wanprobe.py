"""The WAN emulator measuring itself: UDP probes between the site namespaces, and the verdict.

Every site host sends `count` probes to every host of the other sites and answers the probes it
receives. The receiver takes the one-way delay from the kernel's receive timestamp
(SO_TIMESTAMPNS) minus the send time carried in the probe (one machine, one clock), so the
suite's threads being slow to run does not count as WAN delay; the sender takes the RTT from its
answer's kernel timestamp. A probe's loss is seen at the receiver (one way) and at the sender
(round trip). Probes travel the path of real traffic: the source's NFQUEUE rule and delayer, the
hub's loss rules.

A run is valid (`invalid_reasons` empty) when every delayer runs and the kernel dropped nothing
from its queue, each direction's observed one-way p50 is within 10 % plus the jitter of its
configured delay, its observed loss is within binomial reach of the configured loss (4 sigma and
one probe), and the delayers' lag (due time to verdict) says they kept up:
- lag p50 within 10 % of the smallest delay a delayer serves: a delayer that cannot keep up
  (too slow per packet, or run without SCHED_FIFO on a saturated machine) is late on most
  packets, and the median shows it;
- lag p99 within half of that delay (at least 5 ms): the tail is the kernel's, not the
  delayer's. A SCHED_FIFO task still waits for the kernel's non-preemptible work; on the 2-core
  VM the suite runs on, a 1 ms timer wake-up of such a task was late by 0.7 ms at most over 60 s
  when quiet, and by up to 6.4 ms while network namespaces were created and deleted, as the
  lab does between scenarios. One such stall catches every packet due during it (a host's
  probes to every remote host are due together), so a p99 at the 10 % scale judged whether a
  stall happened to fall into the window: a race (chaos run 4 of #36: 1.5 and 2.5 ms against a
  1.5 ms bound). Half the delay is where a tail would change what a profile means.
Both 10 % rules have a floor of 0.5 ms, the path's own cost: a burst of packets due together is
released one verdict after another, a tail of about 0.25 ms at p99, more than 10 % of metro's
2 ms one-way delay.
"""

from __future__ import annotations

import math
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from lab.netns import NetLab, enter_netns

PORT = 9977
# kind (P probe / R answer), src idx, dst idx, seq, send time (ns), the answerer's dwell (ns)
MESSAGE = struct.Struct("!cHHIqq")
LAG_SHARE = 0.10                       # lag p50 above this share of the delay: falls behind
STALL_SHARE = 0.5                      # lag p99 above this share of the delay: stalls
STALL_FLOOR_MS = 5.0                   # the kernel's own stalls of a SCHED_FIFO task reach it
DELAY_SHARE = 0.10
DELAY_FLOOR_MS = 0.5                   # the path's own cost: below it a share means nothing
LOSS_SIGMAS = 4.0
SO_TIMESTAMPNS = 35                    # Linux; Python's socket module does not name it


@dataclass
class PairProbes:
    """Probes from `src` host to `dst` host: send times and what came back (milliseconds)."""
    src: str
    dst: str
    sent: dict[int, float] = field(default_factory=dict)        # seq -> monotonic send time
    one_way_ms: dict[int, float] = field(default_factory=dict)  # seq -> delay seen by dst
    rtt_ms: dict[int, float] = field(default_factory=dict)      # seq -> round trip seen by src


def _kernel_ns(ancillary) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanos = struct.unpack("qq", data[:16])
            return seconds * 1_000_000_000 + nanos
    return time.time_ns()


def probe(lab: NetLab, pairs: list[tuple[str, str]], count: int, interval_s: float,
          grace_s: float = 1.5) -> list[PairProbes]:
    """Send the probes of every (src host, dst host) pair at once; bounded by count, interval
    and grace (answers later than `grace_s` after the last probe count as lost)."""
    hosts = sorted({h for pair in pairs for h in pair})
    index = {h: i for i, h in enumerate(hosts)}
    results = {pair: PairProbes(*pair) for pair in pairs}
    ready = threading.Barrier(len(hosts) + 1)
    errors: list[BaseException] = []

    def run(host: str) -> None:
        try:
            enter_netns(lab.ns(host))
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind((lab.addr(host), PORT))
        except BaseException as error:  # noqa: BLE001 (reported by the caller)
            errors.append(error)
            ready.abort()
            return
        with sock:
            ready.wait(10)
            mine = [pair for pair in pairs if pair[0] == host]
            # Each tick sends one probe per destination, spread over the tick.
            schedule = sorted((seq * interval_s + k * interval_s / len(mine), seq, pair)
                              for seq in range(count) for k, pair in enumerate(mine))
            start = time.monotonic()
            end = start + count * interval_s + grace_s
            next_send = 0
            while time.monotonic() < end:
                now = time.monotonic()
                while next_send < len(schedule) and start + schedule[next_send][0] <= now:
                    _, seq, pair = schedule[next_send]
                    results[pair].sent[seq] = time.monotonic()
                    sock.sendto(MESSAGE.pack(b"P", index[pair[0]], index[pair[1]], seq,
                                             time.time_ns(), 0), (lab.addr(pair[1]), PORT))
                    next_send += 1
                wake = start + schedule[next_send][0] if next_send < len(schedule) else end
                if not select.select([sock], [], [], max(0.0, wake - time.monotonic()))[0]:
                    continue
                data, ancillary, _, sender = sock.recvmsg(64, 64)
                kind, src, dst, seq, sent_ns, dwell_ns = MESSAGE.unpack(data[:MESSAGE.size])
                pair = (hosts[src], hosts[dst])
                received_ns = _kernel_ns(ancillary)
                if kind == b"P":
                    results[pair].one_way_ms[seq] = (received_ns - sent_ns) / 1e6
                    # The time this thread took to answer is ours, not the network's (ping's
                    # answers come from the kernel at once): the sender subtracts it.
                    sock.sendto(MESSAGE.pack(b"R", src, dst, seq, sent_ns,
                                             time.time_ns() - received_ns), sender)
                else:
                    results[pair].rtt_ms[seq] = (received_ns - sent_ns - dwell_ns) / 1e6

    threads = [threading.Thread(target=run, args=(h,), name=f"wanprobe-{h}", daemon=True) for h in hosts]
    for thread in threads:
        thread.start()
    try:
        ready.wait(10)
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join(count * interval_s + grace_s + 10)
    if errors:
        raise errors[0]
    return list(results.values())


def cut_windows_filter(probes: list[PairProbes], windows: list[tuple[float, float]],
                       cut_pairs: set[tuple[str, str]], reach_s: float = 0.25) -> list[PairProbes]:
    """Forget probes of the flapping pairs sent during a cut (or `reach_s` before it, still on
    the way): they measure the flap, not the link."""
    def during_cut(t: float) -> bool:
        return any(cut - reach_s <= t <= healed for cut, healed in windows)
    kept = []
    for pair in probes:
        if (pair.src, pair.dst) in cut_pairs:
            drop = {seq for seq, t in pair.sent.items() if during_cut(t)}
            pair = PairProbes(pair.src, pair.dst,
                              {s: t for s, t in pair.sent.items() if s not in drop},
                              {s: v for s, v in pair.one_way_ms.items() if s not in drop},
                              {s: v for s, v in pair.rtt_ms.items() if s not in drop})
        kept.append(pair)
    return kept


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 3)


def summarize(links: dict, probes: list[PairProbes], delayers: dict[str, dict],
              site_of: Callable[[str], str | None], profile: str | None = None) -> dict:
    """The measurement as JSON-ready data, with its verdict."""
    pairs = []
    for (src, dst), link in sorted(links.items()):
        back = links.get((dst, src))
        mine = [p for p in probes if site_of(p.src) == src and site_of(p.dst) == dst]
        sent = sum(len(p.sent) for p in mine)
        one_way = [v for p in mine for v in p.one_way_ms.values()]
        rtt = [v for p in mine for v in p.rtt_ms.values()]
        rtt_loss = 1 - (1 - link.loss_pct / 100) * (1 - (back.loss_pct if back else 0) / 100)
        pairs.append({
            "src": src, "dst": dst,
            "configured": {"delay_ms": link.delay_ms, "jitter_ms": link.jitter_ms,
                           "loss_pct": round(link.loss_pct, 4),
                           "rtt_ms": link.delay_ms + (back.delay_ms if back else 0),
                           "rtt_loss_pct": round(100 * rtt_loss, 4)},
            "observed": {"probes": sent, "one_way_p50_ms": quantile(one_way, 0.5),
                         "one_way_p99_ms": quantile(one_way, 0.99),
                         "loss_pct": round(100 * (1 - len(one_way) / sent), 3) if sent else None,
                         "rtt_p50_ms": quantile(rtt, 0.5), "rtt_p99_ms": quantile(rtt, 0.99),
                         "rtt_loss_pct": round(100 * (1 - len(rtt) / sent), 3) if sent else None},
        })
    served = {}
    for (src, _), link in links.items():
        if link.delay_ms > 0:
            served[src] = min(served.get(src, math.inf), link.delay_ms)
    for host, stats in delayers.items():
        stats["min_delay_ms"] = served.get(site_of(host) or "")
    measurement = {"profile": profile, "pairs": pairs, "delayers": delayers}
    reasons = invalid_reasons(measurement)
    measurement["valid"] = not reasons
    measurement["invalid_reasons"] = reasons
    return measurement


def stall_allowance_ms(delay_ms: float) -> float:
    """How late a delayer's lag p99 may be on a link of `delay_ms` (the kernel's stalls)."""
    return max(STALL_SHARE * delay_ms, STALL_FLOOR_MS)


def invalid_reasons(measurement: dict) -> list[str]:
    """Why a measurement says the emulator did not deliver what was configured (empty: valid)."""
    reasons = []
    for host, stats in measurement["delayers"].items():
        if not stats.get("alive"):
            reasons.append(f"delayer in {host} is not running: its remote links are cut")
            continue
        dropped = stats.get("queue_dropped", 0) + stats.get("user_dropped", 0)
        if dropped:
            reasons.append(f"kernel dropped {dropped} packets from {host}'s delay queue")
        delay = stats.get("min_delay_ms")
        if not delay:
            continue
        median, tail = stats.get("lag_p50_ms"), stats.get("lag_p99_ms")
        if median is not None and median > max(LAG_SHARE * delay, DELAY_FLOOR_MS):
            reasons.append(f"delayer in {host} falls behind: lag p50 {median} ms > "
                           f"{LAG_SHARE:.0%} of {delay} ms (at least {DELAY_FLOOR_MS} ms)")
        if tail is not None and tail > stall_allowance_ms(delay):
            reasons.append(f"delayer in {host} stalls: lag p99 {tail} ms > "
                           f"{STALL_SHARE:.0%} of {delay} ms (at least {STALL_FLOOR_MS} ms)")
    for pair in measurement["pairs"]:
        name = f"{pair['src']}->{pair['dst']}"
        configured, observed = pair["configured"], pair["observed"]
        sent = observed["probes"]
        if not sent:
            reasons.append(f"{name}: no probes")
            continue
        p50 = observed["one_way_p50_ms"]
        # Jitter moves the delay slowly (lab/wanqueue.py): a short run's p50 sits anywhere in it.
        allowed = max(DELAY_SHARE * configured["delay_ms"], DELAY_FLOOR_MS) + configured["jitter_ms"]
        if p50 is None or abs(p50 - configured["delay_ms"]) > allowed:
            reasons.append(f"{name}: one-way p50 {p50} ms, configured {configured['delay_ms']} ms "
                           f"(+-{allowed:.2f})")
        p = configured["loss_pct"] / 100
        sigma = math.sqrt(p * (1 - p) / sent)
        if abs(observed["loss_pct"] / 100 - p) > LOSS_SIGMAS * sigma + 1 / sent:
            reasons.append(f"{name}: loss {observed['loss_pct']} %, configured "
                           f"{configured['loss_pct']} % ({sent} probes)")
    return reasons
