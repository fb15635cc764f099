"""bench/results/wan.json as markdown: docs/wan.md's tables and the README's summary (no
matplotlib here: the plot is bench/wan_render.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from bench.docblocks import render, replaced

DOCS = Path(__file__).resolve().parent.parent / "docs" / "wan.md"
README = DOCS.parent.parent / "README.md"
SYSTEM_ORDER = ("consulha", "consulha-consul-only", "zookeeper")
SHORT = {"consulha": "c", "consulha-consul-only": "c-co", "zookeeper": "zk"}


def systems_of(report: Mapping) -> list[str]:
    names = {name for profile in report["profiles"].values() for fault in profile["faults"].values()
             for name in fault}
    names |= {name for profile in report["profiles"].values()
              for name in ((profile.get("soak") or {}).get("systems") or {})}
    return sorted(names, key=lambda n: (SYSTEM_ORDER.index(n) if n in SYSTEM_ORDER else len(SYSTEM_ORDER), n))


def _cell(row: Mapping | None) -> str:
    if not row:
        return "-"
    if "skipped" in row:
        return "n/a"
    if not row.get("runs"):
        return f"0 of {row.get('failed_runs', 0)}"
    flags = [f"{row[k]} {k}" for k in ("late", "missed", "extra_moves", "two_leaders", "two_writers",
                                         "invariant_violations") if row.get(k)]
    return (f"{row['median_s']:.2f} / {row['p95_s']:.2f} / {row['max_s']:.2f} s"
            + (f" ({', '.join(flags)})" if flags else ""))


def _emulator_cell(measured: Mapping | None, verdict: Mapping) -> str:
    """What Wan.measure() saw on the a->b link, and the profile's verdict."""
    if not measured:
        return "-"
    link = next((p for p in measured["pairs"] if (p["src"], p["dst"]) == ("a", "b")), None)
    lags = [d["lag_p99_ms"] for d in measured["delayers"].values() if d.get("lag_p99_ms") is not None]
    medians = [d["lag_p50_ms"] for d in measured["delayers"].values() if d.get("lag_p50_ms") is not None]
    parts = []
    if link:
        configured, observed = link["configured"], link["observed"]
        parts.append(f"{configured['rtt_ms']:g} -> {observed['rtt_p50_ms']} ms, "
                     f"{configured['rtt_loss_pct']:g} -> {observed['rtt_loss_pct']} %")
    if lags:
        parts.append(f"lag p50/p99 {max(medians, default=0):g}/{max(lags):g} ms")
    valid = verdict.get("valid", measured.get("valid", True))
    reasons = verdict.get("invalid_reasons") or measured.get("invalid_reasons") or []
    return ", ".join(parts) + ("; valid" if valid else f"; INVALID: {reasons[0]}")


def _false_failovers(row: Mapping | None) -> str:
    """Moves, and the promotions that were none (a leader that fenced itself and resumed)."""
    if not row:
        return "-"
    again = row["promotions"] - row["false_failovers"]
    return f"{row['false_failovers']}" + (f" ({again} self-fenced and resumed)" if again > 0 else "")


def figures_lines(report: Mapping) -> list[str]:
    """Two markdown tables: the soaks, and the faults (median / p95 / max per system)."""
    systems = systems_of(report)
    lines = ["| profile | emulator, its newest measurement: a->b RTT and loss configured -> observed, delayer lag | soak | " + " | ".join(
        f"{s} false failovers" for s in systems) + " | consulha session invalidations | heartbeat / "
        "check critical | serf suspicions | Raft elections | consistent read p50 / p99 |",
        "|---" * (8 + len(systems)) + "|"]
    for name, profile in report["profiles"].items():
        soak = profile.get("soak") or {"systems": {}}
        after = [entry["measurement"] for entry in profile.get("emulator_after_faults", [])]
        # The newest measurement: the latest series measured with enough probes to see the loss.
        emulator = _emulator_cell(after[-1] if after else soak.get("emulator"),
                                  profile.get("emulator_verdict", {}))
        own = soak["systems"].get("consulha", {})
        consul, read = own.get("consul", {}), own.get("consistent_read", {}).get("all", {})
        lines.append(f"| {name} | {emulator} | {soak.get('seconds', 0):.0f} s | " + " | ".join(
            _false_failovers(soak["systems"].get(s)) for s in systems)
            + f" | {own.get('session_invalidations', '-')} | {consul.get('heartbeat_critical', '-')} / "
              f"{consul.get('service_critical', '-')} | {consul.get('serf_suspicions', '-')} | "
              f"{consul.get('raft_elections', '-')} | "
            + (f"{read['p50_ms']:.1f} / {read['p99_ms']:.1f} ms" if read.get("reads") else "-") + " |")
    faults = list(dict.fromkeys(f for p in report["profiles"].values() for f in p["faults"]))
    lines += ["", "| profile | fault | runs | " + " | ".join(f"{s} median / p95 / max" for s in systems)
              + (" | zookeeper / consulha (median) |" if "zookeeper" in systems else " |"),
              "|---" * (3 + len(systems) + ("zookeeper" in systems)) + "|"]
    for name, profile in report["profiles"].items():
        for fault in (f for f in faults if f in profile["faults"]):
            rows = profile["faults"][fault]
            ratio = ""
            if "zookeeper" in systems:
                ours, theirs = rows.get("consulha", {}), rows.get("zookeeper", {})
                ratio = (f" | {theirs['median_s'] / ours['median_s']:.1f}x"
                         if ours.get("runs") and theirs.get("runs") else " | -")
            runs = max((row.get("of", 0) for row in rows.values()), default=0)
            not_started = len(profile.get("start_failures", {}).get(fault, []))
            lines.append(f"| {name} | {fault} | {runs}" + (f" (+{not_started} not started)" if not_started else "")
                         + " | "
                         + " | ".join(_cell(rows.get(s)) for s in systems) + ratio + " |")
    return lines


