"""bench/results/wan.json as a plot (bench/results/wan.png); the tables: bench/wan_tables.py."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from bench.wan_tables import SYSTEM_ORDER, systems_of  # noqa: E402

PLOTTED_FAULTS = ("check", "sigkill", "isolation")
SYSTEM_COLOURS = dict(zip(SYSTEM_ORDER, ("tab:blue", "tab:cyan", "tab:orange")))
FAULT_HATCHES = {"check": "", "sigkill": "//", "isolation": "..", "handover": "xx"}


def plot(report: Mapping, out: Path) -> Path:
    """Failover time (median, p95 whisker) per profile and fault, and false failovers in the
    soak, consulha beside ZooKeeper; an invalid profile (emulator lag) is marked."""
    profiles = list(report["profiles"])
    systems = systems_of(report)
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
