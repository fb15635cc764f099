"""Network round-trip estimates from Consul's network coordinates (/v1/coordinate/nodes), the
formula of Consul's lib/rtt.go: Euclidean distance of the vectors plus both heights, plus both
adjustments when that stays positive. Pure."""

from __future__ import annotations

import math


def estimated_rtt(a: dict, b: dict) -> float:
    """Seconds between two `Coord` objects as Consul returns them."""
    distance = math.dist(a["Vec"], b["Vec"]) + a["Height"] + b["Height"]
    adjusted = distance + a.get("Adjustment", 0.0) + b.get("Adjustment", 0.0)
    return adjusted if adjusted > 0 else distance


def rtts_from(node: str, coordinates: list[dict], to: list[str]) -> dict[str, float]:
    """Estimated RTT from `node` to each node of `to` that has a coordinate (same segment)."""
    by_node = {entry["Node"]: entry for entry in coordinates}
    own = by_node.get(node)
    if own is None:
        return {}
    return {name: estimated_rtt(own["Coord"], by_node[name]["Coord"]) for name in to
            if name in by_node and by_node[name].get("Segment", "") == own.get("Segment", "")}
