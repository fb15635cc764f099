#!/usr/bin/env python3
"""The alternative a user would reach for: `consul lock`, holder SIGKILL -> standby runs.

Two `consul lock` processes compete for one prefix, each running a child that writes a marker
file. The holder's `consul lock` process is SIGKILLed; measured: time until the standby's child
starts. Also recorded: whether the killed holder's child kept running (it does: nothing fences
it). `consul lock` 1.8.7 has no flags for the session TTL (15 s) or lock-delay (15 s), so only
its defaults can be measured. Writes bench/results/consul_lock.json.

Usage: bench/consul_lock.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.consul import ConsulDev  # noqa: E402
from lab.pair import wait_until  # noqa: E402


def holder(consul: ConsulDev, prefix: str, marker: Path) -> subprocess.Popen:
    child = f"echo $$ > {marker}; exec sleep 600"
    return subprocess.Popen(
        [shutil.which("consul") or "consul", "lock", f"-http-addr={consul.address}", "-shell",
         prefix, child],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def one_run(consul: ConsulDev, work: Path, run: int) -> dict:
    prefix = f"bench/consul-lock/{run}"
    markers = [work / f"{run}-a", work / f"{run}-b"]
    first = holder(consul, prefix, markers[0])
    wait_until(markers[0].exists, 20, what="first holder's child")
    second = holder(consul, prefix, markers[1])
    time.sleep(1.0)
    assert not markers[1].exists(), "both consul lock children run at once"
    orphan_pid = int(markers[0].read_text())
    started = time.monotonic()
    first.kill()  # the `consul lock` process only, as a crash of it would
    wait_until(markers[1].exists, 120, step=0.05, what="standby's child")
    took = time.monotonic() - started
    orphan_alive = _alive(orphan_pid)
    for process in (second,):
        os.killpg(process.pid, signal.SIGKILL)
    if orphan_alive:
        os.kill(orphan_pid, signal.SIGKILL)
    return {"seconds": round(took, 3), "killed_holders_child_kept_running": orphan_alive}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    samples = []
    with tempfile.TemporaryDirectory(prefix="consulha-lock-") as tmp:
        with ConsulDev(Path(tmp) / "consul") as consul:
            for run in range(args.runs):
                samples.append(one_run(consul, Path(tmp), run))
                print(f"consul lock run {run + 1}/{args.runs}: {samples[-1]}", flush=True)
    seconds = [s["seconds"] for s in samples]
    report = {"what": "consul lock (defaults: TTL 15s, lock-delay 15s), holder SIGKILL -> standby child runs (s)",
              "median_s": statistics.median(seconds), "max_s": max(seconds), "samples": samples}
    ours = Path(__file__).resolve().parent / "results" / "failover.json"
    if ours.exists():
        sigkill = json.loads(ours.read_text())["results"].get("sigkill")
        if sigkill:
            report["consulha_sigkill_median_s"] = sigkill["median_s"]
            report["ratio_consul_lock_to_consulha"] = round(report["median_s"] / sigkill["median_s"], 1)
    out = ours.parent / "consul_lock.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