def _brief(row: Mapping | None) -> str:
    if not row or "skipped" in row:
        return "-"
    if not row.get("runs"):
        return f"0 of {row.get('failed_runs', 0)}"
    flags = [f"{row[key]} {name}" for key, name in (("two_leaders", "with two leaders"), ("missed", "missed"),
                                                     ("invariant_violations", "violations")) if row.get(key)]
    return f"{row['median_s']:.2f} (p95 {row['p95_s']:.2f}, n={row['runs']}{''.join(', ' + f for f in flags)})"


def summary_lines(report: Mapping) -> list[str]:
    """The README's table: one row per profile, every system's figures in one cell per fault
    (median, p95, runs), in the order of the legend line."""
    systems = systems_of(report)
    faults = list(dict.fromkeys(f for p in report["profiles"].values() for f in p["faults"]))
    legend = ", ".join(f"{SHORT.get(s, s)} = {s}" for s in systems)
    short = "/".join(SHORT.get(s, s) for s in systems)
    lines = [f"Recorded {report['at']} (`bench/results/wan.json`; {legend}). Fault times run from "
             "the fault until every verify server answers site b: median (p95, runs, and the runs that "
             "had two sites active at once). The false failovers and two leaders columns are the soaks'.", "",
             f"| profile | emulator | soak s | false failovers {short} | two leaders {short} | "
             + " | ".join(f"{fault} {short}" for fault in faults) + " |",
             "|---" * (5 + len(faults)) + "|"]
    for name, profile in report["profiles"].items():
        soak = (profile.get("soak") or {}).get("systems", {})
        verdict = profile.get("emulator_verdict", {})
        counts = ["/".join(str((soak.get(s) or {}).get(key, "-")) for s in systems)
                  for key in ("false_failovers", "two_leaders")]
        cells = [" / ".join(_brief(profile["faults"].get(fault, {}).get(s)) for s in systems)
                 for fault in faults]
        lines.append(f"| {name} | {'valid' if verdict.get('valid', True) else 'INVALID'} | "
                     f"{(profile.get('soak') or {}).get('seconds', 0):.0f} | {' | '.join(counts)} | "
                     + " | ".join(cells) + " |")
    return lines


def settings_lines(settings: Mapping[str, object], profiles: Mapping[str, object]) -> list[str]:
    """The recommended settings per profile (bench.wan_systems.SETTINGS; lab.wan.PROFILES)."""
    lines = ["| profile | RTT / jitter / loss | session ttl | lock_delay | heartbeat_ttl | node_checks | "
             "check interval | debounce (failures_before_critical) | raft_multiplier | serf (gossip_lan) | why |",
             "|---" * 11 + "|"]
    for name, chosen in settings.items():
        link, agent, consul = profiles[name], chosen.agent, chosen.consul
        shape = f"{link.rtt_ms:g} ms / ±{link.jitter_ms:g} ms / {link.loss_pct:g} %" + (
            f", a-b cut {link.flap_cut_s:g} s every {link.flap_period_s:g} s" if link.flap_period_s else "")
        serf = ", ".join(f"{k} {v}" for k, v in consul.gossip_lan) or "Consul's defaults"
        lines.append(f"| {name} | {shape} | {agent.ttl} | {agent.lock_delay} | {agent.heartbeat_ttl} | "
                     f"{', '.join(agent.node_checks) or 'none'} | {agent.check_interval} | "
                     f"{agent.failures_before_critical} | {consul.raft_multiplier} | {serf} | {chosen.why} |")
    return lines


def render_docs(report: Mapping | None, path: Path = DOCS, readme: Path = README) -> None:
    """Refresh docs/wan.md's generated blocks (the settings, and the figures of `report`) and
    the README's summary of them."""
    from bench.wan_systems import SETTINGS
    from lab.wan import PROFILES
    text = replaced(path.read_text(), "wan settings", settings_lines(SETTINGS, PROFILES), str(path))
    if report and report.get("profiles"):
        text = replaced(text, "wan figures", [f"Recorded {report['at']} ({report['machine']['cpus']} "
                                                    "cores), `bench/results/wan.json`:", ""] + figures_lines(report), str(path))
    path.write_text(text)
    if report and report.get("profiles"):
        render(readme, "wan summary", summary_lines(report))
