#!/usr/bin/env python3
"""Many groups on one machine: one Consul, one BIND, sites a and b each served by one
`consulha agent -c DIR` process (or, with --layout per-group, one process per group).

For each group count: site a leads every group, site b stands by; then
  steady     --steady-seconds without a fault: Consul requests/s and CPU, the agents' CPU and
             memory (RSS of all agent processes of one site), their TCP connections to Consul,
             and leadership changes (must be none);
  site loss  every site-a service fails at once (one toy HTTP endpoint behind all of them):
             time until each group's record names site b (DNS polled every 50 ms), and the
             leadership changes per group until 3 s after the last (distinct site and epoch:
             must be exactly one), and promotions per group (a self-fenced leader that resumes
             at its epoch is promoted again without a change; their transitions are kept).
Writes bench/results/scale.json (merged per layout) and bench/results/scale.png.

Usage: bench/scale.py [--groups 1,10,25,40] [--steady-seconds 30 | --steady-minutes 10]
                      [--layout host|per-group] [--consul-max-conns N] [--record-as NAME]

--consul-max-conns lowers Consul's `http_max_conns_per_client` (default 200): with 10 groups
and a limit of 50 it shows at small scale what 40 groups meet at the default (docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.docblocks import ROOT, render  # noqa: E402
from bench.failover import percentile  # noqa: E402
from bench.procstats import CONSUL_TELEMETRY, connections_to, consul_requests, cpu_seconds, rss_mib  # noqa: E402
from lab.consul import ConsulDev  # noqa: E402
from lab.fleet import Fleet, fleet_records  # noqa: E402
from lab.named import NamedServer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = ROOT / "docs" / "scale.md"
DOCS_LAYOUT = "host"   # the layout consulha deploys: docs/scale.md's generated table
SETTLE = 5.0           # after both sites are up: registrations done, standbys blocking
LOSS_LIMIT = 60.0      # a group not on site b by then counts as failed
FLAP_WATCH = 3.0       # keep counting leadership changes this long after the last group moved
SAMPLE_EVERY = 5.0     # connections and memory during the steady window


def pids(fleet: Fleet, site: str) -> list[int]:
    return [p.pid for p in fleet.processes.get(site, []) if p.running()]


def sample(fleet: Fleet, consul: ConsulDev) -> dict:
    return {f"{site}_{what}": value for site in ("a", "b") for what, value in (
        ("connections", connections_to(consul.http_port, pids(fleet, site))),
        ("rss_mib", sum(rss_mib(pid) for pid in pids(fleet, site))))}


def leadership_changes_since(fleet: Fleet, since: float) -> int:
    return sum(1 for t in fleet.transitions() if t["monotonic"] >= since
               and "leader" in (t["role"], t["old"]))


def steady(fleet: Fleet, consul: ConsulDev, seconds: float) -> dict:
    started, requests = time.monotonic(), consul_requests(consul.address)
    consul_cpu = cpu_seconds(consul.pid)
    agents_cpu = {site: sum(map(cpu_seconds, pids(fleet, site))) for site in ("a", "b")}
    samples = []
    while time.monotonic() - started < seconds:
        samples.append(sample(fleet, consul))
        time.sleep(min(SAMPLE_EVERY, max(0.0, seconds - (time.monotonic() - started))))
    took = time.monotonic() - started
    peak = {key: round(max(s[key] for s in samples), 1) for key in samples[0]}
    return {
        "seconds": round(took, 1),
        "consul_requests_per_s": round((consul_requests(consul.address) - requests) / took, 1),
        "consul_cpu_percent": round(100 * (cpu_seconds(consul.pid) - consul_cpu) / took, 1),
        **{f"agents_{site}_cpu_percent": round(100 * (sum(map(cpu_seconds, pids(fleet, site)))
                                                      - agents_cpu[site]) / took, 1)
           for site in ("a", "b")},
        "peak": peak,
        "leadership_changes": leadership_changes_since(fleet, started),
    }


def site_loss(fleet: Fleet, consul: ConsulDev) -> dict:
    session_creations = consul_requests(consul.address, "PUT_v1_session_create")
    fault = time.monotonic()
    fleet.toys["a"].fail()
    moved: dict[str, float] = {}
    peak_connections, counted_at = 0, 0.0
    while len(moved) < len(fleet.groups) and time.monotonic() - fault < LOSS_LIMIT:
        for group in fleet.groups_answering("b") - set(moved):
            moved[group] = time.monotonic() - fault
        if time.monotonic() - counted_at >= 0.5:  # `ss` is not free: twice a second
            counted_at = time.monotonic()
            peak_connections = max(peak_connections, connections_to(
                consul.http_port, pids(fleet, "a") + pids(fleet, "b")))
        time.sleep(0.05)
    time.sleep(FLAP_WATCH)
    # Site b's groups already hold sessions and site a's wait for their checks to change: a
    # count far above the group count would mean somebody polls session creation.
    session_creations = consul_requests(consul.address, "PUT_v1_session_create") - session_creations
    changes, promotions, kept = leaderships_since(fleet, fault)
    times = sorted(moved.values())
    return {
        "groups_moved": len(moved), "groups": len(fleet.groups),
        "median_s": round(statistics.median(times), 3) if times else None,
        "p90_s": round(percentile(times, 0.9), 3) if times else None,
        "max_s": round(times[-1], 3) if len(times) == len(fleet.groups) else None,
        "leadership_changes_per_group": {"min": min(changes.values()), "max": max(changes.values())},
        "exactly_one_change_per_group": all(count == 1 for count in changes.values()),
        # A leader that fenced itself on its lease and resumed at the same epoch is promoted
        # twice without any change of leadership: counted apart, and every transition of a
        # group that was promoted more than once is kept for the record.
        "promotions_per_group": {"min": min(promotions.values()), "max": max(promotions.values())},
        "transitions_of_groups_promoted_more_than_once": kept,
        "peak_connections_both_sites": peak_connections,
        "session_creations": session_creations,
    }


def leaderships_since(fleet: Fleet, fault: float) -> tuple[dict, dict, dict]:
    """Per group: leaderships begun after `fault` (distinct site and epoch: a change of
    leadership), promotions (including resumes at the same epoch), and the transitions of
    every group promoted more than once."""
    after = [t for t in fleet.transitions() if t["monotonic"] >= fault and t.get("group")]
    changes = {group: len({(t["site"], t["epoch"]) for t in after
                           if t["group"] == group and t["role"] == "leader"}) for group in fleet.groups}
    promotions = {group: len(sites) for group, sites in fleet.promotions_since(fault).items()}
    kept = {group: [{key: t.get(key) for key in ("site", "old", "role", "epoch", "cause", "reason")}
                    | {"after_fault_s": round(t["monotonic"] - fault, 3)}
                    for t in after if t["group"] == group]
            for group, count in promotions.items() if count > 1}
    return changes, promotions, kept


def refusals(fleet: Fleet, consul: ConsulDev) -> dict:
    """How often Consul turned the agents away: refused connections seen by the agents, and
    script TTLs Consul found missed, heartbeat probes that failed."""
    agent_logs = [p.log_text() for processes in fleet.processes.values() for p in processes]
    consul_log = consul.log_path.read_text(errors="replace").splitlines()
    return {"agent_connection_errors": sum(text.count("ConnectionError") for text in agent_logs),
            "consul_missed_ttl": sum("missed TTL" in line for line in consul_log),
            # Consul's probes of the agents' heartbeat checks: turned critical, or failed once
            # below the threshold (a slow answer from a busy agent process).
            "heartbeat_critical": sum("is now critical" in line and "heartbeat" in line
                                      for line in consul_log),
            "heartbeat_probe_failures": sum("not reached failure threshold" in line and "heartbeat" in line
                                            for line in consul_log)}


def one_count(root: Path, groups: int, steady_seconds: float, per_group: bool,
              max_conns: int | None) -> dict:
    workdir = root / f"groups-{groups}"
    limits = (f"limits {{ http_max_conns_per_client = {max_conns} }}",) if max_conns else ()
    with ConsulDev(workdir / "consul", extra_hcl=(CONSUL_TELEMETRY, *limits)) as consul, \
            NamedServer(workdir / "named", records=fleet_records(groups)) as named:
        fleet = Fleet(workdir, consul, named, groups)
        try:
            started = time.monotonic()
            try:
                fleet.start("a", per_group=per_group)
                fleet.wait_settled(30 + 2 * groups)
                fleet.start("b", per_group=per_group)
                fleet.wait_candidates(30 + 2 * groups)
            except AssertionError as error:
                return {"groups": groups, "failed": str(error).splitlines()[0],
                        **refusals(fleet, consul)}
            up = time.monotonic() - started
            time.sleep(SETTLE)
            row = {"groups": groups, "agent_processes_per_site": len(fleet.processes["a"]),
                   "startup_s": round(up, 1), "steady": steady(fleet, consul, steady_seconds)}
            row["site_loss"] = site_loss(fleet, consul)
            row.update(refusals(fleet, consul))
            stopping = time.monotonic()
            codes = fleet.stop("b") + fleet.stop("a")
            row["stop"] = {"seconds": round(time.monotonic() - stopping, 1),
                           "exit_codes_zero": all(code == 0 for code in codes)}
            return row
        finally:
            fleet.close()


def slope(rows: list[dict], value) -> float | None:
    """Least-squares slope of value(row) over the group count: the cost of one more group."""
    points = [(row["groups"], value(row)) for row in rows if "failed" not in row]
    if len({x for x, _ in points}) < 2:
        return None
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    return round(sum((x - mean_x) * (y - mean_y) for x, y in points)
                 / sum((x - mean_x) ** 2 for x, _ in points), 2)


def plot(layouts: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (times, load) = plt.subplots(1, 2, figsize=(11, 4))
    for layout, report in layouts.items():
        rows = [r for r in report["rows"] if "failed" not in r and r["site_loss"]["max_s"] is not None]
        xs = [r["groups"] for r in rows]
        for key, style in (("median_s", "o-"), ("p90_s", "s--"), ("max_s", "^:")):
            times.plot(xs, [r["site_loss"][key] for r in rows], style, label=f"{layout} {key[:-2]}")
        done = [r for r in report["rows"] if "failed" not in r]
        load.plot([r["groups"] for r in done], [r["steady"]["consul_requests_per_s"] for r in done], "o-",
                  label=f"{layout}: Consul requests/s")
    times.axhline(10, color="red", linewidth=1, label="target (max)")
    times.set_xlabel("groups per site")
    times.set_ylabel("site loss -> every record names site b (s)")
    times.legend(fontsize=8)
    load.set_xlabel("groups per site")
    load.set_ylabel("steady Consul requests/s")
    load.legend(fontsize=8)
    figure.suptitle("consulha: many groups on one Consul and one BIND")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def docs_lines(report: dict) -> list[str]:
    """docs/scale.md's block: the host layout's table, with where and when it was measured."""
    return [f"`bench/scale.py`, `bench/results/scale.json` (\"{DOCS_LAYOUT}\", {report['at']}, steady window "
            f"{report['rows'][0]['steady']['seconds']:.0f} s):", ""] + table(report) + [
            "", f"One more group (least-squares slopes): {report['per_group_slope']}"]


def table(report: dict) -> list[str]:
    lines = ["| groups | processes/site | median | p90 | max | changes/group | promotions/group "
             "| agents' RSS, site a | connections a+b | Consul req/s | Consul CPU | steady changes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if "failed" in r:
            lines.append(f"| {r['groups']} | failed: {r['failed']} ({r['agent_connection_errors']} "
                         f"refused connections, {r['consul_missed_ttl']} missed TTLs) |")
            continue
        loss, st = r["site_loss"], r["steady"]
        changes = loss["leadership_changes_per_group"]
        promoted = loss.get("promotions_per_group")  # rows from before it was counted lack it
        promotions = f"{promoted['min']}..{promoted['max']}" if promoted else "-"
        fmt = lambda v: f"{v:.2f} s" if v is not None else "-"  # noqa: E731
        lines.append(f"| {r['groups']} | {r['agent_processes_per_site']} | {fmt(loss['median_s'])} | "
                     f"{fmt(loss['p90_s'])} | {fmt(loss['max_s'])} | "
                     f"{changes['min']}..{changes['max']} | {promotions} | "
                     f"{st['peak']['a_rss_mib']:.0f} MiB | "
                     f"{st['peak']['a_connections'] + st['peak']['b_connections']:.0f} | "
                     f"{st['consul_requests_per_s']:.0f} | {st['consul_cpu_percent']:.0f} % | "
                     f"{st['leadership_changes']} in {st['seconds']:.0f} s |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="1,10,25,40")
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--steady-minutes", type=float, help="overrides --steady-seconds")
    parser.add_argument("--layout", choices=("host", "per-group"), default="host")
    parser.add_argument("--consul-max-conns", type=int, help="Consul's http_max_conns_per_client")
    parser.add_argument("--record-as", help="name of this series in scale.json (default: the "
                                            "layout and limit); the same name replaces it")
    args = parser.parse_args()
    counts = [int(n) for n in args.groups.split(",")]
    steady_seconds = 60 * args.steady_minutes if args.steady_minutes else args.steady_seconds
    if not counts or min(counts) < 1 or max(counts) > 60 or not 5 <= steady_seconds <= 1800:
        parser.error("groups 1..60 each, steady window 5 s .. 30 min")
    rows = []
    with tempfile.TemporaryDirectory(prefix="consulha-scale-") as tmp:
        for groups in counts:
            rows.append(one_count(Path(tmp), groups, steady_seconds, args.layout == "per-group",
                                  args.consul_max_conns))
            print(json.dumps(rows[-1]), flush=True)
    report = {"what": "site loss (every site-a service fails at once) -> every group's record "
                      "names site b; steady load without a fault",
              "settings": {"check_interval": "1s", "ttl": "10s", "lock_delay": "1s",
                           "heartbeat_ttl": "3s", "layout": args.layout,
                           "http_max_conns_per_client": args.consul_max_conns or 200},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows,
              "per_group_slope": {
                  "consul_requests_per_s": slope(rows, lambda r: r["steady"]["consul_requests_per_s"]),
                  "consul_cpu_percent": slope(rows, lambda r: r["steady"]["consul_cpu_percent"]),
                  "agents_a_rss_mib": slope(rows, lambda r: r["steady"]["peak"]["a_rss_mib"])}}
    out = RESULTS / "scale.json"
    layouts = json.loads(out.read_text()) if out.exists() else {}
    layout = args.layout + (f", limit {args.consul_max_conns}" if args.consul_max_conns else "")
    layouts[args.record_as or layout] = report
    out.write_text(json.dumps(layouts, indent=2) + "\n")
    plot(layouts, RESULTS / "scale.png")
    if DOCS_LAYOUT in layouts:
        render(DOCS, "scale table", docs_lines(layouts[DOCS_LAYOUT]))
    print("\n".join(table(report)))
    print(f"per-group slope: {report['per_group_slope']}\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
