#!/usr/bin/env python3
"""Collect bench/results/*.json into bench/results/README.md (a markdown table) and print it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cutover import table_lines as cutover_table  # noqa: E402
from bench.damping_models import table as damping_models_table  # noqa: E402
from bench.failover import table_row  # noqa: E402
from bench.flapping import table as flapping_table  # noqa: E402
from bench.idle import table_lines as idle_table  # noqa: E402
from bench.scale import table as scale_table  # noqa: E402
from bench.wan_tables import figures_lines as wan_tables  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def table(title: str, report: dict) -> list[str]:
    lines = [f"{title} ({report['what']}), settings {report['settings']}, last run {report['at']}:",
             "", "| scenario | runs | median | p95 | max |", "|---|---|---|---|---|"]
    lines += [table_row(scenario, row) for scenario, row in report["results"].items()]
    return lines


def timelines(pattern: str, but: str | None = None) -> str:
    return ", ".join(f"[{p.stem}]({p.name})" for p in sorted(RESULTS.glob(pattern))
                     if not (but and p.name.startswith(but)))


def main() -> None:
    lines = ["# Benchmark results", ""]
    failover = RESULTS / "failover.json"
    if failover.exists():
        lines += table("Failover on one machine", json.loads(failover.read_text()))
        lines += ["", "Timelines of one run each: " + timelines("timeline-*.png", but="timeline-sites-"), ""]
    sites = RESULTS / "sites.json"
    if sites.exists():
        report = json.loads(sites.read_text())
        lines += table("Three-site topology", report)
        lines += ["", "Timelines of one run each: " + timelines("timeline-sites-*.png")]
        lock_row = report.get("consul_lock_sigkill")
        if lock_row:
            lines += ["", f"`consul lock` on the same topology, holder SIGKILL: median "
                          f"{lock_row['median_s']:.1f} s over {len(lock_row['samples'])} runs"
                          + (f", {report['ratio_consul_lock_to_consulha_sigkill']}x consulha's"
                             if "ratio_consul_lock_to_consulha_sigkill" in report else "") + "."]
        lines.append("")
    records = RESULTS / "dns_failover.json"
    if records.exists():
        lines += table("Several records, BIND primary and secondary", json.loads(records.read_text()))
        lines.append("")
    lock = RESULTS / "consul_lock.json"
    if lock.exists():
        report = json.loads(lock.read_text())
        orphans = sum(s["killed_holders_child_kept_running"] for s in report["samples"])
        lines += [f"`consul lock` ({report['what']}): median {report['median_s']:.1f} s over "
                  f"{len(report['samples'])} runs; the killed holder's child kept running in "
                  f"{orphans} of {len(report['samples'])}."]
        if "ratio_consul_lock_to_consulha" in report:
            lines.append(f"Ratio to consulha's agent SIGKILL median "
                         f"({report['consulha_sigkill_median_s']:.2f} s): "
                         f"{report['ratio_consul_lock_to_consulha']}x.")
    idle = RESULTS / "idle.json"
    if idle.exists():
        report = json.loads(idle.read_text())
        lines += ["", f"Idle agents ({report['what']}), settings {report['settings']}, last run "
                      f"{report['at']}:", ""] + idle_table(report)
    requests = RESULTS / "requests.json"
    if requests.exists():
        report = json.loads(requests.read_text())
        lines += ["", f"Consul requests per second ({report['what']}), settings "
                      f"{report['settings']}, last run {report['at']}:", "",
                  "| role | requests/s | to the servers | local agent only | target |",
                  "|---|---|---|---|---|"]
        lines += [f"| {role} | {row['per_s']} | {row['servers_per_s']} | {row['local_agent_per_s']} "
                  f"| <= {row['target_per_s']} |" for role, row in report["results"].items()]
    scale = RESULTS / "scale.json"
    if scale.exists():
        for layout, report in json.loads(scale.read_text()).items():
            lines += ["", f"Many groups, layout {layout} ({report['what']}), settings "
                          f"{report['settings']}, last run {report['at']}:", ""]
            lines += scale_table(report)
            lines += ["", f"Cost of one more group (least-squares slope): {report['per_group_slope']}"]
        lines += ["", "Time vs groups: [scale.png](scale.png)"]
    for name, render in (("flapping.json", flapping_table), ("damping_models.json", damping_models_table)):
        path = RESULTS / name
        if path.exists():
            report = json.loads(path.read_text())
            lines += ["", f"{report['what'][0].upper()}{report['what'][1:]}, settings {report['settings']}, "
                          f"last run {report['at']}:", ""] + render(report)
    cutover = RESULTS / "cutover.json"
    if cutover.exists():
        lines += ["", "What a client behind a caching resolver sees:", ""] + cutover_table(
            json.loads(cutover.read_text()))
    wan = RESULTS / "wan.json"
    if wan.exists():
        report = json.loads(wan.read_text())
        lines += ["", f"Across emulated WAN links, consulha beside the ZooKeeper design ({report['what']}), "
                      f"last run {report['at']}, settings in [docs/wan.md](../../docs/wan.md):", ""]
        lines += wan_tables(report) + ["", "Failover time and false failovers per profile: [wan.png](wan.png)"]
    text = "\n".join(lines) + "\n"
    (RESULTS / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
