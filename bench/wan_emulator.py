#!/usr/bin/env python3
"""The WAN emulator (lab/wan.py) measured per profile: configured vs observed RTT, loss and the
delayers' lag, in an empty lab and with the lab's Consul cluster and both agents running (site a
leading). Two independent measures: the emulator's own UDP probes (`Wan.measure`) and `ping`
(iputils, when installed) between the app hosts and the witness. Lag and the delayers' CPU are
taken over `--hold` seconds of the lab's own traffic per profile. Needs root.
Writes bench/results/wan_emulator.json.

Usage: bench/wan_emulator.py [--profiles lan,metro,regional,continental,bad] [--hold 10]
                             [--count 30] [--pings 40] [--modes empty,consul]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procstats import cpu_seconds  # noqa: E402
from lab import netns  # noqa: E402
from lab.chaoslab import ChaosLab  # noqa: E402
from lab.wan import PROFILES, Wan, preflight  # noqa: E402
from lab.wanprobe import quantile  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PING_PAIRS = (("ha", "hb"), ("ha", "sw"), ("hb", "sw"))
_TIME = re.compile(r"time=([\d.]+) ms")


def ping(net: netns.NetLab, src: str, dst: str, count: int) -> dict:
    """RTT p50/p99 and loss of `count` pings src -> dst, 50 ms apart (bounded by -w)."""
    out = subprocess.run(["ip", "netns", "exec", net.ns(src), "ping", "-n", "-c", str(count),
                          "-i", "0.05", "-w", str(int(count * 0.05) + 5), net.addr(dst)],
                         capture_output=True, text=True, timeout=count * 0.05 + 15).stdout
    times = [float(t) for t in _TIME.findall(out)]
    return {"pair": f"{src}-{dst}", "rtt_p50_ms": quantile(times, 0.5),
            "rtt_p99_ms": quantile(times, 0.99), "loss_pct": round(100 * (1 - len(times) / count), 2)}


def one_profile(net: netns.NetLab, wan: Wan, name: str, hold: float, count: int, pings: int) -> dict:
    profile = PROFILES[name]
    wan.apply(profile)
    wan.measure(count=1)     # starts the delayers' lag statistics afresh for this profile
    cpu0 = {h: cpu_seconds(d.process.pid) for h, d in wan.delayers.items()}
    time.sleep(hold)
    cpu = {h: round(100 * (cpu_seconds(d.process.pid) - cpu0[h]) / hold, 2) for h, d in wan.delayers.items()}
    measurement = wan.measure(count=count)
    pinged = []
    if shutil.which("ping") and pings:
        with concurrent.futures.ThreadPoolExecutor(len(PING_PAIRS)) as pool:
            pinged = list(pool.map(lambda p: ping(net, p[0], p[1], pings), PING_PAIRS))
    lags = [d for d in measurement["delayers"].values() if d.get("lag_p99_ms") is not None]
    summary = {
        "profile": name, "rtt_ms": profile.rtt_ms, "jitter_ms": profile.jitter_ms,
        "loss_pct": profile.loss_pct, "valid": measurement["valid"],
        "invalid_reasons": measurement["invalid_reasons"],
        "probe_rtt_p50_ms": [p["observed"]["rtt_p50_ms"] for p in measurement["pairs"]],
        "probe_rtt_p99_ms": [p["observed"]["rtt_p99_ms"] for p in measurement["pairs"]],
        "ping": pinged,
        "lag_p50_ms_max": max((d["lag_p50_ms"] for d in lags), default=None),
        "lag_p99_ms_max": max((d["lag_p99_ms"] for d in lags), default=None),
        "lag_max_ms": max((d["lag_max_ms"] for d in lags), default=None),
        "packets_per_s": round(sum(d.get("packets", 0) for d in lags) / hold, 1),
        "delayer_cpu_pct": cpu, "measurement": measurement,
    }
    print(f"{name:12} rtt {profile.rtt_ms:>5} probes p50 {min(summary['probe_rtt_p50_ms'])}.."
          f"{max(summary['probe_rtt_p50_ms'])} p99 ..{max(summary['probe_rtt_p99_ms'])}  ping p50 "
          f"{[p['rtt_p50_ms'] for p in pinged]}  lag p50/p99/max {summary['lag_p50_ms_max']}/"
          f"{summary['lag_p99_ms_max']}/{summary['lag_max_ms']} ms  {summary['packets_per_s']} pkt/s"
          f"  valid {summary['valid']}", flush=True)
    return summary


def run_mode(mode: str, args, workdir: Path) -> list[dict]:
    chaos = ChaosLab(workdir) if mode == "consul" else None
    net = chaos.net if chaos else netns.NetLab(workdir)
    wan = None
    try:
        if chaos:
            chaos.start()
            chaos.reset("wan-bench")     # both agents: a leads, b stands by
        else:
            net.create()
        wan = Wan(net)
        return [one_profile(net, wan, name, args.hold, args.count, args.pings)
                for name in args.profiles.split(",")]
    finally:
        if wan:
            wan.close()
        if chaos:
            chaos.close()
        else:
            net.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="lan,metro,regional,continental,bad")
    parser.add_argument("--modes", default="empty,consul")
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--pings", type=int, default=40)
    args = parser.parse_args()
    reason = netns.preflight() or preflight()
    if reason:
        sys.exit(f"wan_emulator: {reason}")
    netns.sweep_stale()
    results = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
               "settings": vars(args), "modes": {}}
    for mode in args.modes.split(","):
        print(f"-- {mode} lab", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"wan-emulator-{mode}-") as workdir:
            results["modes"][mode] = run_mode(mode, args, Path(workdir))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "wan_emulator.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
