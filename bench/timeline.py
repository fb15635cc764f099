"""Draw one failover as a PNG: each site's role and the authoritative DNS answer over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

ROLE_LEVEL = {"stopped": 0, "starting": 0, "ineligible": 1, "standby": 2, "leader": 3}


def plot_timeline(title: str, fault_at: float, transitions: list[dict],
                  dns_samples: list[tuple[float, str]], end_at: float, out: Path) -> Path:
    """`transitions`: the agents' JSON lines (monotonic, site, role); `dns_samples`:
    (monotonic, answer) pairs. Times are drawn relative to `fault_at`."""
    sites = sorted({t["site"] for t in transitions})
    figure, axes = plt.subplots(len(sites) + 1, 1, sharex=True, figsize=(9, 1.6 * (len(sites) + 1)))
    start = min([t["monotonic"] for t in transitions] + [fault_at]) - fault_at
    for axis, site in zip(axes, sites):
        steps = [(t["monotonic"] - fault_at, ROLE_LEVEL[t["role"]])
                 for t in transitions if t["site"] == site]
        xs = [start] + [x for x, _ in steps] + [end_at - fault_at]
        ys = [0] + [y for _, y in steps] + [steps[-1][1] if steps else 0]
        axis.step(xs, ys, where="post")
        axis.set_yticks(list(range(4)), ["stopped", "ineligible", "standby", "leader"])
        axis.set_ylabel(f"site {site}")
        axis.axvline(0, color="red", linestyle="--", linewidth=1)
    answers = sorted({a for _, a in dns_samples})
    dns_axis = axes[-1]
    dns_axis.step([t - fault_at for t, _ in dns_samples], [answers.index(a) for _, a in dns_samples],
                  where="post", color="green")
    dns_axis.set_yticks(list(range(len(answers))), answers)
    dns_axis.set_ylabel("DNS answer")
    dns_axis.axvline(0, color="red", linestyle="--", linewidth=1)
    dns_axis.set_xlabel("seconds from the fault (red line)")
    figure.suptitle(title)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
