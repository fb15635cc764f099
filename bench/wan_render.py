"""bench/results/wan.json as a plot and as markdown tables (docs/wan.md, bench/results/README.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs" / "wan.md"
PLOTTED_FAULTS = ("check", "sigkill", "isolation")
SYSTEM_COLOURS = {"consulha": "tab:blue", "zookeeper": "tab:orange"}
FAULT_HATCHES = {"check": "", "sigkill": "//", "isolation": "..", "handover": "xx"}


def _systems(report: Mapping) -> list[str]:
    names = {name for profile in report["profiles"].values() for fault in profile["faults"].values()
             for name in fault}
    names |= {name for profile in report["profiles"].values()
              for name in ((profile.get("soak") or {}).get("systems") or {})}
    return sorted(names, key=lambda n: n != "consulha")


def plot(report: Mapping, out: Path) -> Path:
    """Failover time (median, p95 whisker) per profile and fault, and false failovers in the
    soak, consulha beside ZooKeeper; an invalid profile (emulator lag) is marked."""
    profiles = list(report["profiles"])
    systems = _systems(report)
    figure, (times, false) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    width = 0.8 / max(1, len(systems) * len(PLOTTED_FAULTS))
    for s, system in enumerate(systems):
        for f, fault in enumerate(PLOTTED_FAULTS):
            xs, medians, whiskers = [], [], []
            for x, name in enumerate(profiles):
                row = report["profiles"][name]["faults"].get(fault, {}).get(system, {})
                if row.get("runs"):
                    xs.append(x - 0.4 + width * (s * len(PLOTTED_FAULTS) + f + 0.5))
                    medians.append(row["median_s"])
                    whiskers.append(row["p95_s"] - row["median_s"])
            if not xs:
                continue
            times.bar(xs, medians, width, yerr=[[0] * len(xs), whiskers], capsize=2,
                      color=SYSTEM_COLOURS.get(system, "grey"), hatch=FAULT_HATCHES[fault],
                      edgecolor="black", linewidth=0.4, label=f"{system}: {fault}")
    times.set_ylabel("fault -> DNS on b (s)\nmedian, whisker p95")
    if times.get_legend_handles_labels()[0]:  # a soak-only record has no fault bars yet
        times.legend(fontsize=7, ncol=len(systems))
    bar = 0.8 / max(1, len(systems))
    for s, system in enumerate(systems):
        counts = [((report["profiles"][p].get("soak") or {}).get("systems", {}).get(system) or {})
                  .get("false_failovers", 0) for p in profiles]
        xs = [x - 0.4 + bar * (s + 0.5) for x in range(len(profiles))]
        false.bar(xs, counts, bar, color=SYSTEM_COLOURS.get(system, "grey"), label=system)
        for x, count in zip(xs, counts):
            false.annotate(str(count), (x, count), ha="center", va="bottom", fontsize=8)
    seconds = {(report["profiles"][p].get("soak") or {}).get("seconds") for p in profiles} - {None}
    false.set_ylabel("false failovers\nin the soak" + (f" ({'/'.join(f'{s:.0f}' for s in sorted(seconds))} s)"
                                                      if seconds else ""))
    false.set_ylim(0, max([1.0, *false.get_ylim()]))
    false.legend(fontsize=8)
    labels = [name + ("\n(emulator off: invalid)"
                      if not report["profiles"][name].get("emulator_verdict", {}).get("valid", True) else "")
              for name in profiles]
    false.set_xticks(range(len(profiles)), labels)
    figure.suptitle(f"consulha and the ZooKeeper design on emulated WAN links ({report['at']})")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


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
    parts = []
    if link:
        configured, observed = link["configured"], link["observed"]
        parts.append(f"{configured['rtt_ms']:g} -> {observed['rtt_p50_ms']} ms, "
                     f"{configured['rtt_loss_pct']:g} -> {observed['rtt_loss_pct']} %")
    if lags:
        parts.append(f"lag {max(lags):g} ms")
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
    systems = _systems(report)
    lines = ["| profile | emulator: a->b RTT and loss configured -> observed, delayer lag p99 | soak | " + " | ".join(
        f"{s} false failovers" for s in systems) + " | consulha session invalidations | heartbeat / "
        "check critical | serf suspicions | Raft elections | consistent read p50 / p99 |",
        "|---" * (8 + len(systems)) + "|"]
    for name, profile in report["profiles"].items():
        soak = profile.get("soak") or {"systems": {}}
        after = [entry["measurement"] for entry in profile.get("emulator_after_faults", [])]
        emulator = _emulator_cell(soak.get("emulator") or (after[-1] if after else None),
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


def _replace_block(text: str, name: str, lines: list[str]) -> str:
    pattern = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"{DOCS}: no <!-- {name} --> ... <!-- /{name} --> block")
    return pattern.sub(lambda m: m.group(1) + "\n".join(lines) + "\n" + m.group(2), text)


def render_docs(report: Mapping | None, path: Path = DOCS) -> None:
    """Refresh docs/wan.md's generated blocks: the settings, and the figures of `report`."""
    from bench.wan_systems import SETTINGS
    from lab.wan import PROFILES
    text = _replace_block(path.read_text(), "wan settings", settings_lines(SETTINGS, PROFILES))
    if report and report.get("profiles"):
        text = _replace_block(text, "wan figures", [f"Recorded {report['at']} ({report['machine']['cpus']} "
                                                    "cores), `bench/results/wan.json`:", ""] + figures_lines(report))
    path.write_text(text)
